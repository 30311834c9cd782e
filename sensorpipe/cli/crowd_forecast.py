"""`sensorpipe crowd train` (per-horizon models trained on the stored counts, saved in the
models folder) and `sensorpipe crowd forecast` (the saved models' forecast from the counts
stored up to now): sensorpipe.crowd.saved and sensorpipe.crowd.live."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.crowd_backtest import (
    TRAINING_OPTIONS,
    YEARS_BACK,
    _exclusions,
    _horizon,
    _instant,
    _years_before,
    check_place,
    model_settings,
    need_forecast_extra,
    place_of,
)
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, json_option, options

# The models folder (train, forecast, models).
MODELS_DIR_OPTION = click.option(
    "--models",
    "models_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The models folder (default: the stack's forecast/, where its API reads them).",
)
# `crowd train --registry` (the ingest's retraining names its own).
REGISTRY_FILE = click.Path(path_type=Path, dir_okay=False)
REGISTRY_HELP = "The device register the areas are read from (default: the stack's)."
# Where the models and the counts are (train, forecast).
MODELS_OPTIONS = options(DIR_OPTION, INFLUX_OPTIONS, MODELS_DIR_OPTION)

if TYPE_CHECKING:
    from sensorpipe.crowd.forecast import Settings


def models_folder(directory: Path | None, models_dir: Path | None) -> Path:
    return models_dir if models_dir is not None else local_stack(directory).models_path


def _series(
    directory: Path | None,
    devices: tuple[str, ...],
    areas: tuple[str, ...],
    registry_path: Path | None = None,
) -> Any:
    """The registry where areas are named (a one-line error for an unknown one): the stack's,
    or the file `registry_path`."""
    if devices and areas:
        fail("give --device or --area, not both")
    if not (devices or areas):
        fail("give --device or --area")
    if not areas:
        return None
    if registry_path is None:
        from sensorpipe.cli.crowd import chosen_areas

        return chosen_areas(directory, areas)[0]
    from sensorpipe.protocol.configfile import ConfigError
    from sensorpipe.protocol.registry import load_registry

    try:
        registry = load_registry(registry_path, must_exist=True)
    except (OSError, ValueError, ConfigError) as exc:
        fail(f"--registry {registry_path}: cannot read the device register: {exc}")
    unknown = [a for a in areas if a not in registry.areas]
    if unknown:
        fail(f"--area {unknown[0]}: no such area in {registry_path}")
    return registry


def _client(directory: Path | None, influx: tuple[str | None, str]) -> Any:
    from sensorpipe.cli.query import _influx_url
    from sensorpipe.ingest.influx import InfluxClient

    # Credentials from the environment (the ingest's retraining hands its own over so).
    env = os.environ.get
    return InfluxClient(
        _influx_url(directory, influx[0]), influx[1], username=env("SENSORPIPE_INFLUX_USERNAME"),
        password=env("SENSORPIPE_INFLUX_PASSWORD"), token=env("SENSORPIPE_INFLUX_TOKEN"),
    )  # fmt: skip


def _rolling(
    directory: Path | None,
    influx: tuple[str | None, str],
    kind: str,
    name: str,
    counts: Any,
    origin: int,
) -> Any:
    """The rolling intervals of the forecasts kept of `name` (crowd.forecaststore)."""
    from sensorpipe.crowd.forecaststore import rolling_from_store

    client = _client(directory, influx)
    try:
        return rolling_from_store(client, kind, name, counts, origin)
    finally:
        client.close()


def _read(
    registry: Any,
    names: tuple[str, ...],
    directory: Path | None,
    influx: tuple[str | None, str],
    t0: int,
    t1: int,
) -> Any:
    from sensorpipe.crowd.live import area_counts, device_counts
    from sensorpipe.crowd.series import CountsInputError
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.query.influxql import QueryInputError

    client = _client(directory, influx)
    try:
        if registry is not None:
            return area_counts(client, registry, names, t0, t1)
        return device_counts(client, names, t0, t1)
    except (QueryError, StorageUnavailable, QueryInputError) as exc:
        fail(f"InfluxDB: {exc}")
    except CountsInputError as exc:
        fail(str(exc))
    finally:
        client.close()


@click.command("train")
@MODELS_OPTIONS
@click.option("--device", "devices", multiple=True, help="A counting device (repeatable).")
@click.option("--area", "areas", multiple=True, help="An area of the registry (repeatable).")
@click.option(
    "--train-from",
    default=None,
    help=f"Train on the hours from this (default: {YEARS_BACK} years before --train-until).",
)
@click.option(
    "--horizon",
    "horizons",
    multiple=True,
    default=("1h", "2h", "3h"),
    show_default=True,
    help="Hours ahead (repeatable).",
)
@click.option("--registry", "registry_path", type=REGISTRY_FILE, help=REGISTRY_HELP)
@TRAINING_OPTIONS
@json_option("Print what was saved as JSON.")
def crowd_train(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    models_dir: Path | None,
    devices: tuple[str, ...],
    areas: tuple[str, ...],
    registry_path: Path | None,
    train_until: str,
    train_from: str | None,
    horizons: tuple[str, ...],
    as_json: bool,
    **training: Any,
) -> None:
    """Train one model per horizon on the counts stored before --train-until and save them in
    the models folder (LightGBM's model text and model.json), for `crowd forecast` and the API.
    An area's counts are its devices' summed (an enclosed area: its inward flow only)."""
    need_forecast_extra()
    registry = _series(directory, devices, areas, registry_path)
    timezone, country, subdiv = place_of(
        registry, areas, training["timezone"], training["country"], training["subdiv"]
    )
    zone = check_place(timezone, country, subdiv)
    steps = sorted({_horizon(h) for h in horizons})
    until = _instant("--train-until", train_until, zone)
    now_hour = int(time.time()) // 3600 * 3600
    if until > now_hour:  # its trained_until would say counts were trained on that are not
        fail(
            f"--train-until {train_until}: after the last hour that has ended "
            f"({datetime.fromtimestamp(now_hour, zone).isoformat()}): give now or a time before it"
        )
    since = _instant("--train-from", train_from, zone) if train_from else None
    if since is not None and since >= until:
        fail(f"--train-from {train_from}: not before --train-until {train_until}")
    exclude = _exclusions(training["excluded"], timezone)
    folder = models_folder(directory, models_dir)
    first = since if since is not None else _years_before(until, zone)
    names = devices or areas
    counts = _read(registry, names, directory, (influx_url, database), first, until)
    _train_and_save(counts, steps, (timezone, country, subdiv), (until, since), exclude,
                    settings_of(training), folder, as_json)  # fmt: skip


def _train_and_save(
    counts: Any,
    steps: list[int],
    place: tuple[str, str, str | None],
    span: tuple[int, int | None],
    exclude: list[tuple[int, int]],
    settings: Settings,
    folder: Path,
    as_json: bool,
) -> None:
    from sensorpipe.crowd.forecast import Training, Where, train
    from sensorpipe.crowd.saved import save, settings_dict
    from sensorpipe.crowd.series import iso

    until, since = span
    training = Training(Where(*place), until - 3600, since, exclude, settings)
    try:
        fc = train(counts, steps, training, lambda m: click.echo(m, err=True))
    except ValueError as exc:
        fail(str(exc))
    extra = {
        "settings": settings_dict(settings),
        "train_from": None if since is None else iso(since),
        "excluded": [[iso(a), iso(b)] for a, b in exclude],
    }
    try:
        saved = save(fc, folder, counts.kind, extra)
    except OSError as exc:
        fail(f"{folder}: cannot write the models there: {exc.strerror or exc}")
    summary = {
        "saved": str(saved),
        counts.kind + "s": fc.names,
        "horizons": [f"{h}h" for h in steps],
        "trained_until": iso(until),
        "intervals": {f"{h}h": [round(m.low, 3), round(m.high, 3)] for h, m in fc.models.items()},
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"trained {len(steps)} horizon(s) on {len(fc.names)} {counts.kind}(s) up to "
        f"{summary['trained_until']}; saved in {saved}"
    )


def settings_of(training: dict[str, Any]) -> Settings:
    """The training settings of `crowd train`'s options."""
    t = training
    return model_settings(t["size"], t["trees"], t["leaves"], t["threads"])


@click.command("forecast")
@MODELS_OPTIONS
@click.option("--device", "device", default=None, help="A counting device.")
@click.option("--area", "area", default=None, help="An area of the registry.")
@json_option("Print the forecast as JSON (the API's `forecast` shape).")
def crowd_forecast(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    models_dir: Path | None,
    device: str | None,
    area: str | None,
    as_json: bool,
) -> None:
    """Each horizon's flow, made now from the counts stored up to the last whole hour, with
    its 80 % interval; for an area also its level and the thresholds it would reach."""
    from sensorpipe.cli.crowd import stack_registry
    from sensorpipe.crowd.areas import train_command
    from sensorpipe.crowd.live import (
        ENCLOSED_NOTE,
        forecast_points,
        history_start,
        last_whole_hour,
        reached_by,
    )
    from sensorpipe.crowd.saved import ModelsError, find
    from sensorpipe.crowd.series import CountsInputError

    need_forecast_extra()
    registry = _series(directory, (device,) if device else (), (area,) if area else ())
    kind, name = ("area", area) if area else ("device", device)
    assert name is not None
    folder = models_folder(directory, models_dir)
    try:
        saved = find(folder, kind, name)
        if saved is None:
            known = registry if kind == "area" else stack_registry(directory)
            if known is not None and kind == "device" and name not in known.devices:
                fail(f"--device {name}: no such device in the registry, and no model in {folder}")
            fail(
                f"--{kind} {name}: no model trained in {folder}: run "
                f"{train_command(known, kind, name)} first"
            )
        fc = saved.load()
    except ModelsError as exc:
        fail(str(exc))
    origin = last_whole_hour(time.time())
    counts = _read(registry, tuple(saved.names), directory, (influx_url, database),
                   history_start(origin), origin + 3600)  # fmt: skip
    entry = registry.areas[name] if registry is not None else None
    try:
        rolling = _rolling(directory, (influx_url, database), kind, name, counts, origin)
        answer = forecast_points(fc, counts, name, origin, entry, rolling)
    except CountsInputError as exc:
        fail(f"--{kind} {name}: {exc}")
    note = ENCLOSED_NOTE if entry is not None and entry.kind == "enclosed" else None
    thresholds = entry.thresholds if entry is not None else []
    if as_json:
        click.echo(json.dumps({kind: name, "forecast": answer, "forecast_note": note}, indent=2))
        return
    click.echo(f"{kind} {name}: forecast made at {answer['made_at']} (trained until "
               f"{answer['trained_until']})")  # fmt: skip
    reach = reached_by(answer["points"], thresholds)
    head = f"{'horizon':<8} {'hour from':<21} {'flow':>8} {'80% interval':>17}"
    click.echo(head + ("  level (80% interval)   reaches" if entry is not None else ""))
    for p in answer["points"]:
        line = f"{p['horizon']:<8} {p['time']:<21} {p['flow']:>8.0f} "
        line += f"{p['low']:>8.0f}..{p['high']:<7.0f}"
        if p["level"] is not None:
            r = reach[p["horizon"]]
            level = f"{p['level']:.0%} ({p['level_low']:.0%}..{p['level_high']:.0%})"
            line += f"  {level:<22} {_reaches(r['level'], r['high'])}"
        click.echo(line.rstrip())
    click.echo(
        "80% interval: " + ", ".join(f"{p['horizon']} {p['interval']}" for p in answer["points"])
    )
    if note:
        click.echo(note)


def _threshold(t: float | None) -> str:
    return "none" if t is None else f"{t:.0%}"


def _reaches(level: float | None, high: float | None) -> str:
    """The threshold the forecast reaches, and the one its interval's top reaches if higher."""
    if high is None or high == level:
        return _threshold(level)
    return f"{_threshold(level)} (up to {_threshold(high)})"
