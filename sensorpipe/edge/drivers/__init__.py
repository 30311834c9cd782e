"""Sensor drivers: `base` (the contract every driver keeps), one module per sensor (`sds011` and
`pms5003` over UART, `bme280` over I2C, `sht` for the Sensirion SHT3x/SHT4x, `ads1115` for the
ADC and the capacitive soil probe on it; `ds18b20`, the 1-Wire soil or air temperature probe
read through the kernel's w1_therm files; `sps30`, `scd30` and `scd4x` over I2C through
Sensirion's own drivers, with what they share in `sensirion`, and `sps30_uart`, the SPS30 on
its UART (SHDLC) through Sensirion's), shared pieces (`sensirion_crc`:
Sensirion's CRC-8 and word framing, the one CRC every Sensirion driver and simulator uses;
`i2c_raw`: plain I2C writes and reads for command-style sensors), and `registry` (the driver
names the edge configuration may use, each with its config schema and opener).

A driver is one module here, not a folder holding its test, sample configuration and README
as a Telegraf plugin or an ESPHome component is: the wheel a Pi installs carries only what
runs, so each driver's test lives in `tests/`, its simulator in `firmware_sim/`, its sample
section in `config/edge.example.toml` (loaded by a test) and its wiring in the README. Adding a
sensor touches those four places and one line of `registry`."""

from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.registry import DRIVERS, open_driver

__all__ = ["DRIVERS", "SensorDriver", "open_driver"]
