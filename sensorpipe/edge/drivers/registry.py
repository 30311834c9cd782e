"""Driver names the configuration may use, each with its config schema and opener.

Adding a sensor: its driver module (code + config model), its simulator in firmware_sim/,
its test, and one line in DRIVERS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.bme280 import Bme280, I2CBus
from sensorpipe.edge.drivers.sds011 import Sds011
from sensorpipe.edge.drivers.sensirion import Scd4xConfig, Scd30Config, Sps30Config

I2CBusFactory = Callable[[int], I2CBus]


class _SensorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_s: float = Field(default=60.0, gt=0, description="seconds between readings")


class Sds011Config(_SensorConfig):
    driver: Literal["sds011"]
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0")
    timeout_s: float = Field(default=3.0, gt=0)

    @field_validator("port")
    @classmethod
    def _a_device(cls, port: str) -> str:
        # A port that is not there yet is fine (a USB adapter plugged in later is opened then);
        # a regular file or a directory never becomes a serial port: a typo that costs every
        # reading, refused at start.
        path = Path(port)
        if path.is_file() or path.is_dir():
            kind = "a directory" if path.is_dir() else "a regular file"
            raise PydanticCustomError(
                "not_a_port",
                "{port} is {kind}, not a serial device: name the sensor's port, e.g. "
                "/dev/ttyUSB0 (`ls /dev/ttyUSB* /dev/serial/by-id/` lists them)",
                {"port": port, "kind": kind},
            )
        return port


# The BME280 answers at one of two addresses, chosen by its SDO pin.
BME280_ADDRESSES = (0x76, 0x77)


class Bme280Config(_SensorConfig):
    driver: Literal["bme280"]
    bus: int = Field(default=1, ge=0, le=255, description="I2C bus number: /dev/i2c-<bus>")
    address: int = Field(default=0x76, description="0x76, or 0x77 with SDO pulled high")

    @field_validator("address")
    @classmethod
    def _bme280_address(cls, address: int) -> int:
        if address not in BME280_ADDRESSES:
            raise PydanticCustomError(
                "i2c_address",
                "{address}: a BME280 answers only at 0x76 (SDO to ground) or 0x77 (SDO to "
                "3.3 V); `i2cdetect -y 1` shows which",
                {"address": hex(address) if address >= 0 else str(address)},
            )
        return address


SensorConfig = Annotated[
    Sds011Config | Bme280Config | Sps30Config | Scd30Config | Scd4xConfig,
    Field(discriminator="driver"),
]


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


def _open_sensirion(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    """SPS30, SCD30, SCD4x: `config` minus the agent's own keys are the driver's options."""
    from importlib import import_module

    from sensorpipe.edge.errors import SensorConfigError

    module = import_module(f"sensorpipe.edge.drivers.{config.driver}")
    driver_class = getattr(module, config.driver.capitalize())
    options = config.model_dump(exclude={"driver", "interval_s", "bus"})
    try:
        bus = i2c(config.bus)
    except OSError as exc:
        raise SensorConfigError(
            f"{config.driver}: cannot open I2C bus {config.bus}: {exc}"
        ) from exc
    try:
        return driver_class(bus, owns_bus=True, **options)
    except BaseException:
        close = getattr(bus, "close", None)
        if close is not None:
            close()  # the agent opens it again later: no file descriptor left behind
        raise


DRIVERS: dict[str, Callable[[Any, I2CBusFactory], SensorDriver]] = {
    "sds011": _open_sds011,
    "bme280": _open_bme280,
    "sps30": _open_sensirion,
    "scd30": _open_sensirion,
    "scd4x": _open_sensirion,  # sensirion.py
}


def open_driver(
    config: Sds011Config | Bme280Config | Sps30Config | Scd30Config | Scd4xConfig,
    *,
    i2c_bus_factory: I2CBusFactory = _smbus,
) -> SensorDriver:
    return DRIVERS[config.driver](config, i2c_bus_factory)
