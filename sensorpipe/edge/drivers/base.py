"""The contract every sensor driver keeps.

The agent opens a driver (through the registry) when the sensor is first due, calls `read()`
once per configured interval, and `close()` on shutdown. Each sensor has a worker thread of its
own: the open and every read run there, so a slow or hanging sensor never delays another's
reading. What a driver must do (SDS011 and BME280 are the examples):

- `model`: the `sensor` tag of its readings and its health (e.g. "sds011").
- `read()`: one measurement, quantity name (protocol.quantities) to value in its unit. It may
  block on its port or bus, but should bound that itself (a serial timeout, a data-ready poll
  with a deadline) and raise `SensorTimeout` when the sensor does not answer. The agent bounds
  it too: a read (or open) still running after the sensor's `read_timeout_s` (default
  `agent.READ_TIMEOUT_S`, 10 s) is counted as a timeout, and the sensor is not read again until
  that call returns (its result is then discarded). A driver is called from one thread at a
  time, never from two at once, but not always from the thread that opened it.
- A failed read raises `SensorError`, preferably the subclass saying why (sensorpipe.edge.errors):
  `SensorChecksumError` (a checksum or CRC mismatch), `SensorTimeout` (no answer),
  `SensorIOError` (port or bus failed), `SensorOutOfRange` (a value outside the data sheet's
  range), or `SensorError(..., kind="...")` for a kind of its own. Its message starts with the
  model ("pms5003: ..."), is one line, and says what happened. The agent counts it per sensor
  and kind, backs the sensor off (exponentially, capped, reset by the next good read) and
  reports it in the sensor health it publishes. Any other exception is a driver bug: counted
  as kind "bug", the agent goes on. OSError and TimeoutError that escape are counted as "io"
  and "timeout".
- `frames_bad`: malformed frames (bad checksum or CRC, bad framing) seen and skipped since the
  driver was opened; the agent adds the increase to the sensor's "checksum" errors. A frame
  counted here must not also be raised as `SensorChecksumError` (each fault is counted once).
  A driver without framing (I2C without CRC) says 0.
- No retries, no scheduling, no message building, no sleeping between readings, and no log
  line per bad frame or failed read: the agent counts those and logs a rate-limited summary
  (a checksum storm on a mini-UART is thousands of frames).
- The constructor or `open` raises `SensorConfigError` (or OSError) when the sensor cannot be
  opened (no port, no bus, wrong chip id), its `kind` saying why where the driver knows
  ("wrong_model", "wrong_address", "timeout": edge.errors; `edge check` names it); the agent
  reports it and opens it again every `reopen_after_s`, reading the other sensors meanwhile
  (counted as kind "not_available").
- `close()`: release the port or bus; put the sensor to sleep where it has a sleep mode. Not
  called while a read hangs.
"""

from __future__ import annotations

from typing import Protocol


class SensorDriver(Protocol):
    #: Sensor model, used as the `sensor` tag of every reading (e.g. "sds011").
    model: str

    @property
    def frames_bad(self) -> int:
        """Malformed frames seen and skipped since the driver was opened."""
        ...

    def read(self) -> dict[str, float]:
        """One measurement: quantity name (see protocol.quantities) to value in its unit."""
        ...

    def close(self) -> None:
        """Release the port or bus; put the sensor to sleep where it has a sleep mode."""
        ...
