"""Sensor drivers and the registry of driver names the edge configuration may use."""

from sensorpipe.edge.drivers.base import SensorDriver
from sensorpipe.edge.drivers.registry import DRIVERS, open_driver

__all__ = ["DRIVERS", "SensorDriver", "open_driver"]
