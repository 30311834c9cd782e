"""An I2C bus with the calling shape of `smbus2.SMBus`, for simulated register devices.

Drivers take a bus object; on a Pi that is `smbus2.SMBus(1)`, in tests this. An address with
no device behind it fails the way Linux does: OSError 121 (Remote I/O error).

Register devices (BME280) answer the SMBus calls; message devices (the Sensirion sensors, whose
transfers are a command word plus CRC-checked words, not registers) answer `i2c_rdwr`, the
plain I2C transfers smbus2 sends through the I2C_RDWR ioctl.
"""

from __future__ import annotations

import ctypes
import errno
import threading
from typing import Any, Protocol

I2C_M_RD = 0x0001  # the read flag of an i2c_msg (linux/i2c.h)


class RegisterDevice(Protocol):
    def read_register(self, register: int) -> int: ...

    def write_register(self, register: int, value: int) -> None: ...


class MessageDevice(Protocol):
    def i2c_write(self, data: bytes) -> None: ...

    def i2c_read(self, length: int) -> bytes: ...


class SimulatedI2CBus:
    def __init__(self, bus: int = 1) -> None:
        self.bus = bus
        self._devices: dict[int, Any] = {}
        self._lock = threading.Lock()  # one transaction on the wire at a time, as on real I2C

    def attach(self, address: int, device: RegisterDevice | MessageDevice) -> None:
        self._devices[address] = device

    def _device(self, address: int) -> Any:
        try:
            return self._devices[address]
        except KeyError:
            raise OSError(errno.EREMOTEIO, "Remote I/O error") from None

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
            device = self._device(i2c_addr)
            # Register auto-increment, as BME280 and most register-mapped sensors do.
            return [device.read_register((register + i) & 0xFF) & 0xFF for i in range(length)]

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: list[int], force: bool | None = None
    ) -> None:
        with self._lock:
            device = self._device(i2c_addr)
            for i, value in enumerate(data):
                device.write_register((register + i) & 0xFF, value & 0xFF)

    def i2c_rdwr(self, *messages: Any) -> None:
        """smbus2's `i2c_rdwr(i2c_msg.write(...), i2c_msg.read(...))`: each message is a write
        or a read transfer; a read fills the message's buffer."""
        with self._lock:
            for message in messages:
                device = self._device(message.addr)
                if message.flags & I2C_M_RD:
                    data = device.i2c_read(message.len)
                    if len(data) < message.len:  # the device stopped sending: a short read
                        raise OSError(errno.EREMOTEIO, "Remote I/O error")
                    ctypes.memmove(message.buf, data, message.len)
                else:
                    device.i2c_write(bytes(message.buf[: message.len]))

    def close(self) -> None:
        self._devices.clear()

    def __enter__(self) -> SimulatedI2CBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
