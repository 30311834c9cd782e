"""Strict times of history files, to epoch milliseconds.

One grammar for every format: ISO 8601 date and time, `T` or a space between them, seconds,
an optional fraction, and an optional `Z` or `+hh:mm` offset. A time without an offset is UTC:
the Sensor.Community archive, the Telraam API and Snuffelfiets exports write UTC. Anything
else (a date alone, `1/3/2024 10:00`, epoch seconds, a month 13) is refused, never guessed.

The common case of the archives, `2024-03-01T12:34:56` (a million rows a file), takes a fast
path: the minute is looked up in a cache (checked once), the seconds in a table of 60.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

# ASCII digits only: `\d` would take other scripts' digits too, and int() reads them.
_ISO = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
# Readings before this are no sensor history but a broken clock (or a zero in the column).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_MAX = 100_000
_midnights: dict[str, int] = {}
_minutes: dict[str, int] = {}
_SIXTY = {f"{n:02d}": n for n in range(60)}  # "00".."59": checks and converts at once


class TimestampError(ValueError):
    """A time that is not in the accepted form, or no real time (30 February, 25:00)."""


def _midnight_ms(date: str) -> int:
    ms = _midnights.get(date)
    if ms is None:
        try:
            day = datetime(int(date[0:4]), int(date[5:7]), int(date[8:10]), tzinfo=UTC)
        except ValueError as exc:
            raise TimestampError(f"{date!r} is no real date ({exc})") from None
        if day < EARLIEST:
            raise TimestampError(f"{date} is before 1970")
        ms = int(day.timestamp()) * 1000
        if len(_midnights) >= _CACHE_MAX:
            _midnights.clear()
        _midnights[date] = ms
    return ms


def utc_ms(text: str) -> int:
    """Epoch milliseconds of `text`; a fraction finer than a millisecond is rounded."""
    if len(text) == 19:
        # Readings come minutes apart at most: a minute, once checked, is a dict lookup.
        minute = _minutes.get(text[:16])
        second = _SIXTY.get(text[17:19])
        if minute is not None and second is not None and text[16] == ":":
            return minute + second * 1000
        if second is not None and text[16] == ":":
            minute = _minute_ms(text[:16])
            if minute is not None:
                return minute + second * 1000
    return _general(text)


def _minute_ms(prefix: str) -> int | None:
    """`2024-03-01T12:34` as epoch ms (cached), or None when it is not of that form."""
    hour, minute = _SIXTY.get(prefix[11:13]), _SIXTY.get(prefix[14:16])
    if (
        hour is None
        or hour > 23
        or minute is None
        or prefix[10] != "T"
        or prefix[13] != ":"
        or prefix[4] != "-"
        or prefix[7] != "-"
        or not (prefix[:4] + prefix[5:7] + prefix[8:10]).isascii()
        or not (prefix[:4] + prefix[5:7] + prefix[8:10]).isdigit()
    ):
        return None
    ms = _midnight_ms(prefix[:10]) + (hour * 60 + minute) * 60_000
    if len(_minutes) >= _CACHE_MAX:
        _minutes.clear()
    _minutes[prefix] = ms
    return ms


def _general(text: str) -> int:
    match = _ISO.match(text)
    if match is None:
        raise TimestampError(
            f"{text[:40]!r} is not an ISO 8601 time like 2024-03-01T12:34:56 or "
            f"2024-03-01T12:34:56.789Z"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    tz = UTC
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise TimestampError(f"{text[:40]!r}: no such UTC offset {offset}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz
        )
    except ValueError as exc:
        raise TimestampError(f"{text[:40]!r} is no real time ({exc})") from None
    if moment < EARLIEST:
        raise TimestampError(f"{text[:40]!r} is before 1970")
    ms = int(moment.timestamp()) * 1000
    if fraction:
        ms += round(int(fraction) * 1000 / 10 ** len(fraction))
    return ms
