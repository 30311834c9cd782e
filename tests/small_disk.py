"""A small tmpfs to fill, for tests of what happens when a disk is full.

Mounting needs root. The tests that use it fail (never skip) without root: a full disk is a
case that must be tested, and `make test` runs as root.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(path: Path, *, size_kib: int) -> Iterator[Path]:
    """A tmpfs of `size_kib` mounted at `path` (created), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail(
            "this test needs root: it mounts a small tmpfs (mount -t tmpfs) to fill it; "
            "run it as root, as `make test` does"
        )
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        # Lazy: a process that still has a file open there (a stopped ingest's last moments)
        # does not keep the mount; it goes once that file is closed.
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Write one file in `directory` until its disk has no room left; remove it to free it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9):  # tmpfs hands out whole pages
            try:
                while True:
                    os.write(fd, bytes(chunk))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler
