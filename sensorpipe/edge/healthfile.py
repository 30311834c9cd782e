"""The agent's last sensor health on the Pi's own disk, for `edge check` to show.

`edge check` runs while the agent is stopped, so it cannot ask it what it counted. The agent
writes the sensor health of each status message it queues (per sensor: errors by kind, back-off,
last error) to `sensor-health.json` next to its outbox; `edge check` reads it and adds each
sensor's counts to its line. The counts are the agent's since it last started, as of the time
written in the file. One small file, rewritten once per status interval (atomically: a crash
leaves the old one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEALTH_FILE = "sensor-health.json"


@dataclass(frozen=True, slots=True)
class Counted:
    """What the agent last reported for one sensor."""

    errors: dict[str, int] = field(default_factory=dict)
    backoff_s: float = 0.0
    last_error: str | None = None


def write_health(path: Path, sensors: Sequence[dict[str, Any]], now: float) -> None:
    """Save the sensor health dumps of a status message; a disk that fails is only logged."""
    tmp = path.with_suffix(".tmp")
    text = json.dumps({"written_at": now, "sensors": list(sensors)})
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("%s: cannot save the sensor health: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_health(path: Path) -> tuple[datetime | None, dict[str, Counted]]:
    """(when it was written, per sensor tag what was counted); nothing for a missing or broken
    file (an agent that never ran here, or one from before this file)."""
    try:
        data = json.loads(path.read_text())
        written = datetime.fromtimestamp(float(data["written_at"]), UTC)
        counted = {
            str(s["sensor"]): Counted(
                errors={str(k): int(v) for k, v in (s.get("errors") or {}).items()},
                backoff_s=float(s.get("backoff_s") or 0.0),
                last_error=s.get("last_error"),
            )
            for s in data["sensors"]
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, {}
    return written, counted


def counted_text(counted: Counted, written: datetime) -> str:
    """One sensor's counts in words, for its `edge check` line; "" when there is none."""
    if not counted.errors:
        return ""
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(counted.errors.items()))
    text = f"the agent counted {kinds} since it last started (up to {written:%Y-%m-%d %H:%M} UTC"
    if counted.backoff_s:
        text += f", backed off to one try every {counted.backoff_s:g} s"
    return text + ")"
