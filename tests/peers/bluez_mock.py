"""BlueZ mocked on a private D-Bus system bus, for eddy's BLE tests.

Runs with the system Python (python3-dbusmock, python3-dbus from Debian).
Starts a private system bus and python-dbusmock's bluez5 template on it,
adds an adapter (hci0) and devices, and writes the bus address to
ADDRESS_FILE. Once a scanner has started discovery on hci0, it advertises,
as BlueZ would report what it hears (ServiceData, ManufacturerData and RSSI
property changes), the packets listed in the spec file, one every 200 ms,
then writes DONE_FILE and waits to be stopped.

Usage: bluez_mock.py SPEC.json ADDRESS_FILE DONE_FILE

SPEC.json: {"devices": [[address, name], ...],
            "packets": [{"address": a, "rssi": -60,
                         "service_data": {"fcd2": "40..."},
                         "manufacturer_data": {"1177": "05..."}}, ...]}
"""

import json
import os
import sys
import time

import dbus
import dbusmock

BASE = "-0000-1000-8000-00805f9b34fb"


def main():
    spec_path, address_file, done_file = sys.argv[1:4]
    with open(spec_path) as f:
        spec = json.load(f)

    dbusmock.DBusTestCase.start_system_bus()
    bus_address = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
    server, _ = dbusmock.DBusTestCase.spawn_server_template(
        "bluez5", {}, stdout=sys.stderr.fileno(), system_bus=True)
    bus = dbusmock.DBusTestCase.get_dbus(system_bus=True)
    mock = dbus.Interface(bus.get_object("org.bluez", "/"), "org.bluez.Mock")
    mock.AddAdapter("hci0", "eddy-test")
    for address, name in spec["devices"]:
        mock.AddDevice("hci0", address, name)

    with open(address_file + ".tmp", "w") as f:
        f.write(bus_address)
    os.replace(address_file + ".tmp", address_file)

    adapter = bus.get_object("org.bluez", "/org/bluez/hci0")
    props = dbus.Interface(adapter, dbus.PROPERTIES_IFACE)
    deadline = time.time() + 60
    while not props.Get("org.bluez.Adapter1", "Discovering"):
        if time.time() > deadline:
            sys.exit("nobody started discovery")
        time.sleep(0.05)
    # The scanner subscribes to signals before it starts discovery; give
    # its event stream a moment all the same.
    time.sleep(0.5)

    for packet in spec["packets"]:
        path = "/org/bluez/hci0/dev_" + packet["address"].replace(":", "_").upper()
        device = dbus.Interface(bus.get_object("org.bluez", path), dbus.PROPERTIES_IFACE)
        # Each Set stores the value and emits PropertiesChanged, as BlueZ
        # does for what it hears: the signal strength first, then the data.
        device.Set("org.bluez.Device1", "RSSI", dbus.Int16(packet.get("rssi", -70)))
        if "service_data" in packet:
            device.Set("org.bluez.Device1", "ServiceData", dbus.Dictionary(
                {f"0000{uuid}{BASE}": dbus.Array(bytes.fromhex(data), signature="y")
                 for uuid, data in packet["service_data"].items()},
                signature="sv"))
        if "manufacturer_data" in packet:
            device.Set("org.bluez.Device1", "ManufacturerData", dbus.Dictionary(
                {dbus.UInt16(int(company)): dbus.Array(bytes.fromhex(data), signature="y")
                 for company, data in packet["manufacturer_data"].items()},
                signature="qv"))
        time.sleep(0.2)

    with open(done_file, "w") as f:
        f.write("done")
    try:
        while True:
            time.sleep(1)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
