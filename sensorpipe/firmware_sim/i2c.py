"""An I2C bus with the calling shape of `smbus2.SMBus`, for simulated register devices.

Drivers take a bus object; on a Pi that is `smbus2.SMBus(1)`, in tests this. An address with
no device behind it fails the way Linux does: OSError 121 (Remote I/O error).

Two kinds of device sit on it: register devices (BME280: a register address, then bytes) and
stream devices (`StreamDevice`: SHT3x/SHT4x take commands, the ADS1115 a pointer byte), which
see every transfer's bytes as they are on the wire, through `i2c_rdwr` (smbus2's `i2c_msg`
messages) or the SMBus block calls (the register byte first). A stream device refuses a transfer
(a NACK) by raising OSError itself.
"""

from __future__ import annotations

import ctypes
import errno
import threading
from typing import Any, Protocol

I2C_M_RD = 0x0001


class RegisterDevice(Protocol):
    def read_register(self, register: int) -> int: ...

    def write_register(self, register: int, value: int) -> None: ...


class StreamDevice(Protocol):
    def i2c_write(self, data: bytes) -> None: ...

    def i2c_read(self, length: int) -> bytes: ...


def _nack() -> OSError:
    return OSError(errno.EREMOTEIO, "Remote I/O error")


class SimulatedI2CBus:
    def __init__(self, bus: int = 1) -> None:
        self.bus = bus
        self._devices: dict[int, RegisterDevice | StreamDevice] = {}
        self._lock = threading.Lock()  # one transaction on the wire at a time, as on real I2C

    def attach(self, address: int, device: RegisterDevice | StreamDevice) -> None:
        self._devices[address] = device

    def detach(self, address: int) -> None:
        self._devices.pop(address, None)

    def _device(self, address: int) -> Any:
        try:
            return self._devices[address]
        except KeyError:
            raise _nack() from None

    def _stream(self, address: int) -> StreamDevice | None:
        device = self._device(address)
        return device if hasattr(device, "i2c_write") else None

    def i2c_rdwr(self, *i2c_msgs: Any) -> None:
        """smbus2's combined transfer: each message a read or a write of its own address."""
        with self._lock:
            for msg in i2c_msgs:
                device = self._stream(msg.addr)
                if device is None:
                    raise OSError(errno.EOPNOTSUPP, "simulated register devices take SMBus calls")
                if msg.flags & I2C_M_RD:
                    data = device.i2c_read(msg.len)
                    if len(data) != msg.len:
                        raise _nack()
                    ctypes.memmove(msg.buf, bytes(data), msg.len)
                else:
                    device.i2c_write(bytes(msg))

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        """Address only, as `i2cdetect` probes: OSError 121 where nothing (or a silent sensor)
        is."""
        with self._lock:
            device = self._device(i2c_addr)
            if getattr(device, "silent", False):
                raise _nack()

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        with self._lock:
            return self._device(i2c_addr).read_register(register & 0xFF) & 0xFF

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        with self._lock:
            self._device(i2c_addr).write_register(register & 0xFF, value & 0xFF)

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        if not 0 < length <= 32:
            raise ValueError("Desired block length over 32 bytes")  # smbus2's own limit
        with self._lock:
            stream = self._stream(i2c_addr)
            if stream is not None:
                stream.i2c_write(bytes([register & 0xFF]))
                return list(stream.i2c_read(length))
            device = self._device(i2c_addr)
            # Register auto-increment, as BME280 and most register-mapped sensors do.
            return [device.read_register((register + i) & 0xFF) & 0xFF for i in range(length)]

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: list[int], force: bool | None = None
    ) -> None:
        with self._lock:
            stream = self._stream(i2c_addr)
            if stream is not None:
                stream.i2c_write(bytes([register & 0xFF, *(v & 0xFF for v in data)]))
                return
            device = self._device(i2c_addr)
            for i, value in enumerate(data):
                device.write_register((register + i) & 0xFF, value & 0xFF)

    def close(self) -> None:
        self._devices.clear()

    def __enter__(self) -> SimulatedI2CBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
