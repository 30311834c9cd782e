"""Duty cycling of laser PM sensors (SDS011, PMS5003), and the laser's running hours.

A laser PM sensor wears out while its laser and fan run: the SDS011's laser is rated for about
8,000 hours of continuous use, a PMS5003's mean time to failure is at least 3 years (data sheet;
about 26,000 hours). Configured with `duty = { wake_s = 30 }`, the agent keeps the sensor asleep
between readings and wakes it `wake_s` before each one: with a reading every 5 minutes the
laser runs a tenth of the time and lasts ten times as long.

Readings taken less than `warmup_s` after the laser started are discarded at the edge, not
sent with a flag: the data sheets say the first 30 s after a wake are unstable (the fan is not
up to speed), the central `warmup` flag only knows the device's uptime, not when its laser
woke, and such a reading is known to be wrong, so it is not worth a message. A duty cycle's
`wake_s` must cover `warmup_s`, so a duty-cycled sensor is read warm; what is discarded is the
first reading of an always-on sensor, or one after the agent fell behind.

The running hours are kept in `laser-hours.json` next to the outbox (the agent's state
directory), so they survive restarts and updates, and reported in the sensor health the agent
publishes (`laser_hours`); the register shows them with the expected life
(protocol.register.LASER_LIFE_H).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

HOURS_FILE = "laser-hours.json"
SAVE_EVERY_S = 3_600.0  # an always-on laser's hours reach the disk at least this often


class LaserDriver(Protocol):
    """What the agent asks of a duty-cycled sensor's driver (Sds011, Pms5003)."""

    def wake(self) -> None: ...

    def sleep(self) -> None: ...


class DutyConfig(BaseModel):
    """`duty = { wake_s = 30 }` in a laser PM sensor's section."""

    model_config = ConfigDict(extra="forbid")
    wake_s: float = Field(
        default=30.0, gt=0, description="seconds the sensor runs before each reading"
    )


class LaserHours:
    """Running hours per sensor, persisted in `path` (JSON: model -> hours)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._hours: dict[str, float] = {}
        self._on_since: dict[str, float] = {}
        self._saved_at = 0.0
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text())
                self._hours = {str(k): float(v) for k, v in loaded.items()}
            except (OSError, ValueError, AttributeError, TypeError) as exc:
                log.warning("%s: cannot read the laser hours (%s); counting from 0", path, exc)

    def on(self, model: str, now: float) -> None:
        self._on_since.setdefault(model, now)

    def off(self, model: str, now: float) -> None:
        since = self._on_since.pop(model, None)
        if since is not None:
            self._hours[model] = self._hours.get(model, 0.0) + max(0.0, now - since) / 3600.0
            self.save(now)

    def hours(self, model: str, now: float) -> float:
        running = now - self._on_since[model] if model in self._on_since else 0.0
        return self._hours.get(model, 0.0) + max(0.0, running) / 3600.0

    def checkpoint(self, now: float) -> None:
        """Fold the running lasers' time in and save, at most every SAVE_EVERY_S."""
        if now - self._saved_at < SAVE_EVERY_S:
            return
        for model, since in list(self._on_since.items()):
            self._hours[model] = self._hours.get(model, 0.0) + max(0.0, now - since) / 3600.0
            self._on_since[model] = now
        self.save(now)

    def save(self, now: float) -> None:
        self._saved_at = now
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({k: round(v, 4) for k, v in self._hours.items()}))
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk: the hours are kept in memory meanwhile
            log.warning("%s: cannot save the laser hours: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()


class DutyCycle:
    """One laser sensor's schedule, driven by the caller's monotonic clock: woken `wake_s`
    before each reading (0: always on), readings within `warmup_s` of a wake discarded."""

    def __init__(
        self, model: str, *, wake_s: float, warmup_s: float, hours: LaserHours | None = None
    ) -> None:
        self.model = model
        self.wake_s = wake_s
        self.warmup_s = warmup_s
        self.hours = hours or LaserHours(None)
        self.awake = False
        self.warm_from = 0.0
        self.discarded = 0  # readings dropped because the laser was warming up

    def wake_at(self, next_due: float) -> float | None:
        """When to wake the sensor for the reading due at `next_due`; None: no wake needed."""
        if not self.wake_s or self.awake:
            return None
        return next_due - self.wake_s

    def woke(self, now: float) -> None:
        if not self.awake:
            self.awake = True
            self.warm_from = now + self.warmup_s
            self.hours.on(self.model, now)

    def warm(self, now: float) -> bool:
        """Whether a reading taken now is kept; counts the one that is not."""
        if now >= self.warm_from:
            return True
        self.discarded += 1
        return False

    def slept(self, now: float) -> None:
        if self.awake:
            self.awake = False
            self.hours.off(self.model, now)
