"""`sensorpipe calibrate report`: one self-contained HTML page about a calibration, for the
analyst of a municipality: inline SVG, no script, no stylesheet or font from anywhere.

It shows the hourly pairs as the fit used them (`report_pairs`: the devices' hours >= 75 %
complete against the reference's hours, the hour's RH from the device, else the station), in
the calibration's period or the one asked for:

- two scatter plots, the raw and the calibrated hourly means (y) against the reference (x),
  with the 1:1 line, the US EPA's target area (the lines whose slope is 1 ± 0.35 and intercept
  within ± 5 µg/m³ lie in it) and the least-squares line of the values on the reference;
- the statistics: as stored with the calibration (raw, calibrated, and the cross-validated or
  leave-one-device-out figures) and over the hours shown, each EPA target met or not;
- the time series of the reference, the raw and the calibrated values;
- the method in words, its algorithm-register entry, the period, the devices it is assigned
  to; hours of fog (RH >= 98 %) marked in every plot.

The points are drawn in data units: each scatter's `<g class="points">` has a transform
`matrix(s 0 0 -s tx ty)` from (reference, value) to the page, and each `<circle>` holds the
pair itself (cx = reference, cy = value), so the picture can be checked against the numbers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sensorpipe.calibration.group import FOG_RH
from sensorpipe.calibration.methods import CalibrationError, apply
from sensorpipe.calibration.stats import TARGETS, agreement

HOUR_MS = 3_600_000
# The scatter plots: a square plot area of SIDE px with its lower left corner at (LEFT, BOTTOM).
SIDE, LEFT, TOP = 340.0, 56.0, 16.0
BOTTOM = TOP + SIDE
# The time series: WIDTH x HEIGHT px plot area.
TS_LEFT, TS_WIDTH, TS_HEIGHT = 56.0, 860.0, 220.0
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


@dataclass
class ReportPairs:
    """The hourly pairs a report draws: hour start (ms), device, raw mean, reference, the
    hour's RH (NaN: none), and the calibrated value (NaN: the calibration gives none)."""

    hours: list[int] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    rh: list[float] = field(default_factory=list)
    calibrated: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hours)

    def fog(self) -> list[bool]:
        return [not math.isnan(h) and h >= FOG_RH for h in self.rh]


def report_pairs(
    influx: Any,
    record: dict[str, Any],
    start_ms: int,
    end_ms: int,
    factors: dict[int, float | None] | None = None,
) -> ReportPairs:
    """The calibration's training devices' hourly pairs in [start_ms, end_ms), read from
    InfluxDB as a fit reads them, with their calibrated values; for a group calibration the
    members' hours with their hour's stored factor (`factors`)."""
    from sensorpipe.calibration.data import Window, group_inputs, training_pairs

    quantity, reference = record["quantity"], record["reference"]
    window = Window(start_ms, end_ms)
    out = ReportPairs()
    if record["method"] == "group":
        inputs = group_inputs(influx, record["devices"], reference, quantity, window)
        for device in record["devices"]:
            own_rh = inputs.member_rh.get(device, {})
            for hour, raw in sorted(inputs.members[device].items()):
                if hour not in inputs.reference:
                    continue
                rh = own_rh.get(hour, inputs.station_rh.get(hour))
                factor = (factors or {}).get(hour)
                out.hours.append(hour)
                out.devices.append(device)
                out.raw.append(raw)
                out.reference.append(inputs.reference[hour])
                out.rh.append(math.nan if rh is None else rh)
                out.calibrated.append(math.nan if factor is None else raw * factor)
        return out
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    training = training_pairs(influx, record["devices"], reference, quantity, start, end)
    pairs = training.pairs
    calibrated = apply(record["method"], record["coefficients"], pairs.raw, pairs.rh)
    return ReportPairs(
        list(pairs.hours),
        list(pairs.devices),
        list(pairs.raw),
        list(pairs.reference),
        list(pairs.rh),
        [float(v) for v in calibrated],
    )


# --- drawing -------------------------------------------------------------------------------


def _f(x: float) -> str:
    """A number for SVG: enough digits, no exponent surprises."""
    return f"{x:.6g}" if abs(x) >= 1e-4 or x == 0 else "0"


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def axis_range(values: Sequence[float]) -> tuple[float, float]:
    """A range from 0 (or below, for negative values) to a round step above the largest."""
    finite = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
    lo, hi = min(0.0, min(finite)), max(finite)
    step = nice_step(hi - lo)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step + (step if hi == lo else 0)


