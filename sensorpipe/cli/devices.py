"""`sensorpipe devices`: register devices and publish the register."""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path

import click
from pydantic import ValidationError

from sensorpipe.cli.common import DIR_OPTION, fail, invalid, local_stack
from sensorpipe.protocol.configfile import ConfigError


@click.group()
def devices() -> None:
    """Register devices and publish what each one measures and why."""


@devices.command("add")
@click.argument("device_id")
@DIR_OPTION
@click.option("--site", default="unassigned", show_default=True, help="Site or neighbourhood tag.")
@click.option("--owner", default="", help="Who hosts the device.")
@click.option("--purpose", default="", help="Why it measures: shown to residents.")
@click.option(
    "--sensor",
    "sensors",
    multiple=True,
    help="Sensor model it may report (repeatable; none given: any model sensorpipe knows).",
)
@click.option(
    "--direction",
    "directions",
    multiple=True,
    help="Direction name of its counting line (repeatable; default left_to_right, right_to_left).",
)
@click.option("--lat", type=float, default=None)
@click.option("--lon", type=float, default=None)
@click.option(
    "--precision",
    type=click.IntRange(0, 6),
    default=3,
    show_default=True,
    help="Decimals of the location that are published (3 ≈ 100 m).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
def devices_add(
    device_id: str,
    directory: Path | None,
    site: str,
    owner: str,
    purpose: str,
    sensors: tuple[str, ...],
    directions: tuple[str, ...],
    lat: float | None,
    lon: float | None,
    precision: int,
    as_json: bool,
) -> None:
    """Register DEVICE_ID and print its broker password and signing key (shown once)."""
    from sensorpipe.gateway.devices import ProvisioningError
    from sensorpipe.gateway.mosquitto import PasswordToolError
    from sensorpipe.protocol.messages import Location

    if (lat is None) != (lon is None):
        fail("give both --lat and --lon, or neither")
    for name, value in (("--lat", lat), ("--lon", lon)):
        if value is not None and not math.isfinite(value):
            fail(f"{name} {value}: not a number")
    options = {
        "lat": "--lat",
        "lon": "--lon",
        "site": "--site",
        "owner": "--owner",
        "sensors": "--sensor",
        "directions": "--direction",
    }
    try:
        location = Location(lat=lat, lon=lon) if lat is not None and lon is not None else None
    except ValidationError as exc:
        invalid(exc, options)
    notes = _sensor_notes(list(sensors))  # refuses a misspelt model before registering
    s = local_stack(directory)
    try:
        creds = s.add_device(
            device_id,
            site=site,
            owner=owner,
            purpose=purpose,
            sensors=list(sensors),
            directions=list(directions),
            location=location,
            location_precision_decimals=precision,
        )
    except (ProvisioningError, PasswordToolError, ConfigError) as exc:
        fail(str(exc))
    except ValidationError as exc:
        invalid(exc, options)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    info = s.info()
    out = {
        **creds.as_dict(),
        "site": site,
        "mqtt": {"host": "127.0.0.1", "port": info.broker_port} if info else None,
    }
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"registered {device_id} (site {site}) in {s.registry_path}")
    click.echo("credentials, shown only now; put them in the device's edge config:")
    click.echo(f"  username    = {creds.username}")
    click.echo(f"  password    = {creds.password}")
    click.echo(f"  private_key = {creds.private_key}")


@devices.command("list")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True)
def devices_list(directory: Path | None, as_json: bool) -> None:
    """List registered devices."""
    registry = local_stack(directory).registry()
    if as_json:
        click.echo(json.dumps(registry.public_view(), indent=2))
        return
    for device_id, d in sorted(registry.devices.items()):
        click.echo(f"{device_id:20s} site={d.site:16s} sensors={','.join(d.sensors)}")


@devices.command("export")
@DIR_OPTION
def devices_export(directory: Path | None) -> None:
    """Public register (JSON): what each sensor measures, who owns it and why."""
    click.echo(json.dumps(local_stack(directory).registry().public_view(), indent=2))


def _sensor_notes(sensors: list[str]) -> list[str]:
    """What to know about declared sensor models that the edge agent cannot read itself."""
    from sensorpipe.edge.drivers.registry import DRIVERS
    from sensorpipe.protocol.registry import KNOWN_SENSORS

    notes = []
    for model in sensors:
        if model not in KNOWN_SENSORS and model.lower() in KNOWN_SENSORS:
            fail(f"--sensor {model}: did you mean {model.lower()!r}? Sensor models are lower case")
        if model not in KNOWN_SENSORS:
            close = difflib.get_close_matches(model, sorted(KNOWN_SENSORS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            notes.append(
                f"--sensor {model}: not a model sensorpipe knows{hint}; readings that name it "
                f"are accepted from this device only as declared here"
            )
        elif model not in DRIVERS:
            notes.append(
                f"--sensor {model}: the sensorpipe edge agent has no driver for it (drivers: "
                f"{', '.join(sorted(DRIVERS))}); its readings can come from another sender "
                f"that signs as this device"
            )
    return notes
