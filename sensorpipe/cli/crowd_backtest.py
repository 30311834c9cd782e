"""`sensorpipe crowd backtest`: the rolling-origin evaluation of the forecasts
(sensorpipe.crowd.backtest) on the counts stored in InfluxDB, or on a CSV file of counts."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from sensorpipe.cli.common import fail
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, json_option, options

if TYPE_CHECKING:
    from sensorpipe.crowd.forecast import Settings

YEARS_BACK = 6  # the history read without --train-from


_RELATIVE = re.compile(r"-(\d{1,6})([hdw])")
_UNIT_S = {"h": 3600, "d": 86400, "w": 7 * 86400}


def _instant(option: str, text: str, zone: ZoneInfo) -> int:
    """A time on the hour: a date or ISO 8601 time (local to `zone` without an offset), or
    `now` / `-7d` (hours, days, weeks before now), taken to the start of their hour."""
    relative = _RELATIVE.fullmatch(text.strip())
    if text.strip() == "now" or relative:
        back = int(relative.group(1)) * _UNIT_S[relative.group(2)] if relative else 0
        return int(time.time() - back) // 3600 * 3600
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(
            f"{option} {text!r}: not a date, ISO 8601 time, `now` or -N h/d/w "
            "(e.g. 2025-01-01, 2025-01-01T13:00Z, -7d)"
        )
    if t.tzinfo is None:
        t = t.replace(tzinfo=zone)
    s = int(t.timestamp())
    if s % 3600:
        fail(f"{option} {text!r}: not on the hour: forecasts are hourly")
    return s


def _years_before(t: int, zone: ZoneInfo) -> int:
    """The same local time YEARS_BACK years before `t` (28 February for a 29th)."""
    local = datetime.fromtimestamp(t, zone)
    day = min(local.day, 28) if local.month == 2 else local.day
    return int(local.replace(year=local.year - YEARS_BACK, day=day).timestamp())


def _horizon(text: str) -> int:
    from sensorpipe.crowd.features import MAX_HORIZON

    m = re.fullmatch(r"(\d+)h", text.strip())
    if not m or not 1 <= int(m.group(1)) <= MAX_HORIZON:
        fail(
            f"--horizon {text!r}: give hours ahead as 1h to {MAX_HORIZON}h "
            "(e.g. --horizon 1h --horizon 3h)"
        )
    return int(m.group(1))


def _exclusions(values: tuple[str, ...], timezone: str) -> list[tuple[int, int]]:
    from sensorpipe.crowd.forecast import PRESETS, periods

    spans: list[tuple[str, str]] = []
    for v in values:
        if v in PRESETS:
            spans += PRESETS[v]
            continue
        a, sep, b = v.partition("/")
        try:
            ok = bool(sep) and datetime.fromisoformat(a) < datetime.fromisoformat(b)
        except ValueError:
            ok = False
        if not ok:
            fail(
                f"--exclude-training {v!r}: give FROM/TO local dates (FROM before TO, e.g. "
                f"2020-03-20/2020-06-08) or one of: {', '.join(PRESETS)}"
            )
        spans.append((a, b))
    return periods(spans, timezone)


# What training needs besides the counts and the span (train, backtest): where, and how.
TRAINING_OPTIONS = options(
    click.option(
        "--train-until",
        required=True,
        help="Train on the hours before this (a date or ISO 8601 time; without an offset it "
        "is local to --timezone).",
    ),
    click.option(
        "--timezone",
        default=None,
        help="The counters' local time zone (e.g. Pacific/Auckland): hour of the week, "
        "seasonal lags. Default for --area: the area's.",
    ),
    click.option(
        "--country",
        default=None,
        help="Country whose public holidays count (ISO 3166, e.g. NZ). Default for --area: "
        "the area's.",
    ),
    click.option(
        "--subdivision",
        "--subdiv",
        "subdiv",
        default=None,
        help="A region of it with holidays of its own (e.g. AUK). Default for --area: the area's.",
    ),
    click.option(
        "--exclude-training",
        "excluded",
        multiple=True,
        help="Leave the local dates FROM/TO out of training (e.g. lockdowns; repeatable), or "
        "nz-lockdowns (Auckland's COVID-19 levels 3-4).",
    ),
    click.option(
        "--size",
        type=click.Choice(["small", "default", "large"]),
        default="default",
        show_default=True,
        help="The model's size: small 600 trees of 63 leaves, default 500 of 127, large 1000 "
        "of 127 (a little better, about 1.7 times as long to train).",
    ),
    click.option(
        "--trees", type=click.IntRange(min=1), default=None, help="Boosting rounds (the size's)."
    ),
    click.option(
        "--leaves", type=click.IntRange(min=2), default=None, help="Leaves per tree (the size's)."
    ),
    click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="CPU threads LightGBM trains on.",
    ),
)


def model_settings(size: str, trees: int | None, leaves: int | None, threads: int) -> Settings:
    """The training settings the options give."""
    from sensorpipe.crowd.forecast import sized

    return sized(size, trees=trees, leaves=leaves, threads=threads)


def need_forecast_extra() -> None:
    """A one-line error where the optional extra `forecast` is missing (before long work)."""
    for module in ("lightgbm", "holidays"):
        if importlib.util.find_spec(module) is None:
            fail(f"{module} is not installed: pip install 'sensorpipe[forecast]'")


def place_of(
    registry: Any,
    areas: Sequence[str],
    timezone: str | None,
    country: str | None,
    subdiv: str | None,
) -> tuple[str, str, str | None]:
    """The time zone, country and region a model is trained for: for areas of the registry
    their own (all alike), and an option that says otherwise is refused; for devices (or a
    CSV file's sites) the options, which are then needed."""
    if registry is None or not areas:
        if timezone is None or country is None:
            fail(
                "give --timezone and --country: the counters' local time and the country of "
                "their public holidays, e.g. --timezone Europe/Amsterdam --country NL"
            )
        return timezone, country, subdiv
    places = {a: registry.areas[a] for a in areas}
    first_id, first = next(iter(places.items()))
    own = (first.timezone, first.country, first.subdivision or None)
    for area_id, area in places.items():
        if (area.timezone, area.country, area.subdivision or None) != own:
            fail(
                f"--area {area_id}: its time zone and holidays ({area.timezone}, "
                f"{area.country}) differ from {first_id}'s ({own[0]}, {own[1]}): train them apart"
            )
    for option, given, theirs in (
        ("--timezone", timezone, own[0]),
        ("--country", country, own[1]),
        ("--subdiv", subdiv, own[2]),
    ):
        if given is not None and given != theirs:
            fail(
                f"{option} {given}: area {first_id} is set to {theirs or 'none'} in the "
                f"registry; leave {option} out to use the area's (or change the area with "
                "`sensorpipe areas add --replace`)"
            )
    return own


def check_place(timezone: str, country: str, subdiv: str | None) -> ZoneInfo:
    """The time zone, after one-line errors for it and for the country's public holidays."""
    from sensorpipe.crowd.features import check_country

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"--timezone {timezone!r}: not a time zone (e.g. Pacific/Auckland, Europe/Amsterdam)")
    problem = check_country(country, subdiv)
    if problem:
        fail(f"--country {country!r}{f' --subdiv {subdiv!r}' if subdiv else ''}: {problem}")
    return zone