def scatter_svg(
    plot_id: str,
    title: str,
    reference: Sequence[float],
    values: Sequence[float],
    fog: Sequence[bool],
    quantity: str,
    unit: str,
    lo: float,
    hi: float,
) -> str:
    """A square scatter of `values` (y) against `reference` (x), pairs with a NaN left out."""
    keep = [
        i for i in range(len(values)) if math.isfinite(values[i]) and math.isfinite(reference[i])
    ]
    s = SIDE / (hi - lo)
    tx, ty = LEFT - s * lo, BOTTOM + s * lo
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{plot_id}" width="{_f(LEFT + SIDE + 24)}" '
        f'height="{_f(BOTTOM + 48)}" role="img" aria-label="{html.escape(title)}">',
        f'<rect x="{_f(LEFT)}" y="{_f(TOP)}" width="{_f(SIDE)}" height="{_f(SIDE)}" '
        'fill="#fff" stroke="#888"/>',
        f'<clipPath id="{plot_id}-clip"><rect x="{_f(LEFT)}" y="{_f(TOP)}" width="{_f(SIDE)}" '
        f'height="{_f(SIDE)}"/></clipPath>',
    ]
    parts += _scatter_axes(lo, hi, s, quantity, unit)
    matrix = f"matrix({_f(s)} 0 0 {_f(-s)} {_f(tx)} {_f(ty)})"
    guides = [f'<g clip-path="url(#{plot_id}-clip)"><g transform="{matrix}">']
    target = TARGETS.get(quantity)
    if target is not None:
        (slo, shi), (ilo, ihi) = target.slope, target.intercept
        band = [
            (lo, slo * lo + ilo),
            (hi, slo * hi + ilo),
            (hi, shi * hi + ihi),
            (lo, shi * lo + ihi),
        ]
        points = " ".join(f"{_f(x)},{_f(y)}" for x, y in band)
        guides.append(
            f'<polygon class="epa-target" points="{points}" fill="#ffe9a8" fill-opacity="0.55"/>'
        )
        for slope, icept in ((slo, ilo), (shi, ihi)):
            guides.append(_line("epa-limit", lo, hi, slope, icept, "#c9a227", "4 3"))
    guides.append(_line("one-to-one", lo, hi, 1.0, 0.0, "#444", None))
    stats = agreement([values[i] for i in keep], [reference[i] for i in keep], quantity)
    if stats.get("slope") is not None:
        guides.append(_line("fitted", lo, hi, stats["slope"], stats["intercept"], "#d62728", None))
    guides.append("</g></g>")
    parts += guides
    r = 2.6 / s
    circles = [f'<g class="points" id="{plot_id}-points" transform="{matrix}">']
    for i in keep:
        cls = ' class="fog"' if fog[i] else ""
        colour = 'fill="none" stroke="#ff7f0e"' if fog[i] else 'fill="#1f77b4" fill-opacity="0.55"'
        circles.append(
            f'<circle{cls} cx="{_f(reference[i])}" cy="{_f(values[i])}" r="{_f(r)}" {colour} '
            'vector-effect="non-scaling-stroke"/>'
        )
    circles.append("</g>")
    parts += circles
    parts.append(
        f'<text x="{_f(LEFT + SIDE / 2)}" y="{_f(TOP - 4)}" text-anchor="middle" '
        f'font-weight="bold">{html.escape(title)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _line(
    cls: str, lo: float, hi: float, slope: float, icept: float, colour: str, dash: str | None
) -> str:
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<line class="{cls}" x1="{_f(lo)}" y1="{_f(slope * lo + icept)}" x2="{_f(hi)}" '
        f'y2="{_f(slope * hi + icept)}" stroke="{colour}" stroke-width="1.5"{dashes} '
        'vector-effect="non-scaling-stroke"/>'
    )


def _scatter_axes(lo: float, hi: float, s: float, quantity: str, unit: str) -> list[str]:
    out = []
    step = nice_step(hi - lo)
    tick = lo
    while tick <= hi + step / 1000:
        px = LEFT + s * (tick - lo)
        py = BOTTOM - s * (tick - lo)
        label = _f(round(tick, 6))
        out.append(
            f'<text x="{_f(px)}" y="{_f(BOTTOM + 14)}" text-anchor="middle" font-size="11">'
            f"{label}</text>"
        )
        out.append(
            f'<text x="{_f(LEFT - 4)}" y="{_f(py + 4)}" text-anchor="end" font-size="11">'
            f"{label}</text>"
        )
        tick += step
    q = html.escape(f"{quantity} ({unit})")
    out.append(
        f'<text x="{_f(LEFT + SIDE / 2)}" y="{_f(BOTTOM + 32)}" text-anchor="middle" '
        f'font-size="12">reference {q}</text>'
    )
    out.append(
        f'<text transform="translate(14 {_f(TOP + SIDE / 2)}) rotate(-90)" '
        f'text-anchor="middle" font-size="12">sensor {q}</text>'
    )
    return out


