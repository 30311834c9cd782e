"""What the agent can learn about its own host: Wi-Fi signal, clock synchronisation (and by
what: `clock_line`, said at start), and the C heap's settings."""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable
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
    # The C library the interpreter is linked with, from the process's own symbols: no
    # `ctypes.util.find_library` (it runs `ldconfig -p` in a subprocess and loads modules the
    # agent does not otherwise need). Found once: the agent asks for every message it queues.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "adjtimex") else None


class _Timex(ctypes.Structure):
    """The head of struct timex (adjtimex(2)), in the C library's own sizes (32- and 64-bit
    Pi OS alike), with room for the rest."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),  # microseconds
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_char * 512),
    ]


def kernel_clock() -> tuple[bool, float] | None:
    """What the kernel says of the clock (adjtimex, read only): whether an NTP client keeps it
    synchronised, and its maximum error in seconds; None where it cannot be asked."""
    libc = _libc()
    if libc is None:
        return None
    try:
        timex = _Timex()  # modes = 0: read only, no privilege needed
        state = int(libc.adjtimex(ctypes.byref(timex)))
    except (OSError, AttributeError, ctypes.ArgumentError):
        return None
    if state < 0:
        return None
    return state < TIME_ERROR, timex.maxerror / 1e6


def clock_synchronised() -> bool:
    """True when the kernel says NTP (chrony, timesyncd, ntpd) keeps the clock synchronised;
    False also where that cannot be known (a reading is marked unsynchronised then)."""
    kernel = kernel_clock()
    return kernel is not None and kernel[0]


# Time services, by the name the kernel gives their process (/proc/<pid>/comm, at most 15
# characters), as a start line names them.
TIME_SERVICES = {
    "chronyd": "chrony",
    "systemd-timesyn": "systemd-timesyncd",
    "ntpd": "ntpd",
    "ntpsec": "ntpsec",
    "openntpd": "openntpd",
    "htpdate": "htpdate",
    "ptp4l": "ptp4l",
}


def time_services(proc: Path = Path("/proc"), run: Path = Path("/run")) -> list[str]:
    """The time services running on this host (empty where none is found or /proc cannot be
    read). systemd-timesyncd is also known by the file it touches once it synchronised."""
    found: set[str] = set()
    try:
        for comm in proc.glob("[0-9]*/comm"):
            with contextlib.suppress(OSError):
                name = TIME_SERVICES.get(comm.read_text().strip())
                if name is not None:
                    found.add(name)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        if (run / "systemd" / "timesync" / "synchronized").exists():
            found.add("systemd-timesyncd")
    return sorted(found)


def clock_line(
    kernel: Callable[[], tuple[bool, float] | None] = kernel_clock,
    services: Callable[[], list[str]] = time_services,
) -> str:
    """One line for the agent's start: is the clock synchronised, and by what. Never raises:
    what cannot be found out is said to be unknown."""
    try:
        state = kernel()
    except Exception:  # a start line must not stop the agent
        state = None
    try:
        by = services()
    except Exception:  # nor finding the services
        by = []
    named = " and ".join(by) if by else None
    if state is None:
        how = f"{named} runs" if named else "no time service found"
        return (
            f"clock: synchronisation unknown (the kernel cannot be asked; {how}): readings "
            "are marked clock_synced=false"
        )
    synced, max_error_s = state
    if synced:
        error = (
            f"max error {max_error_s * 1000:.0f} ms" if max_error_s < 16 else "max error unknown"
        )
        return f"clock: synchronised by {named or 'an NTP client'} ({error})"
    if named:
        return (
            f"clock: not synchronised yet ({named} runs): readings are marked "
            "clock_synced=false until it is"
        )
    return (
        "clock: not synchronised, and no time service found (chrony, systemd-timesyncd, "
        "ntpd): readings are marked clock_synced=false; enable one (`timedatectl "
        "set-ntp true`) or fit a real-time clock"
    )


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
