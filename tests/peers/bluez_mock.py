"""BlueZ mocked on a private D-Bus system bus, for eddy's BLE tests.

Runs with the system Python (python3-dbusmock, python3-dbus from Debian).
Starts a private system bus and python-dbusmock's bluez5 template on it,
adds an adapter (hci0) and devices, and writes the bus address to
ADDRESS_FILE. Once a scanner has started discovery on hci0, it advertises,
as BlueZ would report what it hears (ServiceData, ManufacturerData and RSSI
property changes), the packets listed in the spec file, one every 200 ms.
Then it serves the GATT devices of the spec as BlueZ shows a connected
device's services (GattService1 and GattCharacteristic1 objects under the
device, ServicesResolved once connected, Value property changes as
notifications): for each connection listed, it waits until the scanner
has connected and subscribed, notifies the values, and (but after the
last) drops the connection as a device going out of range would. Then it
writes DONE_FILE and waits to be stopped.

Usage: bluez_mock.py SPEC.json ADDRESS_FILE DONE_FILE

SPEC.json: {"devices": [[address, name], ...],
            "packets": [{"address": a, "rssi": -60,
                         "service_data": {"fcd2": "40..."},
                         "manufacturer_data": {"1177": "05..."}}, ...],
            "gatt": [{"address": a, "service": "181a",
                      "characteristics": [{"uuid": "2a6e",
                                           "flags": ["read", "notify"],
                                           "value": "9209"}, ...],
                      "connections": [[{"uuid": "2a6e", "value": "3809"},
                                       ...], ...]}]}
"""

import json
import os
import sys
import time

import dbus
import dbusmock
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

BASE = "-0000-1000-8000-00805f9b34fb"
DEVICE = "org.bluez.Device1"
SERVICE = "org.bluez.GattService1"
CHARACTERISTIC = "org.bluez.GattCharacteristic1"


def device_path(address):
    return "/org/bluez/hci0/dev_" + address.replace(":", "_").upper()


def wait_for(what, check, seconds=60):
    """Waits until check() holds, taking D-Bus signals meanwhile."""
    deadline = time.time() + seconds
    context = GLib.MainContext.default()
    while not check():
        if time.time() > deadline:
            sys.exit("timed out waiting for " + what)
        while context.pending():
            context.iteration(False)
        time.sleep(0.05)


def added(root, path, interface, props):
    """Says an object was added, as BlueZ's ObjectManager does."""
    root.EmitSignal("org.freedesktop.DBus.ObjectManager", "InterfacesAdded", "oa{sa{sv}}", [
        dbus.ObjectPath(path),
        dbus.Dictionary({interface: dbus.Dictionary(props, signature="sv")}, signature="sa{sv}"),
    ])


def add_gatt(bus, spec):
    """Adds a device's service and characteristics, as BlueZ does once it
    has resolved them; returns {uuid: characteristic path}."""
    root = dbus.Interface(bus.get_object("org.bluez", "/"), dbusmock.MOCK_IFACE)
    device = device_path(spec["address"])
    service = device + "/service0010"
    service_props = {
        "UUID": dbus.String(f"0000{spec['service']}{BASE}"),
        "Primary": dbus.Boolean(True),
        "Device": dbus.ObjectPath(device),
        "Includes": dbus.Array([], signature="o"),
    }
    # BlueZ's GattService1 has no methods; but dbusmock writes an
    # interface without methods after the child nodes in its introspection
    # data, which the parser btleplug uses refuses. One unused method keeps
    # the interface in its place.
    root.AddObject(service, SERVICE, service_props, [("Unused", "", "", "")])
    added(root, service, SERVICE, service_props)
    paths = {}
    for i, c in enumerate(spec["characteristics"]):
        path = f"{service}/char{0x11 + 2 * i:04x}"
        props = {
            "UUID": dbus.String(f"0000{c['uuid']}{BASE}"),
            "Service": dbus.ObjectPath(service),
            "Flags": dbus.Array(c["flags"], signature="s"),
            "Notifying": dbus.Boolean(False),
            "Value": dbus.Array(bytes.fromhex(c.get("value", "")), signature="y"),
        }
        root.AddObject(path, CHARACTERISTIC, props, [
            ("ReadValue", "a{sv}", "ay",
             f"ret = self.props['{CHARACTERISTIC}']['Value']"),
            ("StartNotify", "", "",
             f"self.props['{CHARACTERISTIC}']['Notifying'] = True"),
            ("StopNotify", "", "",
             f"self.props['{CHARACTERISTIC}']['Notifying'] = False"),
        ])
        added(root, path, CHARACTERISTIC, props)
        paths[c["uuid"]] = path
    return paths


def follow_connection(bus, address):
    """A flag that follows the device's Connected state: the template's
    Connect says so by a signal only, as BlueZ does."""
    connected = [False]

    def changed(interface, changes, _invalidated):
        if interface == DEVICE and "Connected" in changes:
            connected[0] = bool(changes["Connected"])
    bus.add_signal_receiver(changed, "PropertiesChanged", dbus.PROPERTIES_IFACE,
                            "org.bluez", device_path(address))
    return connected


def serve_gatt(bus, spec, paths, connected):
    """Each connection: waits for the scanner to connect and subscribe,
    notifies, and drops the connection unless it is the last."""
    device_obj = bus.get_object("org.bluez", device_path(spec["address"]))
    device = dbus.Interface(device_obj, dbus.PROPERTIES_IFACE)
    notifying = [c["uuid"] for c in spec["characteristics"] if "notify" in c["flags"]]

    props = {uuid: dbus.Interface(bus.get_object("org.bluez", path), dbus.PROPERTIES_IFACE)
             for uuid, path in paths.items()}
    connections = spec["connections"]
    for n, notifications in enumerate(connections):
        wait_for("a connection", lambda: connected[0])
        device.Set(DEVICE, "ServicesResolved", dbus.Boolean(True))
        wait_for("subscriptions", lambda: all(
            bool(props[u].Get(CHARACTERISTIC, "Notifying")) for u in notifying))
        for note in notifications:
            props[note["uuid"]].Set(CHARACTERISTIC, "Value",
                                    dbus.Array(bytes.fromhex(note["value"]), signature="y"))
            time.sleep(0.2)
        if n + 1 < len(connections):
            for u in notifying:
                props[u].Set(CHARACTERISTIC, "Notifying", dbus.Boolean(False))
            device.Set(DEVICE, "ServicesResolved", dbus.Boolean(False))
            dbus.Interface(device_obj, DEVICE).Disconnect()


def main():
    spec_path, address_file, done_file = sys.argv[1:4]
    DBusGMainLoop(set_as_default=True)
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

    gatt = [(g, add_gatt(bus, g), follow_connection(bus, g["address"]))
            for g in spec.get("gatt", [])]

    adapter = bus.get_object("org.bluez", "/org/bluez/hci0")
    props = dbus.Interface(adapter, dbus.PROPERTIES_IFACE)
    wait_for("discovery", lambda: bool(props.Get("org.bluez.Adapter1", "Discovering")))
    # The scanner subscribes to signals before it starts discovery; give
    # its event stream a moment all the same.
    time.sleep(0.5)

    for packet in spec.get("packets", []):
        path = device_path(packet["address"])
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
    for g, paths, connected in gatt:
        serve_gatt(bus, g, paths, connected)

    with open(done_file, "w") as f:
        f.write("done")
    try:
        while True:
            time.sleep(1)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
