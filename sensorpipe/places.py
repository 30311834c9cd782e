"""Where sensorpipe keeps its files on an installed machine: the same places on a Pi and on a
server, so `edge join` and `server setup` cannot disagree about them.

Debian's places below a root (`/` on a real installation; another directory for a trial or a
test, where nothing outside it is touched): configuration and secrets in etc/sensorpipe, what
the services keep from run to run (outboxes, books, keys, dead letters) in var/lib/sensorpipe,
systemd units in etc/systemd/system. Paths only: nothing here reads or writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Installation:
    """sensorpipe's places on the machine whose file system starts at `root`."""

    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "sensorpipe"

    @property
    def state(self) -> Path:
        return self.root / "var" / "lib" / "sensorpipe"

    @property
    def units_dir(self) -> Path:
        return self.root / "etc" / "systemd" / "system"
