"""A simulated I2C bus served from the benchmark's process to the agent's, over a Unix socket.

The agent's memory is what bench.edge measures, and a Raspberry Pi's agent does not carry
sensor simulators: so the simulated devices (`sensorpipe.firmware_sim`) live in the benchmark's
process, behind `I2CServer`, and the agent's I2C drivers get a `RemoteI2CBus`, a small client
with smbus2's methods that the drivers call (`i2c_rdwr`, `write_quick`, the byte and block
calls). Each call is one JSON line each way; an `OSError` on the simulated bus (a NACK, errno
121) comes back as the same `OSError` in the agent, so the drivers see the bus a Pi would give
them. The client imports only what the agent has loaded already (json, socket, ctypes via
smbus2's `i2c_msg`).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

I2C_M_RD = 0x0001  # linux/i2c.h: a read message


class I2CServer:
    """Serves `bus` (a `SimulatedI2CBus`) on a Unix socket at `path`, one thread per agent
    connection, until `close`."""

    def __init__(self, bus: Any, path: Path) -> None:
        self.bus = bus
        self.path = path
        path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(8)
        self._thread = threading.Thread(target=self._accept, name="i2c-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                stream.write(json.dumps(self._call(json.loads(line))).encode() + b"\n")
                stream.flush()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        op, args = request["op"], request["args"]
        try:
            if op == "i2c_rdwr":
                return {"ok": self._rdwr(args[0])}
            if op in ("write_quick", "read_byte_data", "write_byte_data"):
                return {"ok": getattr(self.bus, op)(*args)}
            if op == "read_i2c_block_data":
                return {"ok": self.bus.read_i2c_block_data(*args)}
            if op == "write_i2c_block_data":
                return {"ok": self.bus.write_i2c_block_data(*args)}
            return {"errno": 22, "error": f"unknown call {op!r}"}
        except OSError as exc:
            return {"errno": exc.errno or 5, "error": exc.strerror or str(exc)}
        except ValueError as exc:
            return {"value_error": str(exc)}

    def _rdwr(self, messages: list[list[Any]]) -> list[str | None]:
        """[addr, flags, length, hex of a write] each; the reads' bytes back, in order."""
        msgs = [_Message(addr, flags, length, data) for addr, flags, length, data in messages]
        self.bus.i2c_rdwr(*msgs)
        return [bytes(m.buf).hex() if m.flags & I2C_M_RD else None for m in msgs]

    def close(self) -> None:
        self._listener.close()
        self.path.unlink(missing_ok=True)


class _Message:
    """smbus2's `i2c_msg`, as much of it as `SimulatedI2CBus.i2c_rdwr` uses."""

    def __init__(self, addr: int, flags: int, length: int, data: str | None) -> None:
        self.addr, self.flags, self.len = addr, flags, length
        self.buf = ctypes.create_string_buffer(bytes.fromhex(data or ""), length)

    def __bytes__(self) -> bytes:
        return bytes(self.buf.raw[: self.len])


class RemoteI2CBus:
    """The agent's side: smbus2's calls, answered by the `I2CServer` at `path`."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._stream = self._sock.makefile("rwb")
        self._lock = threading.Lock()

    def _call(self, op: str, *args: Any) -> Any:
        with self._lock:
            self._stream.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
            self._stream.flush()
            answer = json.loads(self._stream.readline())
        if "errno" in answer:
            raise OSError(answer["errno"], answer["error"])
        if "value_error" in answer:
            raise ValueError(answer["value_error"])
        return answer["ok"]

    def i2c_rdwr(self, *msgs: Any) -> None:
        wire = [
            [m.addr, m.flags, m.len, None if m.flags & I2C_M_RD else bytes(m).hex()] for m in msgs
        ]
        for msg, data in zip(msgs, self._call("i2c_rdwr", wire), strict=True):
            if data is not None:
                ctypes.memmove(msg.buf, bytes.fromhex(data), msg.len)

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        self._call("write_quick", i2c_addr)

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return int(self._call("read_byte_data", i2c_addr, register))

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        self._call("write_byte_data", i2c_addr, register, value)

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        return list(self._call("read_i2c_block_data", i2c_addr, register, length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: list[int], force: bool | None = None
    ) -> None:
        self._call("write_i2c_block_data", i2c_addr, register, list(data))

    def close(self) -> None:
        with self._lock:
            self._stream.close()
            self._sock.close()

    def __enter__(self) -> RemoteI2CBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remote_bus_from_env(_number: int) -> RemoteI2CBus:
    """The agent's I2C bus factory: the server `SENSORPIPE_BENCH_I2C` names."""
    return RemoteI2CBus(os.environ["SENSORPIPE_BENCH_I2C"])