@click.command("backtest")
@DIR_OPTION
@INFLUX_OPTIONS
@click.option("--device", "devices_", multiple=True, help="A counting device (repeatable).")
@click.option(
    "--area",
    "areas",
    multiple=True,
    help="An area of the registry, its devices' counts summed (repeatable; with --counts-csv "
    "its site column names areas).",
)
@click.option(
    "--counts-csv",
    type=click.Path(path_type=Path),
    default=None,
    help="Read the counts from this CSV file (long form time_utc,site,count; .gz too) instead "
    "of InfluxDB; --device/--area pick its sites (all when neither is given).",
)
@click.option(
    "--train-from",
    default=None,
    help="Train on the hours from this (default: all of the CSV file; from InfluxDB "
    f"{YEARS_BACK} years before --train-until).",
)
@click.option("--from", "start", required=True, help="First hour forecast (>= --train-until).")
@click.option("--to", "end", required=True, help="Forecast the hours before this.")
@click.option(
    "--horizon", "horizons", multiple=True, required=True, help="Hours ahead, e.g. 1h (repeatable)."
)
@TRAINING_OPTIONS
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write every forecast here as CSV: device (or area),target_time,horizon,forecast.",
)
@json_option("Print the WAPE per horizon as JSON.")
def crowd_backtest(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    devices_: tuple[str, ...],
    areas: tuple[str, ...],
    counts_csv: Path | None,
    train_until: str,
    train_from: str | None,
    start: str,
    end: str,
    horizons: tuple[str, ...],
    timezone: str,
    country: str,
    subdiv: str | None,
    excluded: tuple[str, ...],
    size: str,
    trees: int | None,
    leaves: int | None,
    threads: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """Rolling-origin evaluation: train on the counts before --train-until, forecast every
    hour of [--from, --to) from the hour --horizon before it, and print the WAPE (total
    absolute error / total count) per horizon of the model and of both baselines (same local
    hour last week; mean of that hour over the past four weeks), with how often the 80 %
    interval held the count. Hours missing or stuck at zero are neither trained on nor scored.
    """
    need_forecast_extra()
    if devices_ and areas:
        fail("give --device or --area, not both")
    if not (devices_ or areas or counts_csv):
        fail("give --device or --area (or --counts-csv FILE)")
    registry = None
    if areas and counts_csv is None:  # from InfluxDB: its devices' counts summed
        from sensorpipe.cli.crowd import chosen_areas

        registry = chosen_areas(directory, areas)[0]
    timezone, country, subdiv = place_of(registry, areas, timezone, country, subdiv)
    zone = check_place(timezone, country, subdiv)
    steps = [(h.strip(), _horizon(h)) for h in horizons]
    seen: dict[int, str] = {}
    for given, h in steps:
        if h in seen:
            fail(f"--horizon {given}: given twice (as {seen[h]}): give each horizon once")
        seen[h] = given
    if out is not None:  # refused now, not after minutes of training
        _check_writable(out)
    until = _instant("--train-until", train_until, zone)
    t1 = _instant("--from", start, zone)
    t2 = _instant("--to", end, zone)
    since = _instant("--train-from", train_from, zone) if train_from else None
    if t1 < until:
        fail(
            f"--from {start}: before --train-until {train_until}: the backtest scores hours "
            "it did not train on"
        )
    if t2 <= t1:
        fail(f"--to {end}: not after --from {start}")
    if since is not None and since >= until:
        fail(f"--train-from {train_from}: not before --train-until {train_until}")
    exclude = _exclusions(excluded, timezone)
    kind = "area" if areas else "device"
    first = since if since is not None else _years_before(until, zone)
    names = devices_ or areas
    if registry is not None:
        from sensorpipe.cli.crowd_forecast import _read

        counts = _read(registry, names, directory, (influx_url, database), first, t2)
    else:
        counts = _counts(counts_csv, names, kind, directory, influx_url, database, first, t2)
    place = (timezone, country, subdiv)
    settings = model_settings(size, trees, leaves, threads)
    span = (until, t1, t2, since)
    _run(counts, steps, place, span, exclude, settings, out, as_json, counts_csv is not None)


def _check_writable(out: Path) -> None:
    """A one-line error where --out cannot be written (checked before the backtest runs)."""
    import os

    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        fail(f"--out {out}: a folder; give a file name")
    if not folder.is_dir():
        fail(f"--out {out}: no folder {folder}; create it or give another path")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        fail(f"--out {out}: not writable here; give another path")


def _counts(
    counts_csv: Path | None,
    names: tuple[str, ...],
    kind: str,
    directory: Path | None,
    influx_url: str | None,
    database: str,
    t0: int,
    t1: int,
) -> Any:
    from sensorpipe.crowd.series import CountsInputError, from_count_series, iso, read_counts_csv

    try:
        if counts_csv is not None:
            return read_counts_csv(counts_csv, kind, names)
        return from_count_series(
            _read_influx(names, directory, influx_url, database, iso(t0), iso(t1))
        )
    except CountsInputError as exc:
        fail(str(exc))


def _read_influx(
    devices: tuple[str, ...],
    directory: Path | None,
    influx_url: str | None,
    database: str,
    t0: str,
    t1: str,
) -> list[dict[str, Any]]:
    from sensorpipe.cli.query import _influx_url
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.flagged import FlagFilter
    from sensorpipe.query.influxql import QueryInputError
    from sensorpipe.query.series import CountSeriesRequest, count_series

    client = InfluxClient(_influx_url(directory, influx_url), database)
    answers = []
    for i, device in enumerate(devices, start=1):
        req = CountSeriesRequest(
            devices=[device], start=t0, end=t1, every="1h", max_points=10**8,
            flags=FlagFilter("exclude"),  # counts flagged stuck (or otherwise) are no counts
        )  # fmt: skip
        try:
            answer = count_series(client, req)
        except (QueryError, StorageUnavailable, QueryInputError) as exc:
            fail(f"InfluxDB: {exc}")
        if not answer["series"]:
            fail(f"--device {device}: no counts stored from {t0} to {t1}")
        answers.append(answer)
        click.echo(f"read the counts of {device} ({i}/{len(devices)})", err=True)
    return answers


def _run(
    counts: Any,
    steps: list[tuple[str, int]],
    place: tuple[str, str, str | None],
    span: tuple[int, int, int, int | None],
    exclude: list[tuple[int, int]],
    settings: Settings,
    out: Path | None,
    as_json: bool,
    from_csv: bool,
) -> None:
    from sensorpipe.crowd.backtest import backtest
    from sensorpipe.crowd.forecast import Training, Where

    until, t1, t2, since = span
    training = Training(Where(*place), until - 3600, since, exclude, settings)
    try:
        bt = backtest(counts, steps, training, t1, t2, lambda m: click.echo(m, err=True))
    except ImportError as exc:
        fail(f"{exc.name or exc}: not installed: pip install 'sensorpipe[forecast]'")
    except ValueError as exc:
        fail(str(exc))
    summary = bt.summary()
    if out is not None:
        try:
            with out.open("w", encoding="utf-8", newline="") as f:
                summary["forecasts_written"] = bt.write_csv(f)
        except OSError as exc:
            fail(f"--out {out}: cannot write it: {exc.strerror or exc}")
        summary["out"] = str(out)
    if from_csv:
        summary["duplicates_dropped"] = counts.duplicates
        summary["first_duplicate_line"] = counts.first_duplicate_line
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"{summary['series']} {bt.counts.kind}{'s' * (summary['series'] != 1)}, "
        f"{summary['from']} .. {summary['to']}, "
        f"trained on the counts before {summary['train_until']}; model: "
        f"{settings.trees} trees, {settings.leaves} leaves, learning rate "
        f"{settings.learning_rate}, {settings.threads} thread(s)"
    )
    head = ["horizon", "model", "seasonal naive", "4-week mean", "80% interval held", "hours"]
    head.append("trained in")
    click.echo("{:<8} {:>8} {:>15} {:>12} {:>18} {:>13}  {}".format(*head))
    for r in bt.results:
        w, took = r.wape, bt.model.train_seconds[r.hours]
        click.echo(
            f"{r.label:<8} {_pct(w['model']):>8} {_pct(w['seasonal_naive']):>15} "
            f"{_pct(w['mean_4_weeks']):>12} {_pct(r.coverage, 1):>18} {r.scored:>13,}  "
            f"{took['model']:.0f} s (+ {took['interval']:.0f} s: the interval's model)"
        )
    n = counts.duplicates
    if n:
        click.echo(
            f"note: {n} row{'s' * (n != 1)} of --counts-csv repeat{'s' * (n == 1)} a site and "
            f"hour read before (the first at line {counts.first_duplicate_line}): dropped, the "
            "first read kept"
        )
    if out is not None:
        click.echo(f"{summary['forecasts_written']:,} forecasts written to {out}", err=True)
    sys.stdout.flush()


def _pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f} %"
