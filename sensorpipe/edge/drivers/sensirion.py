"""What the Sensirion I2C drivers (`sps30`, `scd30`, `scd4x`) share: their configuration, the
transport that points Sensirion's own Python drivers at our I2C bus, and the error mapping.

Sensirion's packages (`sensirion-i2c-sps30`, `-scd30`, `-scd4x`, the `sensirion` extra) hold the
command tables and conversions; they talk through a transceiver object. The CRC-8 they check
and append is ours, `sensirion_crc.crc8` (the one the SHT drivers and every simulator use),
handed to their channel in place of their own calculator. `SmbusTransceiver`
is ours: each transfer is one `i2c_rdwr` write, the command's wait, then a separate `i2c_rdwr`
read: no repeated start, which the SCD30 does not support, and no 32-byte SMBus block limit (the
SPS30's float answer is 60 bytes). On a Pi the bus is `smbus2.SMBus(n)`, in tests
`firmware_sim.i2c.SimulatedI2CBus`; a BME280 on the same bus is read through the same object.
The vendor packages are imported only when such a sensor is opened: an agent without one does
not load them (bench/edge.py measures the cost with them).

Failures are raised as the agent's kinds (drivers/base.py): a bad CRC `SensorChecksumError`
(the read is lost, so it is not also counted in `frames_bad`, which stays 0), no acknowledge or
no new measurement in time `SensorTimeout`, another bus error `SensorIOError`, a value outside
the data sheet's range `SensorOutOfRange`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from sensorpipe.edge.drivers.sensirion_crc import crc8
from sensorpipe.edge.errors import (
    SensorChecksumError,
    SensorConfigError,
    SensorError,
    SensorIOError,
    SensorOutOfRange,
    SensorTimeout,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]

# Each of these sensors answers at one fixed address.
ADDRESSES = {"sps30": 0x69, "scd30": 0x61, "scd4x": 0x62}
# The output ranges of the data sheets: a value outside is a sensor fault, not a reading.
# SPS30: mass concentration 0-1000 µg/m³ (beyond it the register is wild: the reading is
# refused); its number concentrations (data sheet 0-3000 #/cm³) and typical size are not checked
# here: in dense smoke NC0.5 may pass 3000 while the mass is still in range, so the agent leaves
# out such a value alone (the quantity's plausible range, counted as out_of_range) and keeps
# the PM. SCD30: CO₂ 0-40 000 ppm, -40-70 °C; SCD4x: CO₂ 0-40 000 ppm, -10-60 °C (operating
# conditions).
_RH = (0.0, 100.0)
SPS30_MASS = ("pm1", "pm2_5", "pm4", "pm10")
SPS30_NUMBERS = ("number_pm0_5", "number_pm1", "number_pm2_5", "number_pm4", "number_pm10")
SPS30_SIZE = "particle_size_typical"
DATA_SHEET_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "sps30": dict.fromkeys(SPS30_MASS, (0.0, 1000.0)),
    "scd30": {"co2": (0.0, 40_000.0), "temperature": (-40.0, 70.0), "relative_humidity": _RH},
    "scd4x": {"co2": (0.0, 40_000.0), "temperature": (-10.0, 60.0), "relative_humidity": _RH},
}


def check_range(model: str, values: dict[str, float]) -> None:
    """`SensorOutOfRange` for the first value outside the data sheet's range (of those it
    gives one for)."""
    ranges = DATA_SHEET_RANGES[model]
    for quantity, value in values.items():
        low, high = ranges.get(quantity, (value, value))
        if not low <= value <= high:
            raise SensorOutOfRange(
                f"{model}: {quantity} = {value:g} is outside the data sheet's range "
                f"{low:g}..{high:g} (sensor fault)"
            )


class _SensirionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_s: float = Field(default=60.0, gt=0, description="seconds between readings")
    bus: int = Field(default=1, ge=0, le=255, description="I2C bus number: /dev/i2c-<bus>")
    address: int = Field(default=0, validate_default=True, description="its fixed I2C address")

    @field_validator("address")
    @classmethod
    def _fixed_address(cls, address: int) -> int:
        driver = get_args(cls.model_fields["driver"].annotation)[0]
        fixed = ADDRESSES[driver]
        if address in (0, fixed):
            return fixed
        raise PydanticCustomError(
            "i2c_address",
            "{address}: an {driver} answers only at {fixed}; leave `address` out",
            {
                "address": hex(address) if address >= 0 else str(address),
                "driver": driver,
                "fixed": hex(fixed),
            },
        )


class _Co2Config(_SensirionConfig):
    self_calibration: bool = Field(
        default=True,
        description="automatic self-calibration: needs fresh air (about 400 ppm) for an hour "
        "a day (SCD30) or four hours a week (SCD4x); turn off in a room never aired",
    )
    altitude_m: int = Field(default=0, ge=0, le=3000, description="metres above sea level")
    bme280_address: Literal[0x76, 0x77] | None = Field(
        default=0x76,
        description="a BME280 on the same bus whose pressure compensates the CO2 reading; "
        "when none answers there, `altitude_m` is used",
    )


class Sps30Config(_SensirionConfig):
    """The SPS30 on I2C (`bus`, SEL to ground) or on a UART (`port`, SEL left open): one of
    the two, never both, never neither (the pin is sampled at power-up, the sensor talks
    only one)."""

    driver: Literal["sps30"]
    bus: int | None = Field(  # type: ignore[assignment]
        default=None, ge=0, le=255, description="I2C bus number: /dev/i2c-<bus> (SEL to GND)"
    )
    port: str | None = Field(
        default=None, description="serial port of its UART (SHDLC), e.g. /dev/serial0 (SEL open)"
    )
    fan_cleaning_interval_s: int | None = Field(
        default=None,
        ge=0,
        description="automatic fan cleaning interval (0 = off); unset keeps the sensor's "
        "(one week from the factory)",
    )
    number_concentrations: bool = Field(
        default=True,
        description="send the number concentrations (NC0.5-NC10) and the typical particle "
        "size beside PM1-PM10; false on a slow link",
    )

    @model_validator(mode="after")
    def _bus_or_port(self) -> Sps30Config:
        if (self.bus is None) == (self.port is None):
            given = "both `bus` and `port`" if self.port is not None else "neither `bus` nor `port`"
            raise PydanticCustomError(
                "sps30_link",
                "{given}: an SPS30 talks I2C (`bus = 1`, SEL to GND) or UART "
                '(`port = "/dev/serial0"`, SEL open): give exactly one',
                {"given": given},
            )
        return self


class Scd30Config(_Co2Config):
    driver: Literal["scd30"]
    measurement_interval_s: int = Field(default=2, ge=2, le=1800)


class Scd4xConfig(_Co2Config):
    driver: Literal["scd4x"]


@functools.cache
def _vendor() -> Any:
    """Sensirion's transport classes, imported on first use."""
    try:
        import sensirion_i2c_driver
        from sensirion_driver_adapters.i2c_adapter.i2c_channel import I2cChannel
        from sensirion_i2c_driver import errors
        from sensirion_i2c_driver.transceiver_v1 import I2cTransceiverV1
    except ImportError as exc:
        raise SensorConfigError(
            "Sensirion sensors need Sensirion's drivers: pip install 'sensorpipe[sensirion]'"
        ) from exc
    return sensirion_i2c_driver, I2cChannel, I2cTransceiverV1, errors


