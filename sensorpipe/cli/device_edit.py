"""`sensorpipe devices edit`: change what the public register says of a device (its location
and how precisely it is published, owner, purpose, contact, legal basis, retention, licence),
e.g. the location of a logger or reference station an import registered without one. What
shapes stored points (site, sensors, source, credentials) is not edited: readings already
stored carry the old values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sensorpipe.cli.common import fail, invalid, local_stack
from sensorpipe.cli.options import DIR_OPTION
from sensorpipe.cli.provisioning import location

TEXT_FIELDS = ("owner", "purpose", "contact", "legal_basis", "retention", "licence")


@click.command("edit")
@click.argument("device_id")
@DIR_OPTION
@click.option("--lat", type=float, default=None, help="Latitude (with --lon).")
@click.option("--lon", type=float, default=None, help="Longitude (with --lat).")
@click.option(
    "--precision",
    type=click.IntRange(0, 6),
    default=None,
    help="Decimals of the location that are published (3 ≈ 100 m).",
)
@click.option("--owner", default=None, help="Who runs it.")
@click.option("--purpose", default=None, help="Why it measures.")
@click.option("--contact", default=None, help="Whom residents ask ('' : the network's).")
@click.option("--legal-basis", default=None, help="Legal basis ('' : the network's).")
@click.option("--retention", default=None, help="How long its data is kept ('' : the network's).")
@click.option("--licence", default=None, help="Licence of its data ('' : the network's).")
def devices_edit(
    device_id: str,
    directory: Path | None,
    lat: float | None,
    lon: float | None,
    precision: int | None,
    **text: str | None,
) -> None:
    """Change a device's public register entry: its location, owner, purpose, contact, legal
    basis, retention or licence (only the options given). Site, sensors and source shape the
    stored readings and are not changed here."""
    from pydantic import ValidationError

    from sensorpipe.protocol.configfile import ConfigError
    from sensorpipe.protocol.registry import DeviceEntry, save_registry

    changes: dict[str, Any] = {k: v for k, v in text.items() if v is not None}
    place = location(lat, lon)
    if place is not None:
        changes["location"] = place
    if precision is not None:
        changes["location_precision_decimals"] = precision
    if not changes:
        fail("nothing to change: give --lat and --lon, --precision, or a register field")
    stack = local_stack(directory)
    try:
        registry = stack.registry()
    except (OSError, ValueError, ConfigError) as exc:
        fail(f"cannot read the device register: {exc}")
    entry = registry.devices.get(device_id)
    if entry is None:
        known = ", ".join(sorted(registry.devices)[:10]) or "none"
        fail(f"{device_id}: not in the register {stack.registry_path} (registered: {known})")
    try:
        edited = DeviceEntry.model_validate({**entry.model_dump(), **changes})
    except ValidationError as exc:
        invalid(exc, {k: "--" + k.replace("_", "-") for k in TEXT_FIELDS})
    registry.devices[device_id] = edited
    save_registry(registry, stack.registry_path)
    said = ", ".join(sorted(changes))
    click.echo(f"{device_id}: {said} changed in {stack.registry_path}")