def timeseries_svg(pairs: ReportPairs, quantity: str, unit: str) -> str:
    """The reference, and per device the raw and calibrated hourly values, over time; fog
    hours shaded."""
    if not pairs.hours:
        return ""
    first, last = min(pairs.hours), max(pairs.hours)
    span_h = max(1.0, (last - first) / HOUR_MS + 1)
    lo, hi = axis_range([*pairs.raw, *pairs.reference, *pairs.calibrated])
    sx, sy = TS_WIDTH / span_h, TS_HEIGHT / (hi - lo)
    top = 16.0
    bottom = top + TS_HEIGHT
    matrix = f"matrix({_f(sx)} 0 0 {_f(-sy)} {_f(TS_LEFT)} {_f(bottom + sy * lo)})"
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" id="timeseries" '
        f'width="{_f(TS_LEFT + TS_WIDTH + 16)}" height="HEIGHT" role="img" '
        'aria-label="time series">',
        f'<rect x="{_f(TS_LEFT)}" y="{_f(top)}" width="{_f(TS_WIDTH)}" height="{_f(TS_HEIGHT)}" '
        'fill="#fff" stroke="#888"/>',
        f'<g class="series" transform="{matrix}">',
    ]
    fog_hours = sorted({h for h, f in zip(pairs.hours, pairs.fog(), strict=True) if f})
    for h in fog_hours:
        x = (h - first) / HOUR_MS
        parts.append(
            f'<rect class="fog" x="{_f(x)}" y="{_f(lo)}" width="1" height="{_f(hi - lo)}" '
            'fill="#ff7f0e" fill-opacity="0.15"/>'
        )
    reference = dict(zip(pairs.hours, pairs.reference, strict=True))
    parts.append(_path("reference", sorted(reference.items()), first, "#000", None))
    legend: list[tuple[str, str, str | None]] = [("reference", "#000", None)]
    for k, device in enumerate(dict.fromkeys(pairs.devices)):
        colour = COLOURS[k % len(COLOURS)]
        idx = [i for i, d in enumerate(pairs.devices) if d == device]
        raw = [(pairs.hours[i], pairs.raw[i]) for i in idx]
        cal = [(pairs.hours[i], pairs.calibrated[i]) for i in idx]
        parts.append(_path(f"raw {device}", raw, first, colour, "3 2"))
        parts.append(_path(f"calibrated {device}", cal, first, colour, None))
        legend += [(f"{device} raw", colour, "3 2"), (f"{device} calibrated", colour, None)]
    parts.append("</g>")
    step = nice_step(hi - lo, 4)
    tick = lo
    while tick <= hi + step / 1000:
        py = bottom - sy * (tick - lo)
        parts.append(
            f'<text x="{_f(TS_LEFT - 4)}" y="{_f(py + 4)}" text-anchor="end" font-size="11">'
            f"{_f(round(tick, 6))}</text>"
        )
        tick += step
    day = 24 * HOUR_MS
    every = max(1, math.ceil(span_h / 24 / 10))
    d = first - first % day + (day if first % day else 0)
    while d <= last:
        px = TS_LEFT + sx * (d - first) / HOUR_MS
        label = datetime.fromtimestamp(d / 1000, UTC).strftime("%d %b")
        parts.append(
            f'<line x1="{_f(px)}" y1="{_f(bottom)}" x2="{_f(px)}" y2="{_f(bottom + 4)}" '
            'stroke="#888"/>'
            f'<text x="{_f(px)}" y="{_f(bottom + 16)}" text-anchor="middle" font-size="11">'
            f"{label}</text>"
        )
        d += every * day
    x, y = TS_LEFT, bottom + 32  # the legend, wrapped to rows within the plot's width
    for name, colour, dash in [*legend, ("fog (RH ≥ 98 %)", "#ff7f0e", "fog")]:
        width = 30 + 7 * len(name)
        if x + width > TS_LEFT + TS_WIDTH and x > TS_LEFT:
            x, y = TS_LEFT, y + 18
        if dash == "fog":
            mark = (
                f'<rect x="{_f(x)}" y="{_f(y)}" width="18" height="10" '
                f'fill="{colour}" fill-opacity="0.3"/>'
            )
        else:
            dashes = f' stroke-dasharray="{dash}"' if dash else ""
            mark = (
                f'<line x1="{_f(x)}" y1="{_f(y + 5)}" x2="{_f(x + 18)}" '
                f'y2="{_f(y + 5)}" stroke="{colour}" stroke-width="2"{dashes}/>'
            )
        parts.append(
            f'{mark}<text x="{_f(x + 22)}" y="{_f(y + 9)}" font-size="11">'
            f"{html.escape(name)}</text>"
        )
        x += width
    parts[0] = parts[0].replace('height="HEIGHT"', f'height="{_f(y + 24)}"')
    parts.append(
        f'<text transform="translate(14 {_f(top + TS_HEIGHT / 2)}) rotate(-90)" '
        f'text-anchor="middle" font-size="12">{html.escape(f"{quantity} ({unit})")}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _path(
    name: str, points: list[tuple[int, float]], first: int, colour: str, dash: str | None
) -> str:
    """A line through hourly points, broken where an hour is missing."""
    d, previous = [], None
    for hour, value in sorted(points):
        if not math.isfinite(value):
            previous = None
            continue
        x = (hour - first) / HOUR_MS + 0.5
        d.append(f"{'L' if previous == hour - HOUR_MS else 'M'}{_f(x)} {_f(value)}")
        previous = hour
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<path data-name="{html.escape(name)}" d="{" ".join(d)}" fill="none" stroke="{colour}" '
        f'stroke-width="1.3"{dashes} vector-effect="non-scaling-stroke"/>'
    )


