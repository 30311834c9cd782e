"""`sensorpipe crowd models`: the saved forecast models of a models folder (sensorpipe.crowd.saved)
and their last scheduled retraining (retrain.json, sensorpipe.crowd.retrain)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sensorpipe.cli.common import fail
from sensorpipe.cli.crowd_forecast import MODELS_DIR_OPTION, models_folder
from sensorpipe.cli.options import DIR_OPTION, json_option


def models_listing(folder: Path) -> list[dict[str, Any]]:
    """One row per saved model: what it forecasts, trained until when, and its last
    retraining by the ingest (None where it never was); a model.json that cannot be read is
    listed with its reason."""
    from sensorpipe.crowd.retrain import read_status
    from sensorpipe.crowd.saved import ModelsError, entries, read
    from sensorpipe.crowd.series import HOUR_S, iso

    status = read_status(folder)
    rows: list[dict[str, Any]] = []
    for entry in entries(folder):
        row: dict[str, Any] = {"model": entry.name}
        try:
            saved = read(entry)
        except ModelsError as exc:
            row |= {"error": str(exc)}
        else:
            row |= {
                "kind": saved.kind,
                "series": saved.names,
                "trained_until": iso(saved.trained_until + HOUR_S),
                "horizons": [f"{h}h" for h in saved.horizons],
            }
        last = status.get(entry.name)
        row["retrained"] = None if last is None else {
            k: last.get(k) for k in ("started", "finished", "result", "error", "training_until")
        }  # fmt: skip
        rows.append(row)
    return rows


@click.command("models")
@DIR_OPTION
@MODELS_DIR_OPTION
@click.option(
    "--remove",
    "removed",
    default=None,
    metavar="MODEL",
    help="Remove this saved model (its name as listed), e.g. of an area that is gone.",
)
@json_option("Print the models and their last retraining as JSON.")
def crowd_models(
    directory: Path | None,
    models_dir: Path | None,
    removed: str | None,
    as_json: bool,
) -> None:
    """The saved forecast models (`crowd train`, the ingest's scheduled retraining): kind,
    series, trained until, horizons, and when the ingest last retrained each, with how it
    ended (ok, failed and why, stopped, running)."""
    folder = models_folder(directory, models_dir)
    if not folder.is_dir():
        fail(
            f"{folder}: no models folder: train a model with `sensorpipe crowd train` "
            "(or give --models DIR)"
        )
    if removed is not None:
        _remove(folder, removed)
        return
    rows = models_listing(folder)
    if as_json:
        click.echo(json.dumps({"models_folder": str(folder), "models": rows}, indent=2))
        return
    if not rows:
        click.echo(f"no models in {folder}: train one with `sensorpipe crowd train`")
        return
    for row in rows:
        if "error" in row:
            click.echo(f"{row['model']}: {row['error']}")
            continue
        click.echo(
            f"{row['model']}: {row['kind']} {', '.join(row['series'])}; trained until "
            f"{row['trained_until']}; horizons {' '.join(row['horizons'])}"
        )
        click.echo(f"  last retraining: {_retrained(row['retrained'])}")


def _retrained(last: dict[str, Any] | None) -> str:
    if last is None:
        return "never (by the ingest)"
    result = last.get("result")
    if result == "running":
        return f"running since {last.get('started')}, up to {last.get('training_until')}"
    text = f"{last.get('finished')} ({result}"
    if last.get("error"):
        text += f": {last['error']}"
    return text + ")"


def _remove(folder: Path, name: str) -> None:
    """The model gone, and its retraining's record (the ingest retrains it no more)."""
    from sensorpipe.crowd.retrain import forget_status
    from sensorpipe.crowd.saved import ModelsError, remove

    try:
        remove(folder, name)
    except ModelsError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{folder / name}: cannot remove it: {exc.strerror or exc}")
    forget_status(folder, name)
    click.echo(f"{name}: removed from {folder}")
