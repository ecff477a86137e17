"""A Modbus server for eddy's tests, on pymodbus's SimDevice.

It serves a register map covering every raw type and every word and byte
order, laid out here with Python's `struct` (big-endian bytes, then the
device's swaps), and writes what a reader must find to a JSON file: the
points in EdgeX terms and each point's expected value. The tests compare
eddy's records with that file, so the expected values never come from
eddy's decoder.

Units:
  1   the whole map (holding registers 0.., input registers 0.., coils
      0.., discrete inputs 0..), writable.
  2   a device with a hole: one point's address is not served, so every
      read of it is an exception (illegal data address).
  3   a device that is busy (exception 6) on every other request.
  4   a device that answers 3 s late: a reader with a shorter timeout
      sees no answer, and the late one must not be taken for the next.
Any other unit is refused (exception 4).

Usage: modbus_server.py --spec OUT.json (--tcp PORT | --rtu DEVICE)
                        [--requests COUNTS.json]
"""

import argparse
import asyncio
import json
import os
import signal
import struct

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def laid_out(data: bytes, word_swap: bool, byte_swap: bool) -> list[int]:
    """Registers as a device with this word and byte order holds `data`."""
    pairs = [data[i:i + 2] for i in range(0, len(data), 2)]
    if word_swap:
        pairs.reverse()
    if byte_swap:
        pairs = [p[::-1] for p in pairs]
    return [int.from_bytes(p, "big") for p in pairs]


FORMATS = {
    "Int16": ">h", "Uint16": ">H", "Int32": ">i", "Uint32": ">I",
    "Int64": ">q", "Uint64": ">Q", "Float32": ">f", "Float64": ">d",
}


def register_map():
    """Points, their registers, and the values expected."""
    holding, points = [], []

    def add(name, raw_type, value, word_swap=False, byte_swap=False, **extra):
        data = struct.pack(FORMATS[raw_type], value)
        address = len(holding)
        holding.extend(laid_out(data, word_swap, byte_swap))
        expected = struct.unpack(FORMATS[raw_type], data)[0]
        point = {
            "name": name, "primaryTable": "HOLDING_REGISTERS",
            "startingAddress": address, "rawType": raw_type,
            "expected": expected,
        }
        if word_swap:
            point["isWordSwap"] = True
        if byte_swap:
            point["isByteSwap"] = True
        point.update(extra)
        points.append(point)

    add("int16", "Int16", -12345)
    add("uint16", "Uint16", 54321)
    for ws in (False, True):
        for bs in (False, True):
            tag = ("w" if ws else "") + ("b" if bs else "")
            add(f"int32_{tag or 'abcd'}", "Int32", -123456789, ws, bs)
            add(f"uint32_{tag or 'abcd'}", "Uint32", 3000000000, ws, bs)
            add(f"float32_{tag or 'abcd'}", "Float32", -0.15625, ws, bs)
    add("int64", "Int64", -1234567890123)
    add("uint64", "Uint64", 12345678901234567890)
    add("float64", "Float64", -1234.5678)
    # A scaled reading: raw 615 at 0.1 per unit, 40 below zero.
    add("scaled", "Int16", 615, scale=0.1, offset=-40.0)
    points[-1]["expected"] = 615 * 0.1 - 40.0
    # Characters, two a register, NUL-padded.
    text = "UPS-1 OK"
    address = len(holding)
    holding.extend(words(text.encode().ljust(10, b"\0")))
    points.append({
        "name": "text", "primaryTable": "HOLDING_REGISTERS",
        "startingAddress": address, "rawType": "String",
        "stringRegisterSize": 5, "expected": text,
    })
    # Bits 0 and 3 of one status register.
    address = len(holding)
    holding.append(0b1000)
    for bit in (0, 3):
        points.append({
            "name": f"status_bit{bit}", "primaryTable": "HOLDING_REGISTERS",
            "startingAddress": address, "rawType": "Bool", "bitOffset": bit,
            "expected": bool(0b1000 >> bit & 1),
        })
    # A setpoint the tests write: Int16 at 0.1 per unit.
    address = len(holding)
    holding.append(220)
    points.append({
        "name": "setpoint", "primaryTable": "HOLDING_REGISTERS",
        "startingAddress": address, "rawType": "Int16", "scale": 0.1,
        "readWrite": "RW", "expected": 220 * 0.1,
    })
    # Input registers: a voltage and a current.
    inputs = [2301, 157]
    points.append({
        "name": "voltage", "primaryTable": "INPUT_REGISTERS",
        "startingAddress": 0, "rawType": "Uint16", "scale": 0.1,
        "expected": 2301 * 0.1,
    })
    points.append({
        "name": "current", "primaryTable": "INPUT_REGISTERS",
        "startingAddress": 1, "rawType": "Uint16", "expected": 157,
    })
    coils = [True, False, True]
    for i, c in enumerate(coils):
        points.append({
            "name": f"coil{i}", "primaryTable": "COILS", "startingAddress": i,
            "rawType": "Bool", "readWrite": "RW", "expected": c,
        })
    discrete = [False, True]
    for i, d in enumerate(discrete):
        points.append({
            "name": f"input{i}", "primaryTable": "DISCRETE_INPUTS",
            "startingAddress": i, "rawType": "Bool", "expected": d,
        })
    return holding, inputs, coils, discrete, points


