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

They are kept per sensor, not per model: two PMS5003s on one Pi each have their own count. A
sensor whose driver reads an id of its own (`serial_number`: the SDS011's 2-byte device id,
in every frame it sends) is known by its model and that id (`serial_key`: "sds011#A160"), so
its count follows the sensor to another port or another Pi's file, and a sensor swapped in on
the same port starts from 0. One without (the PMS5003 has none) is known by its model and
serial port (`laser_key`: "pms5003@/dev/ttyAMA0"); a port under /dev/serial/by-id/ names the
USB adapter by its own serial number, so the count stays with the sensor whichever ttyUSB
number the adapter gets at boot. The agent starts each sensor on its port's key and moves to
its id's once the driver read it (`DutyCycle.identify`, at open, before the laser's time is
counted): a count kept under the port's key (before ids were read) goes to the first sensor
identified there, unless that sensor has a count of its own. A file from before, keyed by model
("pms5003"), is taken over by the first configured sensor of that model when the agent starts
(`LaserHours.claim`): no hour is lost; a count two sensors shared stays with the first of them.
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


def laser_key(model: str, port: str) -> str:
    """The key of one laser sensor's running hours: its model and its serial port."""
    return f"{model}@{port}"


def serial_key(model: str, serial: str) -> str:
    """The key of the running hours of a laser sensor that says who it is: model and id."""
    return f"{model}#{serial}"


class LaserHours:
    """Running hours per sensor, persisted in `path` (JSON: laser_key -> hours)."""

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

    def claim(self, key: str, model: str) -> None:
        """Take over a count kept per model (the file's format before per-sensor keys) for the
        sensor `key`, unless that sensor has a count of its own. Saved with the next save;
        until then the file keeps the old entry, so a crash in between loses nothing."""
        if key in self._hours or model not in self._hours:
            return
        self._hours[key] = self._hours.pop(model)
        log.info("laser hours: %s takes over the %s count (%.1f h)", key, model, self._hours[key])

    def move(self, old: str, new: str) -> None:
        """Keep `old`'s count under `new` from now on, unless `new` has a count of its own (a
        sensor seen before): `old`'s then stays where it is."""
        if new in self._hours or old not in self._hours:
            return
        self._hours[new] = self._hours.pop(old)
        log.info("laser hours: %s takes over the %s count (%.1f h)", new, old, self._hours[new])

    def on(self, key: str, now: float) -> None:
        self._on_since.setdefault(key, now)

    def off(self, key: str, now: float) -> None:
        since = self._on_since.pop(key, None)
        if since is not None:
            self._hours[key] = self._hours.get(key, 0.0) + max(0.0, now - since) / 3600.0
            self.save(now)

    def hours(self, key: str, now: float) -> float:
        running = now - self._on_since[key] if key in self._on_since else 0.0
        return self._hours.get(key, 0.0) + max(0.0, running) / 3600.0

    def checkpoint(self, now: float) -> None:
        """Fold the running lasers' time in and save, at most every SAVE_EVERY_S."""
        if now - self._saved_at < SAVE_EVERY_S:
            return
        for key, since in list(self._on_since.items()):
            self._hours[key] = self._hours.get(key, 0.0) + max(0.0, now - since) / 3600.0
            self._on_since[key] = now
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
        self,
        model: str,
        *,
        wake_s: float,
        warmup_s: float,
        hours: LaserHours | None = None,
        key: str | None = None,
    ) -> None:
        """`key`: whose running hours these are (`laser_key`); by default the model."""
        self.model = model
        self.key = key or model
        self.port_key = self.key  # the key before the sensor said who it is (`identify`)
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
            self.hours.on(self.key, now)

    def warm(self, now: float) -> bool:
        """Whether a reading taken now is kept; counts the one that is not."""
        if now >= self.warm_from:
            return True
        self.discarded += 1
        return False

    def running_hours(self, now: float) -> float:
        """This sensor's laser hours, the running ones included."""
        return self.hours.hours(self.key, now)

    def identify(self, key: str, now: float) -> None:
        """The sensor said who it is (`serial_key`): its hours are kept under `key` from now
        on, taking over the count kept under its port's key unless it has one of its own (a
        sensor swapped in later finds none left there); a laser running meanwhile is counted
        up to `now` under the key before."""
        if key == self.key:
            return
        running = self.awake
        if running:
            self.hours.off(self.key, now)
        self.hours.move(self.port_key, key)
        log.info("laser hours of %s: %s from now on", self.key, key)
        self.key = key
        if running:
            self.hours.on(key, now)
        self.hours.save(now)

    def slept(self, now: float) -> None:
        if self.awake:
            self.awake = False
            self.hours.off(self.key, now)
