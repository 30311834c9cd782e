"""Telraam traffic counts: the API's `POST /v1/reports/traffic` answer (JSON, `{"report":
[...]}` or the bare list) and CSV exports with the same columns.

A report per segment (or camera instance) and interval: `segment_id`, `instance_id` (-1 for a
segment's report), `date` (UTC, the interval's start), `interval` (`hourly`, `quarterly`),
`uptime` (the share of the interval the camera counted), counts per mode `heavy`, `car`,
`bike`, `pedestrian` and per direction `heavy_lft`, `heavy_rgt`, ..., `pedestrian_rgt`, and
`v85` (km/h), `car_speed_hist_0to70plus`, `car_speed_hist_0to120plus`, `timezone`,
`direction`, and from the S2 `night` and `mode_*` columns.

Stored in the series the edge counter writes (`traffic`: count per class and direction, and a
`counter` point per interval with `running_fraction`), with sensorpipe's classes:

| Telraam      | sensorpipe      | Telraam counts in it                                        |
| ------------ | --------------- | ----------------------------------------------------------- |
| `pedestrian` | `pedestrian`    | pedestrians (and, from the S2, strollers)                   |
| `bike`       | `cyclist`       | two-wheelers: bicycles, and from the S2 also motorcycles     |
| `car`        | `car`           | cars and vans                                               |
| `heavy`      | `heavy_vehicle` | buses, trucks, light trucks, tractors, trailers (and trams) |

Telraam scales its counts up to the whole interval (a count seen in 75 % of the hour is divided
by 0.75); sensorpipe's `count` is what a counter saw while it ran, with `running_fraction`
saying how long that was. So `count` = round(Telraam's figure x uptime), Telraam's own figure is
kept as `count_extrapolated`, and uptime becomes `running_fraction`. `_lft`/`_rgt` become the
directions `lft`/`rgt` (as Telraam names them: traffic moving to the camera's left or right;
`--direction-names` renames them). The totals per mode are the sum of both directions and not
stored apart; `v85` becomes the counter point's `v85_kmh`. Speed histograms, `night` and the
S2 `mode_*` breakdown are not imported (the summary lists them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sensorpipe.importer.base import DeviceSpec, ImportContext, Target
from sensorpipe.importer.fields import Columns, RowSource, json_text
from sensorpipe.importer.files import Row
from sensorpipe.importer.reader import ColumnRow, ColumnsReader
from sensorpipe.protocol.counting import COUNT_CLASSES

# Telraam mode -> sensorpipe class, in the order the points are written.
CLASSES = (
    ("pedestrian", "pedestrian"),
    ("bike", "cyclist"),
    ("car", "car"),
    ("heavy", "heavy_vehicle"),
)
DIRECTION_COLUMNS = tuple(f"{mode}_{side}" for mode, _ in CLASSES for side in ("lft", "rgt"))
INTERVALS = {"hourly": 3600.0, "quarterly": 900.0}
# Columns read; the rest with values is listed as not imported (the mode totals excepted).
KEYS = ("segment_id", "instance_id", "date", "interval", "uptime", "v85", *DIRECTION_COLUMNS)
SEGMENT, INSTANCE, DATE, INTERVAL, UPTIME, V85 = range(6)
FIRST_COUNT = 6
COLUMNS = Columns(KEYS)
USED = set(KEYS) | {"heavy", "car", "bike", "pedestrian", "timezone", "direction"}
MAX_COUNT = 1_000_000.0
UPTIME_SLACK = 1e-6  # uptimes of 1.0000001 are Telraam's rounding, not more than the interval

assert {c for _, c in CLASSES} <= set(COUNT_CLASSES)


class Telraam(ColumnsReader):
    name = "telraam"
    title = "a Telraam traffic export"
    device_prefix = "telraam-"
    columns = COLUMNS
    json_key = "report"
    json_shape = (
        'Telraam\'s traffic report, {"report": [{"segment_id": ..., "date": ..., '
        '"uptime": ..., "car_lft": ...}]}'
    )

    def prepare(self) -> None:
        columns, first = self.peek()
        missing = [c for c in ("date", "uptime", *DIRECTION_COLUMNS) if c not in columns]
        if missing:
            raise self.not_format(
                f"it lacks {', '.join(missing)} (expected "
                f"the columns of Telraam's traffic reports: segment_id, date, interval, uptime, "
                f"heavy_lft, heavy_rgt, car_lft, ..., pedestrian_rgt)"
            )
        o = self.options
        if o.device is None and o.segment is None and first is not None and not _segment(first):
            raise self.problem(
                "names no segment or camera (no segment_id or instance_id): "
                "give --segment ID or --device ID"
            )

    def json_rows(self, ctx: ImportContext, items: Iterator[tuple[int, Any]]) -> RowSource:
        extra = ctx.not_imported

        def counted() -> Iterator[tuple[int, Any]]:
            for n, item in items:
                if isinstance(item, dict):
                    for k, v in item.items():
                        if k not in USED and _holds_value(
                            json_text(v) if not isinstance(v, list) else str(v)
                        ):
                            extra[k] = extra.get(k, 0) + 1
                yield n, item

        return COLUMNS.json_rows(counted())

    def csv_rows(self, ctx: ImportContext, source: Iterator[Row], names: list[str]) -> RowSource:
        unused = [(i, c) for i, c in enumerate(names) if c not in USED]
        counts = [0] * len(unused)

        def counted() -> Iterator[Row]:
            for row in source:
                f = row[2]
                for k, (i, _) in enumerate(unused):
                    if i < len(f) and _holds_value(f[i]):
                        counts[k] += 1
                yield row

        yield from COLUMNS.csv_rows(counted(), names)
        for k, (_, name) in enumerate(unused):
            if counts[k]:
                ctx.not_imported[name] = counts[k]

    def read(self, ctx: ImportContext, source: Iterator[ColumnRow]) -> None:
        o = self.options
        lft, rgt = o.direction_names
        lines, line_nos = ctx.lines, ctx.line_nos
        targets: dict[str, Target] = {}
        for n, raw, r in source:
            segment = o.segment or _segment(r)
            if segment is None and o.device is None:
                ctx.reject(n, raw, "bad_row", "names no segment_id or instance_id")
                continue
            key = segment or ""
            target = targets.get(key)
            if target is None:
                target = ctx.target(_spec(key, lft, rgt))
                targets[key] = target
            t = ctx.observed_at(n, raw, "date", r[DATE], target)
            if t is None:
                continue
            interval = INTERVALS.get(r[INTERVAL] or "hourly")
            if interval is None:
                ctx.reject(
                    n,
                    raw,
                    "bad_row",
                    f"interval {r[INTERVAL][:20]!r}: expected hourly or quarterly",
                    target,
                )
                continue
            try:
                uptime = float(r[UPTIME])
            except ValueError:
                ctx.reject(
                    n, raw, "bad_value", f"uptime {r[UPTIME][:20]!r} is not a number", target
                )
                continue
            if not 0.0 <= uptime <= 1.0 + UPTIME_SLACK:
                ctx.reject(n, raw, "bad_value", f"uptime {uptime} is not between 0 and 1", target)
                continue
            uptime = min(uptime, 1.0)
            out: list[tuple[str, str]] = []
            problem = None
            for k, column in enumerate(DIRECTION_COLUMNS):
                s = r[FIRST_COUNT + k]
                if not s:
                    continue
                try:
                    value = float(s)
                except ValueError:
                    problem = f"{column} {s[:20]!r} is not a number"
                    break
                if not 0.0 <= value <= MAX_COUNT:
                    problem = f"{column} = {value}: a count is between 0 and {MAX_COUNT:.0f}"
                    break
                count_class = CLASSES[k // 2][1]
                direction = lft if k % 2 == 0 else rgt
                prefix = ctx.traffic_prefix(target, count_class, direction)
                if prefix is None:
                    problem = f"device {target.device_id} has no direction {direction!r}"
                    break
                count = round(value * uptime)
                qc = ctx.count_quality_fields(
                    target, count_class, direction, t, interval, count, uptime, line_no=n
                )
                out.append(
                    (
                        prefix,
                        f"count={count}i,interval_s={interval!r},count_extrapolated={value!r}{qc}",
                    )
                )
            if problem is not None:
                reason = "undeclared_direction" if "no direction" in problem else "bad_value"
                ctx.reject(n, raw, reason, problem, target)
                continue
            if not out:
                ctx.reject(n, raw, "bad_row", "no count in any direction column", target)
                continue
            counter = f'running_fraction={uptime!r},model_id="telraam",interval_s={interval!r}'
            try:
                v85 = float(r[V85]) if r[V85] else None
            except ValueError:
                v85 = None
            if v85 is not None and 0.0 < v85 <= 300.0:
                counter += f",v85_kmh={v85!r}"
            for prefix, fields in out:
                lines.append(f"{prefix}{fields} {t}")
                line_nos.append(n)
            ctx.store(n, f"{ctx.counter_prefix(target)}{counter} {t}", target)


def _spec(segment: str, lft: str, rgt: str) -> DeviceSpec:
    what = (
        f"camera instance {segment.removeprefix('instance-')}"
        if segment.startswith("instance-")
        else f"road segment {segment}"
    )
    return DeviceSpec(
        device_id=f"telraam-{segment}",
        purpose=f"Telraam traffic counter, {what}; counts imported from Telraam exports",
        sensors=("camera",),
        directions=(lft, rgt),
        count_classes=tuple(c for _, c in CLASSES),
        personal_data=True,  # a camera, though only counts leave it
    )


def _segment(r: list[str]) -> str | None:
    """`12345` for a segment's report, `instance-678` for a camera's, None without either."""
    for column, prefix in ((SEGMENT, ""), (INSTANCE, "instance-")):
        value = r[column].strip()
        if value.endswith(".0"):  # JSON numbers written by some tools as floats
            value = value[:-2]
        # At most 20 digits (a uint64): Python refuses to read an int of thousands.
        if value.isascii() and value.isdigit() and len(value) <= 20 and int(value) > 0:
            return prefix + value
    return None


def _holds_value(text: str) -> bool:
    """Whether a column not imported held something worth naming (not empty, not 0)."""
    text = text.strip()
    if text in ("", "[]"):
        return False
    try:
        return float(text) != 0.0
    except ValueError:
        return True
