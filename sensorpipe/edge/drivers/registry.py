"""Driver names the configuration may use, each with its config schema and opener.

Adding a sensor: its driver module (code + config model), its simulator in firmware_sim/,
its test, and one line in DRIVERS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from sensorpipe.edge.drivers.ads1115 import (
    ADS1115_ADDRESSES,
    DATA_RATES,
    FSR_V,
    Ads1115,
    SMBusBlock,
    SoilProbe,
    chip_lock,
)
from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.bme280 import Bme280, I2CBus
from sensorpipe.edge.drivers.ds18b20 import SENSOR_ID, W1_ROOT, Ds18b20
from sensorpipe.edge.drivers.i2c_raw import close_bus
from sensorpipe.edge.drivers.pms5003 import Pms5003
from sensorpipe.edge.drivers.sds011 import Sds011
from sensorpipe.edge.drivers.sensirion import Scd4xConfig, Scd30Config, Sps30Config
from sensorpipe.edge.drivers.sht import SHT_ADDRESSES, Precision, Sht3x, Sht4x
from sensorpipe.edge.duty import DutyConfig, DutyCycle, LaserHours, laser_key

I2CBusFactory = Callable[[int], I2CBus]


# A sensor tag a section may give its readings (`soil_probe.bed2`): the register's sensor names.
SENSOR_TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"


class _SensorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_s: float = Field(default=60.0, gt=0, description="seconds between readings")


class _SerialConfig(_SensorConfig):
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0")
    timeout_s: float = Field(default=3.0, gt=0)
    # Laser PM sensors (sensorpipe.edge.duty): readings this soon after the laser started are
    # discarded; `duty` sleeps it between readings.
    warmup_s: float = Field(default=0.0, ge=0, le=600)
    duty: DutyConfig | None = None

    @model_validator(mode="after")
    def _duty_fits(self) -> _SerialConfig:
        if self.duty is None:
            return self
        if self.duty.wake_s >= self.interval_s:
            raise PydanticCustomError(
                "duty_too_long",
                "duty.wake_s = {wake} is not shorter than interval_s = {interval}: the laser "
                "would never sleep; leave `duty` out, or read less often",
                {"wake": self.duty.wake_s, "interval": self.interval_s},
            )
        if self.duty.wake_s < self.warmup_s:
            raise PydanticCustomError(
                "duty_too_short",
                "duty.wake_s = {wake} is shorter than warmup_s = {warmup}: every reading would "
                "be taken warming up and discarded; wake it at least {warmup} s before",
                {"wake": self.duty.wake_s, "warmup": self.warmup_s},
            )
        return self


class Sds011Config(_SerialConfig):
    driver: Literal["sds011"]

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


class Pms5003Config(_SerialConfig):
    """Plantower PMS5003, and the PMS7003/PMSA003 (the same frames and commands)."""

    driver: Literal["pms5003"]
    # The `sensor` tag its readings carry: the model the device is registered with.
    model: Literal["pms5003", "pms7003", "pmsa003"] = "pms5003"
    mode: Literal["passive", "active"] = "passive"
    warmup_s: float = Field(default=30.0, ge=0, le=600)  # the data sheet's 30 s after a wake
    sensor: str | None = Field(
        default=None,
        pattern=SENSOR_TAG_PATTERN,
        description="the sensor tag of its readings (default: its model); give each of two "
        "laser sensors of a device its own, e.g. pms5003.north",
    )


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


class _ShtConfig(_SensorConfig):
    bus: int = Field(default=1, ge=0, le=255, description="I2C bus number: /dev/i2c-<bus>")
    address: int = Field(default=0x44)
    precision: Precision = Field(
        default="high", description="repeatability (SHT3x) / precision (SHT4x): high, medium, low"
    )
    stuck_after: int = Field(
        default=360, ge=1, description="readings in a row at >= 99.9 %RH before RH is left out"
    )
    model: ClassVar[str]

    @field_validator("address")
    @classmethod
    def _sht_address(cls, address: int) -> int:
        allowed = SHT_ADDRESSES[cls.model]
        if address not in allowed:
            raise PydanticCustomError(
                "i2c_address",
                "{address}: an {model} answers only at {allowed}; `i2cdetect -y 1` shows which",
                {
                    "address": hex(address) if address >= 0 else str(address),
                    "model": cls.model.upper(),
                    "allowed": " or ".join(hex(a) for a in allowed),
                },
            )
        return address


class Sht3xConfig(_ShtConfig):
    driver: Literal["sht3x"]
    model: ClassVar[str] = "sht3x"


class Sht4xConfig(_ShtConfig):
    driver: Literal["sht4x"]
    model: ClassVar[str] = "sht4x"


class SoilProbeConfig(_SensorConfig):
    """A capacitive soil-moisture probe on an ADS1115 input, calibrated per probe."""

    driver: Literal["soil_ads1115"]
    bus: int = Field(default=1, ge=0, le=255, description="I2C bus number: /dev/i2c-<bus>")
    address: int = Field(default=0x48, description="ADS1115 address: 0x48..0x4b (ADDR pin)")
    channel: int = Field(default=0, ge=0, le=3, description="input AIN0..AIN3")
    v_dry: float = Field(gt=0, le=6.144, description="this probe's output when dry (volts)")
    v_wet: float = Field(ge=0, le=6.144, description="this probe's output when wet (volts)")
    fsr_v: float = Field(default=4.096, description="ADS1115 full-scale range (PGA), volts")
    data_rate: int = Field(default=128, description="ADS1115 samples per second")
    sensor: str = Field(
        default="soil_probe",
        pattern=SENSOR_TAG_PATTERN,
        description="the sensor tag of its readings; give each probe of a device its own",
    )

    @field_validator("address", "fsr_v", "data_rate")
    @classmethod
    def _a_setting_the_chip_has(cls, value: float, info: ValidationInfo) -> float:
        settings: dict[str, tuple[Any, str]] = {
            "address": (
                ADS1115_ADDRESSES,
                "an ADS1115 answers only at 0x48 (ADDR to GND), 0x49 (VDD), 0x4a (SDA) or 0x4b "
                "(SCL); `i2cdetect -y 1` shows which",
            ),
            "fsr_v": (FSR_V, "the ADS1115 ranges are {allowed} volts (4.096 for a 3.3 V probe)"),
            "data_rate": (DATA_RATES, "the ADS1115 samples at {allowed} per second"),
        }
        allowed, text = settings[str(info.field_name)]
        if value not in allowed:
            shown = hex(int(value)) if info.field_name == "address" and value >= 0 else value
            raise PydanticCustomError(
                "ads1115_setting",
                "{value}: " + text,
                {
                    "value": shown,
                    "allowed": ", ".join(str(a) for a in allowed),
                },
            )
        return value

    @field_validator("v_wet")
    @classmethod
    def _dry_above_wet(cls, v_wet: float, info: ValidationInfo) -> float:
        v_dry = info.data.get("v_dry")
        if v_dry is not None and not v_dry > v_wet:
            raise PydanticCustomError(
                "calibration",
                "v_dry ({dry} V) must be above v_wet ({wet} V): a capacitive probe reads lower "
                "the wetter the soil; measure both with the probe in dry and in wet soil",
                {"dry": v_dry, "wet": v_wet},
            )
        return v_wet


class Ds18b20Config(_SensorConfig):
    """A DS18B20 probe on the 1-Wire bus (`dtoverlay=w1-gpio`), read through the kernel."""

    driver: Literal["ds18b20"]
    sensor_id: str | None = Field(
        default=None,
        description="its folder, 28-xxxxxxxxxxxx; may be left out when it is the only DS18B20",
    )
    quantity: Literal["soil_temperature", "temperature"] = Field(
        default="soil_temperature", description="soil_temperature, or temperature (air probe)"
    )
    w1_root: str = Field(default=W1_ROOT, description="where the kernel lists 1-Wire devices")
    sensor: str = Field(
        default="ds18b20",
        pattern=SENSOR_TAG_PATTERN,
        description="the sensor tag of its readings; give each probe of a device its own",
    )

    @field_validator("sensor_id")
    @classmethod
    def _a_ds18b20_id(cls, sensor_id: str | None) -> str | None:
        if sensor_id is not None and not SENSOR_ID.fullmatch(sensor_id):
            raise PydanticCustomError(
                "w1_id",
                "{id}: a DS18B20's folder is 28- and 12 hex digits, lower case, e.g. "
                "28-0000072a4b1c; `ls /sys/bus/w1/devices/` lists them",
                {"id": sensor_id},
            )
        return sensor_id


AnySensorConfig = (
    Sds011Config
    | Pms5003Config
    | Bme280Config
    | Sht3xConfig
    | Sht4xConfig
    | SoilProbeConfig
    | Ds18b20Config
    | Sps30Config
    | Scd30Config
    | Scd4xConfig
)
SensorConfig = Annotated[AnySensorConfig, Field(discriminator="driver")]


def _smbus(bus_number: int) -> I2CBus:
    from smbus2 import SMBus

    return SMBus(bus_number)


def _open_sds011(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    return Sds011.open(config.port, timeout_s=config.timeout_s)


def _open_pms5003(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    return Pms5003.open(
        config.port, mode=config.mode, timeout_s=config.timeout_s, model=config.model
    )


def _open_bme280(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    try:
        bus = i2c(config.bus)
    except OSError as exc:
        from sensorpipe.edge.errors import SensorConfigError

        raise SensorConfigError(f"bme280: cannot open I2C bus {config.bus}: {exc}") from exc
    return Bme280(bus, config.address, owns_bus=True)


def _i2c_bus(config: Any, i2c: I2CBusFactory) -> Any:
    try:
        return i2c(config.bus)
    except OSError as exc:
        from sensorpipe.edge.errors import SensorConfigError

        raise SensorConfigError(
            f"{config.driver}: cannot open I2C bus {config.bus}: {exc}"
        ) from exc


def _open_sht(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    kind = Sht3x if config.driver == "sht3x" else Sht4x
    return kind(
        _i2c_bus(config, i2c),
        config.address,
        precision=config.precision,
        stuck_after=config.stuck_after,
        owns_bus=True,
    )


def _open_soil(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    bus: SMBusBlock = _i2c_bus(config, i2c)
    adc = Ads1115(
        bus,
        config.address,
        fsr_v=config.fsr_v,
        data_rate=config.data_rate,
        lock=chip_lock(config.bus, config.address),  # a second probe on the chip waits its turn
    )
    return SoilProbe(
        adc, config.channel, v_dry=config.v_dry, v_wet=config.v_wet, model=config.sensor,
        owns_bus=True,
    )  # fmt: skip


def _open_ds18b20(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    return Ds18b20(config.w1_root, config.sensor_id, quantity=config.quantity, model=config.sensor)


def _open_sensirion(config: Any, i2c: I2CBusFactory) -> SensorDriver:
    """SPS30, SCD30, SCD4x: `config` minus the agent's own keys are the driver's options; an
    SPS30 with a `port` is read over its UART (sps30_uart)."""
    from importlib import import_module

    if getattr(config, "port", None) is not None:
        from sensorpipe.edge.drivers.sps30_uart import Sps30Uart

        options = config.model_dump(exclude={"driver", "interval_s", "bus", "port", "address"})
        return Sps30Uart(config.port, **options)
    module = import_module(f"sensorpipe.edge.drivers.{config.driver}")
    driver_class = getattr(module, config.driver.capitalize())
    options = config.model_dump(exclude={"driver", "interval_s", "bus", "port"})
    bus = _i2c_bus(config, i2c)
    try:
        return driver_class(bus, owns_bus=True, **options)
    except BaseException:
        close_bus(bus)  # the agent opens it again later: no file descriptor left behind
        raise


DRIVERS: dict[str, Callable[[Any, I2CBusFactory], SensorDriver]] = {
    "sds011": _open_sds011,
    "bme280": _open_bme280,
    "pms5003": _open_pms5003,
    "sps30": _open_sensirion,
    "scd30": _open_sensirion,
    "scd4x": _open_sensirion,  # sensirion.py
    "sht3x": _open_sht,
    "sht4x": _open_sht,
    "soil_ads1115": _open_soil,
    "ds18b20": _open_ds18b20,  # 1-Wire, through the kernel's w1_therm
}


def sensor_tag(config: SensorConfig) -> str:
    """The `sensor` tag of a configured sensor's readings and status: its own `sensor` key
    where its section has one (a soil probe, a DS18B20, a PMS5003: two of a kind on one device
    each get their own), else its model."""
    tag = getattr(config, "sensor", None)
    if isinstance(tag, str):
        return tag
    if isinstance(config, Pms5003Config):
        return config.model
    return config.driver


def duty_cycle(config: SensorConfig, hours: LaserHours) -> DutyCycle | None:
    """The warm-up, wakes and running hours of a laser PM sensor; None for other sensors."""
    if not isinstance(config, _SerialConfig):
        return None
    wake_s = config.duty.wake_s if config.duty is not None else 0.0
    model = config.model if isinstance(config, Pms5003Config) else config.driver
    key = laser_key(model, config.port)
    hours.claim(key, model)  # a count kept per model before
    return DutyCycle(model, wake_s=wake_s, warmup_s=config.warmup_s, hours=hours, key=key)


# The register's sensor models (`devices add --sensor`) and the driver that reads each (the
# `driver` of its [[sensors]] section): a driver may read several (the PMSx003 family), and a
# model's name may differ from its driver's (a soil probe on an ADS1115). An SPS30 on its UART
# is the `sps30` driver with a `port`.
MODEL_DRIVERS: dict[str, str] = {
    "sds011": "sds011", "bme280": "bme280", "sht3x": "sht3x", "sht4x": "sht4x",
    "soil_probe": "soil_ads1115", "ds18b20": "ds18b20",
    "sps30": "sps30", "scd30": "scd30", "scd4x": "scd4x",
    **{m: "pms5003" for m in ("pms5003", "pms7003", "pmsa003")},
}  # fmt: skip
READ_MODELS = frozenset(MODEL_DRIVERS)
# Models a driver reads but tags as another (the sensor tag its readings carry): an SHT31 is
# read by `sht3x` and its readings are tagged `sht3x`.
READ_AS = {"sht31": "sht3x"}


def open_driver(
    config: AnySensorConfig,
    *,
    i2c_bus_factory: I2CBusFactory = _smbus,
) -> SensorDriver:
    return DRIVERS[config.driver](config, i2c_bus_factory)