def open_channel(bus: Any, address: int, sleep: Sleep) -> Any:
    """A Sensirion `I2cChannel` to `address` over an smbus2-shaped `bus`, with our CRC-8."""
    driver, i2c_channel, transceiver_v1, _errors = _vendor()
    from smbus2 import i2c_msg

    class SmbusTransceiver(transceiver_v1):  # type: ignore[misc, valid-type]
        def transceive(
            self,
            slave_address: int,
            tx_data: bytes | None,
            rx_length: int | None,
            read_delay: float,
            timeout: float,
        ) -> tuple[int, Exception | None, bytes]:
            try:
                if tx_data is not None:
                    bus.i2c_rdwr(i2c_msg.write(slave_address, bytes(tx_data)))
                if not rx_length:
                    return self.STATUS_OK, None, b""
                sleep(read_delay)
                message = i2c_msg.read(slave_address, rx_length)
                bus.i2c_rdwr(message)
                return self.STATUS_OK, None, bytes(message.buf[:rx_length])
            except OSError as exc:
                if exc.errno in (errno.EREMOTEIO, errno.ENXIO, errno.EIO):
                    return self.STATUS_NACK, exc, b""
                if exc.errno == errno.ETIMEDOUT:
                    return self.STATUS_TIMEOUT, exc, b""
                return self.STATUS_UNSPECIFIED_ERROR, exc, b""

    class Connection(driver.I2cConnection):  # type: ignore[name-defined]
        def execute(self, slave_address: int, command: Any, wait_post_process: bool = True) -> Any:
            result = super().execute(slave_address, command, wait_post_process=False)
            if wait_post_process and command.post_processing_time > 0.0:
                sleep(command.post_processing_time)  # the injected clock, not time.sleep
            return result

    return i2c_channel(Connection(SmbusTransceiver()), slave_address=address, crc=crc8)