# --- the page ------------------------------------------------------------------------------


def _num(value: Any, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)


def stats_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Statistics rows as an HTML table with each EPA target met or not."""
    head = (
        "<tr><th></th><th>n</th><th>slope</th><th>intercept</th><th>R²</th><th>RMSE</th>"
        "<th>NRMSE</th><th>slope target</th><th>intercept target</th><th>R² target</th>"
        "<th>RMSE target</th></tr>"
    )
    body = []
    for name, s in rows:
        targets = s.get("targets") or {}
        cells = "".join(
            (
                f'<td class="{"met" if targets[k] else "missed"}">'
                f"{'met' if targets[k] else 'not met'}</td>"
            )
            if k in targets
            else "<td>–</td>"
            for k in ("slope", "intercept", "r2", "rmse")
        )
        nrmse = "–" if s.get("nrmse") is None else f"{s['nrmse']:.1f} %"
        body.append(
            f"<tr><th>{html.escape(name)}</th><td>{s.get('n', 0)}</td>"
            f"<td>{_num(s.get('slope'))}</td><td>{_num(s.get('intercept'))}</td>"
            f"<td>{_num(s.get('r2'))}</td><td>{_num(s.get('rmse'))}</td><td>{nrmse}</td>"
            f"{cells}</tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _stored_rows(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    stats = record["statistics"]
    if record["method"] == "group":
        rows = [
            ("raw (member hours with a leave-one-out factor)", stats["raw"]),
            ("calibrated, leave one device out", stats["calibrated"]),
        ]
        for device, s in stats.get("per_device", {}).items():
            rows += [(f"{device}: raw", s["raw"]), (f"{device}: left out", s["calibrated"])]
        return rows
    rows = [("raw", stats["raw"]), ("calibrated (in-sample)", stats["calibrated"])]
    rows += [(f"cross-validated {m} (out-of-fold)", s) for m, s in stats["cv"].items() if "n" in s]
    return rows


STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 62em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th:first-child { text-align: left; }
td.met { background: #e3f4e1; } td.missed { background: #fbe1e1; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
dt { font-weight: bold; } dd { margin: 0 0 0.5em 1em; }
.note { color: #555; font-size: 0.9em; }
"""


