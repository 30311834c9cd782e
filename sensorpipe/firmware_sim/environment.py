"""A small, deterministic street climate: what the simulated sensors measure."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Conditions:
    pm2_5: float
    pm10: float
    temperature: float
    relative_humidity: float
    pressure_hpa: float


class Street:
    """Slowly varying conditions with sensor noise; the same seed gives the same street."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._base_pm = 8.0 + self._rng.random() * 12.0
        self._base_t = 8.0 + self._rng.random() * 10.0
        self._phase = self._rng.random() * math.tau
        self._t0 = time.monotonic()

    def at(self, t: float) -> Conditions:
        wave = math.sin(t / 600.0 + self._phase)
        pm2_5 = max(0.0, self._base_pm * (1.0 + 0.3 * wave) + self._rng.gauss(0.0, 0.8))
        pm10 = pm2_5 * (1.4 + 0.2 * self._rng.random())
        temperature = self._base_t + 2.0 * wave + self._rng.gauss(0.0, 0.05)
        humidity = min(100.0, max(0.0, 75.0 - 10.0 * wave + self._rng.gauss(0.0, 0.3)))
        pressure = 1013.0 + 3.0 * math.cos(t / 3000.0 + self._phase)
        return Conditions(pm2_5, pm10, temperature, humidity, pressure)

    # Live readings for simulated sensors: conditions at the seconds since the street was made.
    def pm_now(self) -> tuple[float, float]:
        c = self.at(self._elapsed())
        return c.pm2_5, c.pm10

    def climate_now(self) -> tuple[float, float, float]:
        c = self.at(self._elapsed())
        return c.temperature, c.relative_humidity, c.pressure_hpa

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0
