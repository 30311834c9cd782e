"""An I2C bus with the calling shape of `smbus2.SMBus`, for simulated register devices.

Drivers take a bus object; on a Pi that is `smbus2.SMBus(1)`, in tests this. An address with
no device behind it fails the way Linux does: OSError 121 (Remote I/O error).
"""

from __future__ import annotations

import errno
import threading
from typing import Protocol


class RegisterDevice(Protocol):
    def read_register(self, register: int) -> int: ...

    def write_register(self, register: int, value: int) -> None: ...


class SimulatedI2CBus:
    def __init__(self, bus: int = 1) -> None:
        self.bus = bus
        self._devices: dict[int, RegisterDevice] = {}
        self._lock = threading.Lock()  # one transaction on the wire at a time, as on real I2C

    def attach(self, address: int, device: RegisterDevice) -> None:
        self._devices[address] = device

    def _device(self, address: int) -> RegisterDevice:
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

    def close(self) -> None:
        self._devices.clear()

    def __enter__(self) -> SimulatedI2CBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
