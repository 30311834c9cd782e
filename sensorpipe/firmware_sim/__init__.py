"""Byte-accurate simulators of the sensors sensorpipe reads, and fleets of simulated devices.

Drivers are tested by talking to these through the same interfaces as the real hardware:
a serial port (a pty) for UART sensors and an smbus2-shaped bus object for I2C sensors.
Only tests, benchmarks and the demo import this package.
"""
