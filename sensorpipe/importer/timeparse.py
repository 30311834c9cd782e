"""Strict times of history files, to epoch milliseconds.

One grammar for every format: ISO 8601 date and time, `T` or a space between them, seconds,
an optional fraction, and an optional `Z` or `+hh:mm` offset. A time without an offset is UTC:
the Sensor.Community archive, the Telraam API and Snuffelfiets exports write UTC. Anything
else (a date alone, `1/3/2024 10:00`, epoch seconds, a month 13) is refused, never guessed.

Loggers write local times in a format of their own: `LocalTimes` reads them (a `strptime`
format, a fixed offset or a zone with daylight saving, `zone` reads `--timezone`).

The common case of the archives, `2024-03-01T12:34:56` (a million rows a file), takes a fast
path: the minute is looked up in a cache (checked once), the seconds in a table of 60.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


_dates: dict[tuple[str, str, str], int] = {}
_NUMERIC = {"Y": r"([0-9]{4})", "m": r"([0-9]{1,2})", "d": r"([0-9]{1,2})", "H": r"([0-9]{1,2})",
            "M": r"([0-9]{1,2})", "S": r"([0-9]{1,2})"}  # fmt: skip


def _numeric_format(fmt: str) -> tuple[re.Pattern[str], tuple[int, ...]] | None:
    """A regular expression for a `strptime` format of %Y, %m, %d, %H, %M and %S between
    literal characters (each directive at most once, %Y among them), and where year, month,
    day, hour, minute and second are among ("1", "0", *its groups); None for any other format
    (strptime reads it)."""
    pattern, order = [], []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            d = fmt[i + 1 : i + 2]
            if d not in _NUMERIC or d in order:
                return None
            pattern.append(_NUMERIC[d])
            order.append(d)
            i += 2
            continue
        if c.isspace():  # as strptime: white space in the format is any run of it
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            pattern.append(r"\s+")
            continue
        pattern.append(re.escape(c))
        i += 1
    if "Y" not in order:
        return None
    where = tuple(order.index(d) + 2 if d in order else (0 if d in "md" else 1) for d in "YmdHMS")
    return re.compile("".join(pattern) + r"\Z", re.IGNORECASE), where


_OFFSET = re.compile(r"^(?:UTC|GMT)?([+\-\u2212])([0-9]{1,2})(?::?([0-9]{2}))?$")


def zone(text: str) -> tzinfo:
    """A time zone as `--timezone` gives it: `UTC`, an offset (`-05:00`, `UTC-05:00`, `+0100`)
    or an IANA name with daylight saving (`Europe/Amsterdam`); ValueError says what is wrong."""
    name = text.strip()
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = _OFFSET.match(name.upper())
    if m is not None:
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"no such UTC offset {text!r}")
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{text[:60]!r} is no time zone: give an offset like -05:00 or a zone name like "
            f"Europe/Amsterdam"
        ) from None


class LocalTimes:
    """Times as a logger writes them, to epoch ms: in `fmt` (a `strptime` format such as
    `%m/%d/%Y %H:%M`; None: ISO 8601 as `utc_ms` reads it) and, where the text has no offset,
    in `tz`. In a zone with daylight saving, a local time the clocks skipped is refused, and
    a time that occurs twice (the hour the clocks go back) is the first occurrence unless the
    rows before it were already later: rows in time order then come out in order. Call it on
    a file's rows in the file's order."""

    def __init__(self, fmt: str | None, tz: tzinfo) -> None:
        self.fmt = fmt
        self.tz = tz
        self._last_ms: int | None = None
        self._fixed = tz is UTC or isinstance(tz, timezone)
        # A fixed zone and a format of numbers only (the common case, a row a minute): a
        # regular expression and a cache of midnights instead of strptime, 3 times faster.
        self._fast = _numeric_format(fmt) if fmt is not None and self._fixed else None
        offset = tz.utcoffset(None) if self._fixed else None
        self._offset_ms = 0 if offset is None else int(offset.total_seconds() * 1000)

    def __call__(self, text: str) -> int:
        if self._fast is not None:
            ms = self._numeric(self._fast, text)
            if ms is not None:
                return ms
        if self.fmt is None:
            match = _ISO.match(text)
            if match is None or match.group(8):
                return _general(text)  # with its own offset (or refused with the ISO words)
            y, mo, d, h, mi, sec = (int(g) for g in match.groups()[:6])
            try:
                moment = datetime(y, mo, d, h, mi, sec)
            except ValueError as exc:
                raise TimestampError(f"{text[:40]!r} is no real time ({exc})") from None
            fraction = match.group(7)
        else:
            try:
                moment = datetime.strptime(text, self.fmt)
            except ValueError:
                raise TimestampError(
                    f"{text[:40]!r} does not match --time-format {self.fmt!r}"
                ) from None
            fraction = None
        if moment.tzinfo is None:
            moment = self._local(moment, text)
        if moment < EARLIEST:
            raise TimestampError(f"{text[:40]!r} is before 1970")
        ms = round(moment.timestamp() * 1000) if self.fmt else int(moment.timestamp()) * 1000
        if fraction:
            ms += round(int(fraction) * 1000 / 10 ** len(fraction))
        self._last_ms = ms
        return ms

    def _numeric(self, fast: tuple[re.Pattern[str], tuple[int, ...]], text: str) -> int | None:
        """`text` read by the format's regular expression; None where it does not match or
        is no real time (strptime then says why, in its words)."""
        match = fast[0].match(text)
        if match is None:
            return None
        g = ("1", "0", *match.groups())  # a directive the format lacks: month, day 1; hour 0
        year, month, day, hour, minute, second = (g[i] for i in fast[1])
        h, mi, sec = int(hour), int(minute), int(second)
        if h > 23 or mi > 59 or sec > 59:
            return None
        date = (year, month, day)
        midnight = _dates.get(date)
        if midnight is None:
            try:
                moment = datetime(int(year), int(month), int(day), tzinfo=UTC)
            except ValueError:
                return None
            midnight = int(moment.timestamp()) * 1000
            if len(_dates) >= _CACHE_MAX:
                _dates.clear()
            _dates[date] = midnight
        ms = midnight + ((h * 60 + mi) * 60 + sec) * 1000 - self._offset_ms
        if ms < 0:
            raise TimestampError(f"{text[:40]!r} is before 1970")
        self._last_ms = ms
        return ms

    def _local(self, naive: datetime, text: str) -> datetime:
        if self._fixed:
            return naive.replace(tzinfo=self.tz)
        first = naive.replace(tzinfo=self.tz, fold=0)
        second = naive.replace(tzinfo=self.tz, fold=1)
        if first.utcoffset() == second.utcoffset():
            return first
        back = first.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None)
        if back != naive:  # fold=0 of a skipped time is the time before the gap
            raise TimestampError(
                f"{text[:40]!r} does not exist in {self.tz} (the clocks skipped it)"
            )
        last = self._last_ms
        if last is not None and first.timestamp() * 1000 < last <= second.timestamp() * 1000:
            return second
        return first
