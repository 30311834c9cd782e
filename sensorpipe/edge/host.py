"""What the agent can learn about its own host: Wi-Fi signal and clock synchronisation."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from pathlib import Path

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


def wifi_rssi_dbm(
    interface: str | None = None, proc: Path = Path("/proc/net/wireless")
) -> int | None:
    """Signal level of the first (or named) wireless interface, or None without Wi-Fi."""
    try:
        lines = proc.read_text().splitlines()[2:]
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(":")
        if interface and name.strip() != interface:
            continue
        fields = rest.split()
        if len(fields) >= 3:
            try:
                return int(float(fields[2].rstrip(".")))
            except ValueError:
                return None
    return None


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # Found once: find_library runs `ldconfig -p` in a subprocess (about 1.5 ms, and a fork of
    # the agent) on every call, and the agent asks for every message it queues.
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def clock_synchronised() -> bool:
    """True when the kernel says NTP (chrony, timesyncd, ntpd) keeps the clock synchronised."""
    libc = _libc()
    if libc is None:
        return False
    try:
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return False
    return 0 <= int(state) < TIME_ERROR


M_ARENA_MAX = -8  # mallopt(3)


def limit_malloc_arenas() -> None:
    """Keep every thread on one C heap (glibc makes one per thread by default, each holding
    freed memory of its own): the agent's threads allocate little outside Python's own
    allocator. Call before the threads start. Nothing on a C library without mallopt."""
    libc = _libc()
    with contextlib.suppress(AttributeError, OSError):
        if libc is not None:
            libc.mallopt(M_ARENA_MAX, 1)


def trim_memory() -> None:
    """Give the C heap's free memory back to the system (glibc's malloc_trim): what importing
    and loading the configuration used and freed stays in the process otherwise."""
    libc = _libc()
    with contextlib.suppress(AttributeError, OSError):
        if libc is not None:
            libc.malloc_trim(0)
