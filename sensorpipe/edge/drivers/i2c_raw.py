"""Plain I2C writes and reads, for sensors that take commands rather than register addresses.

The SHT3x/SHT4x take a 2- or 1-byte command and answer a later, separate read; no SMBus call
has that shape, so the drivers use `smbus2.SMBus.i2c_rdwr` with one message per transfer (each
transfer ends with a STOP, as the data sheets draw it). The simulated bus in
`firmware_sim.i2c` takes the same messages, so the bytes a test sees are the bytes a Pi sends.
An address that does not answer raises OSError 121 (Remote I/O error), as Linux does.
"""

from __future__ import annotations

from typing import Any, Protocol


class RawI2CBus(Protocol):
    """The part of `smbus2.SMBus` the command-style drivers use."""

    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None: ...


def write_bytes(bus: RawI2CBus, address: int, data: bytes) -> None:
    """One write transfer: START, address+W, `data`, STOP."""
    from smbus2 import i2c_msg

    bus.i2c_rdwr(i2c_msg.write(address, data))


def read_bytes(bus: RawI2CBus, address: int, length: int) -> bytes:
    """One read transfer of `length` bytes: START, address+R, bytes, STOP."""
    from smbus2 import i2c_msg

    msg = i2c_msg.read(address, length)
    bus.i2c_rdwr(msg)
    return bytes(msg)


def close_bus(bus: object) -> None:
    close = getattr(bus, "close", None)
    if close is not None:
        close()
