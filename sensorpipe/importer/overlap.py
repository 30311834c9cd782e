"""An import must not blend into another source's data of the same device.

Points of two sources at the same device and times are both kept (their `source` tags differ),
but every mean, sum and count over that device adds them up: an archive imported into a live
kit's device at the same seconds turns an hourly PM2.5 mean of 20 into 486, a Telraam export
imported into a live camera turns 155 cars in an hour into 255. So before a file is written,
InfluxDB is asked, per device and measurement family (air readings: `air`; counts: `traffic`
and `counter`), whether points of another `source` lie in the file's time range for that
device (for counts: to the end of the file's last interval). If so, the file is refused and
nothing of it is written. Points of the same source are the file itself imported before:
writing them again overwrites them, so importing again still works.

The file's time ranges need a reading of the file before the one that writes. It is done only
where it can find something: when a device this import may write to (`--device`, or any
device id the format registers, `sc-...`) has points of another source at all, which two
`SHOW TAG VALUES` queries tell at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.protocol import storage
from sensorpipe.protocol.provenance import SOURCE_TAG

AIR_READINGS = "air readings"
COUNTS = "counts"
FAMILIES: dict[str, tuple[str, ...]] = {
    AIR_READINGS: (storage.AIR,),
    COUNTS: (storage.TRAFFIC, storage.COUNTER),
}
FAMILY_OF = {m: family for family, ms in FAMILIES.items() for m in ms}

Span = tuple[int, int]  # first and last millisecond


def devices_with_other_sources(influx: InfluxClient, source: str) -> dict[str, set[str]]:
    """Per family, the devices that have points of a source other than `source`."""
    out: dict[str, set[str]] = {}
    for family, measurements in FAMILIES.items():
        q = (
            f"SHOW TAG VALUES FROM {', '.join(identifier(m) for m in measurements)} "
            f"WITH KEY = {identifier('device_id')} "
            f"WHERE {identifier(SOURCE_TAG)} != {string_literal(source)}"
        )
        out[family] = {
            str(values[1])
            for series in influx.query(q)
            for values in series.get("values") or []
            if len(values) >= 2
        }
    return out


class Spans:
    """The time span of the lines a file would write, per (device, family), for the
    devices asked about: filled from line protocol as the format writes it."""

    def __init__(self, devices: dict[str, set[str]]) -> None:
        self._devices = devices
        self.spans: dict[tuple[str, str], Span] = {}

    def add(self, lines: list[str]) -> None:
        for line in lines:
            measurement, _, rest = line.partition(",")
            family = FAMILY_OF.get(measurement)
            if family is None:
                continue
            device = rest.split(",", 1)[0].split(" ", 1)[0].removeprefix("device_id=")
            if device not in self._devices[family]:
                continue
            fields, _, stamp = line.rpartition(" ")
            t = int(stamp)
            end = t
            at = fields.find("interval_s=")
            if at >= 0:  # a count covers its interval
                value = fields[at + len("interval_s=") :].split(",", 1)[0].split(" ", 1)[0]
                end = t + max(0, int(float(value) * 1000) - 1)
            key = (device, family)
            first, last = self.spans.get(key, (t, end))
            self.spans[key] = (min(first, t), max(last, end))


@dataclass(frozen=True)
class Overlap:
    device: str
    family: str
    source: str
    found: Span  # the other source's first and last point in the file's span
    span: Span  # the file's span for the device


def find_overlap(influx: InfluxClient, source: str, spans: Spans) -> Overlap | None:
    """The first (device, family) whose span holds points of another source."""
    for (device, family), (first, last) in sorted(spans.spans.items()):
        found: dict[str, list[int]] = {}
        for measurement in FAMILIES[family]:
            for order in ("ASC", "DESC"):
                q = (
                    f"SELECT * FROM {identifier(measurement)} WHERE "
                    f"{identifier('device_id')} = {string_literal(device)} AND "
                    f"{identifier(SOURCE_TAG)} != {string_literal(source)} AND "
                    f"time >= {first}ms AND time <= {last}ms "
                    f"GROUP BY {identifier(SOURCE_TAG)} ORDER BY time {order} LIMIT 1"
                )
                for series in influx.query(q):
                    other = (series.get("tags") or {}).get(SOURCE_TAG) or "(none)"
                    for values in series.get("values") or []:
                        found.setdefault(other, []).append(int(values[0]))
        if found:
            other = sorted(found)[0]
            times = found[other]
            return Overlap(device, family, other, (min(times), max(times)), (first, last))
    return None


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def refusal(path: object, fmt_source: str, overlap: Overlap, device_given: bool) -> str:
    """The one line that refuses a file: which device, which source, which times, and what
    to do instead."""
    o = overlap
    if device_given:
        instead = (
            "leave --device out (the file's own device is registered, source import) or give "
            "--device a device that holds only imported data"
        )
    else:
        instead = "give --device a device that holds only imported data"
    return (
        f"{path}: refused, nothing written: device {o.device} already has {o.family} from "
        f"source {o.source} from {iso(o.found[0])} to {iso(o.found[1])}, within this file's "
        f"{iso(o.span[0])} to {iso(o.span[1])}; {fmt_source} points there would be added to "
        f"them in every mean and count. Import it under another device id: {instead}"
    )
