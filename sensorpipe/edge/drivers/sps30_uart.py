"""Sensirion SPS30 on its UART (SHDLC, 115200 8N1; SEL left open), through Sensirion's
`sensirion-uart-sps30`.

A section `driver = "sps30"` with `port` (and no `bus`) is read here; it reads what the I2C
driver (sps30.py) reads: PM1-PM10 and, unless `number_concentrations = false`, NC0.5-NC10 and
the typical particle size (`sps30.reading_of`), checked against the same data-sheet ranges.
Sensirion's package holds the command table and the SHDLC framing (start/stop byte 0x7E, byte
stuffing of 7E 7D 11 13, checksum = inverted low byte of the sum); `ShdlcSerialPort` opens the
port with pyserial (a pty in tests: firmware_sim.sps30_uart). It resolves beside the I2C
packages of the `sensirion` extra (pip picks sensirion-driver-adapters 2.3.1 and
sensirion-shdlc-driver 0.1.5 for both) and is imported only when such a sensor is opened.

Differences from I2C: there is no data-ready flag; a read with no new measurement since the
last is answered with an empty frame ("no new data"), which the driver polls for up to 1.5 s.
A sleeping SPS30 (firmware 2.0 on) ignores the UART until a low pulse: the driver sends one
0xFF byte, then the wake-up command (0x11) within the data sheet's 100 ms (Sensirion's own
wake-up sequence waits for a reply to a 0xFF frame first, 150 ms with its port's timeouts).

Failures as the agent's kinds (edge.errors): no reply `SensorTimeout`, a reply whose checksum
or framing is wrong `SensorChecksumError`, the state byte's "command not allowed in current
state" (0x43) kind `state` (a sensor found idle when it should measure, after a power cut, is
started again), another error code in the state byte kind `device_error`, a port that fails
`SensorIOError`, a mass outside the data sheet `SensorOutOfRange`, the status register's fan
or laser error kind `sensor_fault`. A port that cannot be opened, or a sensor that never
answers at open, is `SensorConfigError`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from sensorpipe.edge.drivers.sensirion import Sleep, Sps30Config, check_range
from sensorpipe.edge.drivers.sps30 import (
    QUANTITIES,
    reading_of,
    set_cleaning_interval,
    status_errors,
)
from sensorpipe.edge.errors import (
    SensorChecksumError,
    SensorConfigError,
    SensorError,
    SensorIOError,
    SensorTimeout,
)

BAUD_RATE = 115_200
FLOAT_FORMAT = 0x0103  # start measurement's data: sub-command 0x01, 0x03 = big-endian floats
WAKE_PULSE = b"\xff"
NOT_ALLOWED = 0x43  # state byte: command not allowed in the current state
NO_NEW_DATA_WAIT_S = 1.5
# Sensirion's port waits this long beyond a command's own time for the first reply byte.
ADDITIONAL_RESPONSE_S = 0.1


@functools.cache
def _vendor() -> Any:
    """Sensirion's SHDLC classes, imported on first use; their per-timeout warnings muted (the
    agent counts failed reads and logs a summary)."""
    try:
        import serial
        from sensirion_driver_adapters.shdlc_adapter.shdlc_channel import ShdlcChannel
        from sensirion_shdlc_driver import ShdlcSerialPort, errors
        from sensirion_uart_sps30.device import Sps30Device
    except ImportError as exc:
        raise SensorConfigError(
            "the SPS30 on a UART needs Sensirion's driver: pip install 'sensorpipe[sensirion]'"
        ) from exc
    for name in ("sensirion_shdlc_driver.port", "sensirion_driver_adapters.shdlc_adapter"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return serial, ShdlcChannel, ShdlcSerialPort, errors, Sps30Device


class Sps30Uart:
    """The SPS30 over SHDLC on `port`; `sleep` is the clock of the driver's own waits."""

    model = "sps30"
    frames_bad = 0  # a bad frame fails its read (SensorChecksumError): nothing is skipped

    def __init__(self, port: str, *, sleep: Sleep = time.sleep, **settings: Any) -> None:
        config = Sps30Config(driver="sps30", port=port, **settings)
        serial, channel_class, port_class, self._errors, device_class = _vendor()
        self.port = port
        self._sleep = sleep
        self.numbers = config.number_concentrations
        self.firmware = (0, 0)
        try:
            self._serial_port = port_class(port, BAUD_RATE, ADDITIONAL_RESPONSE_S)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SensorConfigError(f"sps30: cannot open {port}: {exc}") from exc
        self.device: Any = device_class(channel_class(self._serial_port))
        try:
            self._start(config)
        except BaseException:
            self._serial_port.close()
            raise

    # --- the link ------------------------------------------------------------------------
    def call(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        """One vendor call; its SHDLC and port errors as the agent's kinds."""
        errors = self._errors
        try:
            return function(*args)
        except errors.ShdlcTimeoutError as exc:
            raise SensorTimeout(f"sps30: no answer on {self.port} to {what}") from exc
        except errors.ShdlcDeviceError as exc:
            code = exc.error_code
            if code == NOT_ALLOWED:
                raise SensorError(
                    f"sps30: {what} is not allowed in the sensor's current state (0x43)",
                    kind="state",
                ) from exc
            raise SensorError(
                f"sps30: the sensor refused {what}: error 0x{code:02x} ({exc.error_message})",
                kind="device_error",
            ) from exc
        except errors.ShdlcResponseError as exc:
            why = "wrong checksum" if "checksum" in str(exc).lower() else "malformed frame"
            raise SensorChecksumError(
                f"sps30: bad checksum in the answer to {what} ({why})"
            ) from exc
        except (errors.ShdlcError, OSError, _vendor()[0].SerialException) as exc:
            raise SensorIOError(f"sps30: {self.port} failed in {what}: {exc}") from exc

    def _wake(self) -> None:
        """The low pulse (one 0xFF byte) that wakes a sleeping sensor's UART, then wake-up."""
        with contextlib.suppress(Exception):  # an awake sensor refuses it (0x43): fine
            raw = self._serial_port._serial
            raw.write(WAKE_PULSE)
            raw.flush()
            self.device.wake_up()

    def _start(self, config: Sps30Config) -> None:
        self._wake()
        try:
            version = self.call("firmware version", self.device.read_version)
        except SensorError:
            self._sleep(0.1)  # still powering up, or a garbled answer: once more
            try:
                version = self.call("firmware version", self.device.read_version)
            except SensorTimeout as exc:
                raise SensorConfigError(
                    f"sps30: no answer on {self.port}: no SPS30 there, or not in UART mode (SEL "
                    "left open; its TX to the Pi's RX and back; 5 V)",
                    kind="timeout",
                ) from exc
        self.firmware = (int(version[0]), int(version[1]))
        self._stop_measuring()  # left running by a crash
        set_cleaning_interval(self.call, self.device, config.fan_cleaning_interval_s)
        self.call("start measurement", self.device.start_measurement, FLOAT_FORMAT)

    def _stop_measuring(self) -> None:
        try:
            self.call("stop measurement", self.device.stop_measurement)
        except SensorError as exc:
            if exc.kind != "state":  # not measuring: already stopped
                raise

    # --- readings ------------------------------------------------------------------------
    def _values(self) -> tuple[float, ...] | None:
        """The ten floats, or None for the empty "no new data" answer."""
        try:
            values = self.call("read measured values", self.device.read_measurement_values_float)
        except struct.error:
            return None  # an empty answer: Sensirion's package fails unpacking it
        except SensorError as exc:
            if exc.kind != "state":
                raise
            # Idle where it should measure: it lost power. Start it again for the next read.
            self.call("start measurement", self.device.start_measurement, FLOAT_FORMAT)
            raise SensorError(
                "sps30: it was not measuring (a power cut?): measurement restarted", kind="state"
            ) from exc
        return tuple(values)

    def read(self) -> dict[str, float]:
        waited = 0.0
        while (values := self._values()) is None:
            if waited >= NO_NEW_DATA_WAIT_S:
                raise SensorTimeout(f"sps30: no new measurement for {NO_NEW_DATA_WAIT_S:g} s")
            self._sleep(0.1)
            waited += 0.1
        if len(values) != len(QUANTITIES):
            raise SensorChecksumError(f"sps30: {len(values)} values in the answer, not 10")
        if self.firmware >= (2, 2):
            status = self.call("status register", self.device.read_device_status_register, False)
            errors = status_errors(int(status[0]))
            if errors:
                raise SensorError(
                    f"sps30: {'; '.join(errors)} (the sensor reports it)", kind="sensor_fault"
                )
        reading = reading_of(values, self.numbers)
        check_range(self.model, reading)
        return reading

    def clean_fan(self) -> None:
        """Run the fan at full speed for 10 s (only while measuring; readings pause)."""
        self.call("fan cleaning", self.device.start_fan_cleaning)

    def close(self) -> None:
        with contextlib.suppress(SensorError):  # a sensor gone is closed anyway
            self._stop_measuring()
            if self.firmware >= (2, 0):
                self.call("sleep", self.device.sleep)
        self._serial_port.close()
