"""The contract every sensor driver keeps.

The agent's sampler opens a driver (through the registry) when it is first due, calls
`read()` once per configured interval from a single thread, and `close()` on shutdown. Drivers
stay thin: no retries, no scheduling, no message building. A failed read raises `SensorError`;
the sampler counts it and tries again next interval. A driver that cannot be opened raises
`SensorConfigError` (or OSError); the sampler reports it and opens it again later, reading
the other sensors meanwhile.
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