def blocks(holding, inputs, coils, discrete, skip=None):
    """The four tables as SimData blocks; `skip` leaves a holding register out."""
    def regs(values, start=0):
        return SimData(start, values=values, datatype=DataType.REGISTERS)

    if skip is None:
        hold = [regs(holding)]
    else:
        hold = [regs(holding[:skip])] if skip else []
        if skip + 1 < len(holding):
            hold.append(regs(holding[skip + 1:], skip + 1))
    return (
        [SimData(0, values=coils, datatype=DataType.BITS)],
        [SimData(0, values=discrete, datatype=DataType.BITS)],
        hold,
        [regs(inputs)],
    )


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--rtu")
    parser.add_argument("--requests")
    args = parser.parse_args()

    holding, inputs, coils, discrete, points = register_map()
    hole = next(p for p in points if p["name"] == "uint16")["startingAddress"]
    requests = {"count": 0}

    async def counted(*_args):
        requests["count"] += 1
        return None

    busy_calls = {"count": 0}

    async def busy(*_args):
        busy_calls["count"] += 1
        requests["count"] += 1
        if busy_calls["count"] % 2:
            from pymodbus.constants import ExcCodes
            return ExcCodes.DEVICE_BUSY
        return None

    async def slow(*_args):
        await asyncio.sleep(3)
        return None

    devices = [
        SimDevice(1, blocks(holding, inputs, coils, discrete), action=counted),
        SimDevice(2, blocks(holding, inputs, coils, discrete, skip=hole), action=counted),
        SimDevice(3, blocks(holding, inputs, coils, discrete), action=busy),
        SimDevice(4, blocks(holding, inputs, coils, discrete), action=slow),
    ]
    if args.tcp is not None:
        server = ModbusTcpServer(devices, address=("127.0.0.1", args.tcp), framer=FramerType.SOCKET)
    else:
        server = ModbusSerialServer(devices, port=args.rtu, framer=FramerType.RTU, baudrate=115200)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)

    async def report():
        while args.requests:
            with open(args.requests + ".tmp", "w") as f:
                json.dump(requests, f)
            os.replace(args.requests + ".tmp", args.requests)
            await asyncio.sleep(0.1)

    # Listening before the spec appears: a test that sees the spec can connect.
    await server.serve_forever(background=True)
    with open(args.spec + ".tmp", "w") as f:
        json.dump({"points": points, "hole": hole}, f)
    os.replace(args.spec + ".tmp", args.spec)
    reporting = asyncio.create_task(report())
    await stop.wait()
    reporting.cancel()
    await server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