def render(
    record: dict[str, Any],
    pairs: ReportPairs,
    period: tuple[str, str],
    assigned: list[dict[str, Any]],
) -> str:
    """The report page of calibration `record` over `pairs` (hours in `period`)."""
    from sensorpipe.query.calibration_texts import calibration_description

    quantity, unit, method = record["quantity"], record["unit"], record["method"]
    description = calibration_description(method, "en")
    fog = pairs.fog()
    values = [*pairs.raw, *pairs.reference, *(v for v in pairs.calibrated if math.isfinite(v))]
    lo, hi = axis_range(values)
    raw_svg = scatter_svg(
        "scatter-raw", "raw vs reference", pairs.reference, pairs.raw, fog, quantity, unit, lo, hi
    )
    cal_svg = scatter_svg(
        "scatter-calibrated",
        "calibrated vs reference",
        pairs.reference,
        pairs.calibrated,
        fog,
        quantity,
        unit,
        lo,
        hi,
    )
    here = [
        ("raw", agreement(pairs.raw, pairs.reference, quantity)),
        ("calibrated", agreement(pairs.calibrated, pairs.reference, quantity)),
    ]
    n_fog = sum(fog)
    uncalibrated = sum(1 for v in pairs.calibrated if not math.isfinite(v))
    e = html.escape
    assigned_items = (
        "".join(
            f"<li>{e(a['device_id'])}: {e(a['from'] or 'the start')} .. {e(a['to'] or 'open')}</li>"
            for a in assigned
        )
        or "<li>no device yet</li>"
    )
    group = record.get("group")
    group_text = (
        f"<dt>Group</dt><dd>{e(', '.join(record['devices']))} ({e(group['chosen_by'])}); an hour "
        f"gets a factor with at least {group['min_members']} members with a complete hour and "
        f"no fog (RH ≥ {group['fog_rh']:g} % at the station or in the group's mean). The "
        "calibrated values drawn are each member's hours times the stored factor of the hour "
        "(the member is in its own group's mean); the statistics stored leave it out.</dd>"
        if group
        else f"<dt>Trained on</dt><dd>{e(', '.join(record['devices']))}</dd>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Calibration {e(record["id"])}: report</title>
<style>{STYLE}</style></head>
<body>
<h1>Calibration {e(record["id"])}: {e(quantity)} of sensor model {e(record["sensor_model"])}</h1>
<dl>
<dt>Method</dt><dd>{e(method)}: {e(description.how)} Formula: <code>{e(record["formula"])}</code>
(chosen by {e(record["chosen_by"])}).</dd>
<dt>Algorithm register entry</dt><dd>{e(description.name)}
(<code>sensorpipe:calibration:{e(method)}</code>, published by <code>devices export</code> and
<code>/api/v1/algorithms</code>)</dd>
<dt>Reference station</dt><dd>{e(record["reference"])}</dd>
{group_text}
<dt>Fitted on</dt><dd>{e(record["period"]["from"])} .. {e(record["period"]["to"])}
(made {e(record["created"])})</dd>
<dt>This report's period</dt><dd>{e(period[0])} .. {e(period[1])}: {len(pairs)} hourly pairs
(device hours ≥ 75 % complete with a reference value), {n_fog} of them in fog (RH ≥ {FOG_RH:g} %,
drawn as open orange circles and shaded hours){
        f"; {uncalibrated} without a calibrated value" if uncalibrated else ""
    }.</dd>
<dt>Assigned to</dt><dd><ul>{assigned_items}</ul></dd>
</dl>
<h2>Statistics</h2>
<p class="note">As the US EPA's sensortoolkit: slope and intercept of the least-squares line of the
sensor's hourly values on the reference's, R² the squared correlation, RMSE, NRMSE = RMSE ÷ mean
reference. Targets for PM2.5: slope 1 ± 0.35, intercept within ± 5 µg/m³, R² ≥ 0.70, RMSE ≤ 7
µg/m³ (or NRMSE ≤ 30 %).</p>
<h3>Stored with the calibration</h3>
{stats_table(_stored_rows(record))}
<h3>Over the hours in this report</h3>
{stats_table(here)}
<h2>Scatter</h2>
<p class="note">Each point is one device hour. Grey: the 1:1 line; shaded: where lines meeting the
EPA's slope and intercept targets lie (dashed: its edges); red: the least-squares line of the
values on the reference.</p>
<div class="plots">
{raw_svg}
{cal_svg}
</div>
<h2>Time series</h2>
{timeseries_svg(pairs, quantity, unit)}
<p class="note">Made by sensorpipe calibrate report; the raw values stay stored as they came,
calibrated values are computed when read.</p>
</body></html>
"""


def check_pairs(pairs: ReportPairs, period: tuple[str, str]) -> None:
    """A one-line error where the period holds no pairs."""
    if not len(pairs):
        raise CalibrationError(
            f"no hourly pairs from {period[0]} to {period[1]}: the devices have no hour "
            ">= 75 % complete at an hour the reference has a value for; check --from and --to"
        )