class SensirionDriver:
    """The part the three drivers share: the channel, errors, data-ready polling, ranges.

    A driver is made with the bus and its settings (the keys of its configuration section,
    validated by that model: `Scd4x(bus, altitude_m=40)`); `sleep` is the clock the waits
    use (tests pass a fake one). `start` is each sensor's own opening sequence."""

    model = ""
    frames_bad = 0  # a bad CRC fails its read (SensorChecksumError): nothing is skipped
    settings_model: Any = None  # the configuration model of the sensor's section
    vendor_class = ("", "")  # Sensirion's driver class: module, name

    # Keys the configuration model needs that the bus object stands for (an SPS30's section
    # names its `bus` or its `port`).
    link_settings: tuple[tuple[str, Any], ...] = ()

    def __init__(
        self, bus: Any, *, owns_bus: bool = False, sleep: Sleep = time.sleep, **settings: Any
    ) -> None:
        config = self.settings_model(driver=self.model, **{**dict(self.link_settings), **settings})
        self._bus = bus
        self.address = config.address
        self._owns_bus = owns_bus
        self._sleep = sleep
        self.channel = open_channel(bus, config.address, sleep)
        module, name = self.vendor_class
        self.device: Any = getattr(importlib.import_module(module), name)(self.channel)
        self.start(config)

    def start(self, config: Any) -> None:
        raise NotImplementedError

    def call(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        """One vendor call; a bad CRC becomes `SensorChecksumError`, no acknowledge
        `SensorTimeout`, another bus fault `SensorIOError`."""
        errors = _vendor()[3]
        try:
            return function(*args)
        except errors.I2cChecksumError as exc:
            raise SensorChecksumError(
                f"{self.model}: bad checksum (CRC) in the answer to {what} ({exc})"
            ) from exc
        except errors.I2cNackError as exc:
            raise SensorTimeout(
                f"{self.model}: no answer at 0x{self.address:02x} to {what} (not acknowledged)"
            ) from exc
        except errors.I2cTimeoutError as exc:
            raise SensorTimeout(f"{self.model}: no answer in time to {what}: {exc}") from exc
        except (errors.I2cError, OSError) as exc:
            raise SensorIOError(f"{self.model}: I2C error in {what}: {exc}") from exc

    def first_contact(self, what: str, function: Callable[[], Any], wait_s: float) -> Any:
        """The first command at open: a sensor still powering up (or asleep) gets `wait_s` to
        answer; one that never acknowledges is a configuration problem (nothing at that
        address), not a failed reading."""
        try:
            return self.call(what, function)
        except SensorError:
            self._sleep(wait_s)
        try:
            return self.call(what, function)
        except SensorError as exc:
            if not isinstance(exc.__cause__, _vendor()[3].I2cNackError):
                raise
            raise SensorConfigError(
                f"{exc}: no {self.model} answers at 0x{self.address:02x} on this bus",
                kind="timeout",
            ) from exc

    def wait_ready(self, is_ready: Callable[[], Any], within_s: float, step_s: float) -> bool:
        waited = 0.0
        while not self.call("data ready", is_ready):
            if waited >= within_s:
                return False
            self._sleep(step_s)
            waited += step_s
        return True

    def check_range(self, values: dict[str, float]) -> None:
        check_range(self.model, values)

    def read(self) -> dict[str, float]:
        raise NotImplementedError

    def stop(self) -> None:
        """Put the sensor at rest (stop measuring, sleep where it can)."""

    def close(self) -> None:
        with contextlib.suppress(SensorError):  # a sensor gone is closed anyway
            self.stop()
        if self._owns_bus:
            close = getattr(self._bus, "close", None)
            if close is not None:
                close()


class PressureSource:
    """Ambient pressure (hPa) from a BME280 on the same bus, for CO2 compensation; None when
    there is none or it fails (then the sensor's altitude setting applies)."""

    def __init__(self, bus: Any, address: int | None, model: str) -> None:
        from sensorpipe.edge.drivers.bme280 import Bme280

        self._bme: Bme280 | None = None
        if address is None:
            return
        try:
            self._bme = Bme280(bus, address)
        except (SensorConfigError, SensorError, OSError):
            log.info("%s: no BME280 at 0x%02x: altitude compensation instead", model, address)

    def hpa(self) -> float | None:
        if self._bme is None:
            return None
        try:
            return self._bme.read()["pressure"]
        except SensorError:
            return None
