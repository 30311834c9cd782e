"""Sensor drivers: `base` (the contract every driver keeps), one module per sensor (`sds011` over
UART, `bme280` over I2C), and `registry` (the driver names the edge configuration may use, each
with its config schema and opener)."""

from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.registry import DRIVERS, open_driver

__all__ = ["DRIVERS", "SensorDriver", "open_driver"]
