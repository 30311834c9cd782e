"""Driver names the configuration may use, each with its config schema and opener.

Adding a sensor: its driver module (code + config model), its simulator in firmware_sim/,
its test, and one line in DRIVERS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.bme280 import Bme280, I2CBus
from sensorpipe.edge.drivers.sds011 import Sds011

I2CBusFactory = Callable[[int], I2CBus]


class _SensorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_s: float = Field(default=60.0, gt=0, description="seconds between readings")


class Sds011Config(_SensorConfig):
    driver: Literal["sds011"]
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0")
    timeout_s: float = Field(default=3.0, gt=0)


class Bme280Config(_SensorConfig):
    driver: Literal["bme280"]
    bus: int = Field(default=1, ge=0, description="I2C bus number: /dev/i2c-<bus>")
    address: int = Field(default=0x76, description="0x76, or 0x77 with SDO pulled high")


SensorConfig = Annotated[Sds011Config | Bme280Config, Field(discriminator="driver")]


def _smbus(bus_number: int) -> I2CBus:
    from smbus2 import SMBus

    return SMBus(bus_number)


def _open_sds011(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    return Sds011.open(config.port, timeout_s=config.timeout_s)


def _open_bme280(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    try:
        bus = i2c(config.bus)
    except OSError as exc:
        from sensorpipe.edge.errors import SensorConfigError

        raise SensorConfigError(f"bme280: cannot open I2C bus {config.bus}: {exc}") from exc
    return Bme280(bus, config.address, owns_bus=True)


DRIVERS: dict[str, Callable[[Any, I2CBusFactory], SensorDriver]] = {
    "sds011": _open_sds011,
    "bme280": _open_bme280,
}


def open_driver(
    config: Sds011Config | Bme280Config, *, i2c_bus_factory: I2CBusFactory = _smbus
) -> SensorDriver:
    return DRIVERS[config.driver](config, i2c_bus_factory)
