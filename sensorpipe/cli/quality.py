"""`sensorpipe quality`: the quality checks run over stored data (`quality neighbours`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS, QUALITY_CONFIG_OPTION, json_option

if TYPE_CHECKING:
    from sensorpipe.ingest.neighbours import NeighbourRun

SHOWN = 50  # outliers listed in the text summary


@click.group()
def quality() -> None:
    """Quality checks over stored data: the neighbour outlier (`quality neighbours`)."""


@quality.command("neighbours")
@DIR_OPTION
@INFLUX_OPTIONS
@click.option(
    "--from",
    "start",
    default="-24h",
    show_default=True,
    help="Start: -24h, -7d, a date (midnight UTC) or ISO 8601 with offset; whole UTC hours.",
)
@click.option(
    "--to",
    "end",
    default="now",
    show_default=True,
    help="End: the hour that is not over yet is never judged (its mean is not final).",
)
@QUALITY_CONFIG_OPTION
@json_option("Print the summary as JSON.")
def quality_neighbours(
    directory: Path | None,
    influx_url: str | None,
    database: str,
    start: str,
    end: str,
    quality_config: Path | None,
    as_json: bool,
) -> None:
    """Flag each device's hours whose mean stands far apart from its neighbours' (a robust
    z-score against the devices and reference stations within a radius), adding the flag
    `neighbour` to that hour's readings. Running it twice changes nothing; where a device has
    too few neighbours it is not judged, and the summary says so. The devices and their
    locations are the stack's register's (--dir), the readings those of its InfluxDB (or
    --influx-url). The stack runs it every hour over the last hours (`[quality.neighbours]` in
    ingest.toml)."""
    import json

    from sensorpipe.cli.importing import _quality_config
    from sensorpipe.cli.query import _influx_url, time_range
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient, quiet_request_log
    from sensorpipe.ingest.neighbours import places_of, run_neighbours
    from sensorpipe.protocol.configfile import ConfigError

    t0, t1 = time_range(start, end)
    stack = local_stack(directory)
    if quality_config is not None:
        config = _quality_config(quality_config)
    else:
        config = _quality_config(stack.directory / "ingest" / "ingest.toml", default=True)
    try:
        registry = stack.registry()
    except (OSError, ValueError, ConfigError) as exc:
        fail(f"cannot read the device register: {exc}")
    if not places_of(registry):
        fail(
            f"no device in the register ({stack.registry_path}) has a location: the neighbour "
            f"outlier needs devices' locations (`devices add --lat --lon`)"
        )
    url = _influx_url(directory, influx_url)
    quiet_request_log()
    client = InfluxClient(url, database, timeout_s=60.0)
    started = time.monotonic()

    def progress(done_ms: int, so_far: NeighbourRun) -> None:
        if not as_json:
            click.echo(
                f"checked to {_iso(done_ms)}: {so_far.verdicts.judged} device-hours judged, "
                f"{len(so_far.verdicts.outliers)} outliers",
                err=True,
            )

    hour = 3_600_000
    now_ms = int(time.time() * 1000)
    # Finished hours only: a flag is never withdrawn, and the current hour's mean is not final.
    end_ms = min(int(t1.timestamp() * 1000), now_ms - now_ms % hour)
    try:
        done = run_neighbours(
            client, registry, config, int(t0.timestamp() * 1000), end_ms, progress
        )
    except (QueryError, StorageUnavailable) as exc:
        fail(f"{exc}; flags written so far are kept, run it again (nothing is flagged twice)")
    finally:
        client.close()
    if as_json:
        v = done.verdicts
        click.echo(
            json.dumps(
                {
                    "hours_checked": len(v.hours),
                    "devices_judged": sorted(v.devices),
                    "device_hours_judged": v.judged,
                    "outliers": [
                        {"device_id": d, "sensor": s, "quantity": q, "hour": _iso(h), "z": z}
                        for (d, s, q, h), z in sorted(v.outliers.items())
                    ],
                    "readings_flagged": done.readings_flagged,
                    "readings_already_flagged": done.readings_already,
                    "too_few_neighbours": v.too_few,
                    "too_few_neighbours_devices": sorted(v.too_few_devices),
                    "neighbours_all_equal": v.no_spread,
                    "no_location": sorted(v.no_location),
                    "reference_stations": sorted(v.references),
                },
                indent=2,
            )
        )
        return
    for line in done.lines(config):
        click.echo(line)
    outliers = sorted(done.verdicts.outliers.items())
    for (d, s, q, h), z in outliers[:SHOWN]:
        click.echo(f"  {_iso(h)}  {d} ({s}) {q}: z = {z:+.1f}")
    if len(outliers) > SHOWN:
        click.echo(f"  ... and {len(outliers) - SHOWN} more (--json lists them all)")
    click.echo(f"in {time.monotonic() - started:.1f} s", err=True)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
