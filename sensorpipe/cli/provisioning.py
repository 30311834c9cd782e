"""The one provisioning path of `devices add`, `devices add-kit airrohr` and `devices add-kit ttn`.

The three commands take the same register options (`SITE_OPTION`, `host_options`,
`register_options`, `ALLOW_UNKNOWN_SENSOR`), read into the register fields by
`register_fields`, check the declared sensor models with `sensor_notes`, and run the stack's
add function through `provision`, whose refusals are one-line errors naming the option. Each
command (`devices` for a device, `kits` for the kits) keeps only its own options, checks and
what it prints.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click
from pydantic import ValidationError

from sensorpipe.cli.common import fail, invalid
from sensorpipe.cli.options import FC, options
from sensorpipe.protocol.configfile import ConfigError

if TYPE_CHECKING:
    from sensorpipe.gateway.devices import RegisterFields
    from sensorpipe.protocol.messages import Location
    from sensorpipe.protocol.registry import Registry


# What a registration's fields are called on the command line, for its one-line errors.
_OPTIONS = {
    "lat": "--lat",
    "lon": "--lon",
    "site": "--site",
    "owner": "--owner",
    "sensors": "--sensor",
    "directions": "--direction",
    "contact": "--contact",
    "legal_basis": "--legal-basis",
    "retention": "--retention",
    "licence": "--licence",
    "count_classes": "--count-class",
}

T = TypeVar("T")

SITE_OPTION = click.option(
    "--site", default="unassigned", show_default=True, help="Site or neighbourhood tag."
)


def host_options(what: str, sensor_help: str) -> Callable[[FC], FC]:
    """--owner, --purpose, --sensor: who hosts a device or kit (`what`), why it measures and
    with which sensors (their names differ per kind: `sensor_help`)."""
    return options(
        click.option("--owner", default="", help=f"Who hosts the {what}."),
        click.option("--purpose", default="", help="Why it measures: shown to residents."),
        click.option("--sensor", "sensors", multiple=True, help=sensor_help),
    )


def register_options(
    legal_basis_help: str = "Legal basis (default: the network's).",
) -> Callable[[FC], FC]:
    """--lat, --lon, --precision and the register fields whose default is the network's."""
    return options(
        click.option("--lat", type=float, default=None),
        click.option("--lon", type=float, default=None),
        click.option(
            "--precision",
            type=click.IntRange(0, 6),
            default=3,
            show_default=True,
            help="Decimals of the location that are published (3 ≈ 100 m).",
        ),
        click.option("--contact", default="", help="Whom residents ask (default: the network's)."),
        click.option("--legal-basis", default="", help=legal_basis_help),
        click.option(
            "--retention", default="", help="How long its data is kept (default: the network's)."
        ),
        click.option("--licence", default="", help="Licence of its data (default: the network's)."),
    )


# Declaring a sensor model sensorpipe does not know takes this flag, so that a typo (sds012)
# is refused with a suggestion instead of registering a device whose readings are then refused.
ALLOW_UNKNOWN_SENSOR = click.option(
    "--allow-unknown-sensor",
    is_flag=True,
    help="Accept --sensor models sensorpipe does not know (their readings are accepted from "
    "this device only as declared); without it such a model is refused as a likely typo.",
)


def register_fields(
    *,
    owner: str,
    purpose: str,
    sensors: tuple[str, ...],
    lat: float | None,
    lon: float | None,
    precision: int,
    contact: str,
    legal_basis: str,
    retention: str,
    licence: str,
) -> RegisterFields:
    """The register fields the options of `host_options` and `register_options` give, as
    every kind's add function takes them; a location that is not one is a one-line error."""
    return {
        "owner": owner,
        "purpose": purpose,
        "sensors": list(sensors),
        "location": location(lat, lon),
        "location_precision_decimals": precision,
        "contact": contact,
        "legal_basis": legal_basis,
        "retention": retention,
        "licence": licence,
    }


def provision(add: Callable[[], T]) -> T:
    """Run one of the stack's add functions: a registration it refuses (a taken id, a field
    that is not valid, a broker it cannot reload) ends the command with a one-line error."""
    from sensorpipe.gateway.devices import ProvisioningError
    from sensorpipe.gateway.mosquitto import PasswordToolError

    try:
        return add()
    except (ProvisioningError, PasswordToolError, ConfigError) as exc:
        fail(str(exc))
    except ValidationError as exc:
        invalid(exc, _OPTIONS)


def echo_notes(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)


def location(lat: float | None, lon: float | None) -> Location | None:
    from sensorpipe.protocol.messages import Location

    if (lat is None) != (lon is None):
        fail("give both --lat and --lon, or neither")
    if lat is None or lon is None:
        return None
    for name, value in (("--lat", lat), ("--lon", lon)):
        if not math.isfinite(value):
            fail(f"{name} {value}: not a number")
    try:
        return Location(lat=lat, lon=lon)
    except ValidationError as exc:
        invalid(exc, {"lat": "--lat", "lon": "--lon"})


def check_count_classes(option: str, count_classes: tuple[str, ...]) -> None:
    """Classes of passers-by are those the edge counts: anything else is a one-line error."""
    from sensorpipe.protocol.counting import COUNT_CLASSES

    for cls in count_classes:
        if cls not in COUNT_CLASSES:
            close = difflib.get_close_matches(cls.lower(), sorted(COUNT_CLASSES), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            fail(
                f"{option} {cls}: not a class sensorpipe counts; {hint}"
                f"use {', '.join(COUNT_CLASSES)}"
            )


def sensor_notes(
    sensors: list[str], allow_unknown: bool = False, *, kit: bool = False
) -> list[str]:
    """What to know about declared sensor models that the edge agent cannot read itself (not
    for a `kit`: its firmware reads them); a model sensorpipe does not know is refused (with
    the nearest known one) unless `allow_unknown` (--allow-unknown-sensor). A second probe's
    tag, `<model>.<suffix>` (`soil_probe.bed2`), is its model's (protocol.registry)."""
    from sensorpipe.edge.drivers.registry import MODEL_DRIVERS, READ_AS
    from sensorpipe.protocol.registry import (
        KNOWN_SENSORS,
        TAGGED_MODELS,
        known_sensor,
        sensor_model,
    )

    notes = []
    for tag in sensors:
        if not known_sensor(tag) and known_sensor(tag.lower()):
            fail(f"--sensor {tag}: did you mean {tag.lower()!r}? Sensor models are lower case")
        if not known_sensor(tag):
            close = difflib.get_close_matches(tag, sorted(KNOWN_SENSORS), n=1)
            if not allow_unknown:
                hint = f"did you mean {close[0]!r}? " if close else ""
                fail(
                    f"--sensor {tag}: not a model sensorpipe knows; {hint}known models: "
                    f"{', '.join(sorted(KNOWN_SENSORS))} (a device's further "
                    f"{'/'.join(sorted(TAGGED_MODELS))}: <model>.<name>, e.g. "
                    f"soil_probe.bed2); to declare another model, add --allow-unknown-sensor"
                )
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            notes.append(
                f"--sensor {tag}: not a model sensorpipe knows{hint}; readings that name it "
                f"are accepted from this device only as declared here"
            )
            continue
        model = sensor_model(tag)
        if model == "camera" or model in MODEL_DRIVERS or kit:
            continue  # a camera: read by the counting pipeline (`[counting]` in the edge config)
        if model in READ_AS:
            notes.append(
                f"--sensor {tag}: the sensorpipe edge agent reads it with its {READ_AS[model]} "
                f"driver, whose readings are tagged {READ_AS[model]!r}: declare --sensor "
                f"{READ_AS[model]} for them; readings tagged {tag!r} can come only from another "
                f"sender that signs as this device"
            )
            continue
        notes.append(
            f"--sensor {tag}: the sensorpipe edge agent has no driver for it (it reads: "
            f"{', '.join(sorted(MODEL_DRIVERS))}); its readings can come from another sender "
            f"that signs as this device"
        )
    return notes


def personal_data_gaps(registry: Registry, device_ids: list[str] | None = None) -> list[str]:
    """For each device (of `device_ids`, or all) that processes personal data (a counting
    camera, or one declared so) and whose register entry has no legal basis or no contact,
    neither its own nor the network's: `ID (no legal basis, no contact)`."""
    from sensorpipe.protocol.register import counts_passers_by

    gaps = []
    network = registry.network
    for device_id in device_ids if device_ids is not None else sorted(registry.devices):
        entry = registry.devices.get(device_id)
        if entry is None:
            continue
        personal = entry.personal_data
        if personal is None:
            personal = counts_passers_by(entry)
        if not personal:
            continue
        missing = []
        if not (entry.legal_basis or network.legal_basis).strip():
            missing.append("no legal basis")
        if not (entry.contact or network.contact).strip():
            missing.append("no contact")
        if missing:
            gaps.append(f"{device_id} ({', '.join(missing)})")
    return gaps


def warn_personal_data_gaps(registry: Registry, device_ids: list[str] | None = None) -> None:
    """One line on standard error naming the devices of `personal_data_gaps`, and how to fill
    them in; nothing where there are none. A warning: the command still succeeds."""
    gaps = personal_data_gaps(registry, device_ids)
    if not gaps:
        return
    what = "a camera processes" if len(gaps) == 1 else "cameras process"
    click.echo(
        f"warning: {what} personal data but the register states no legal basis or contact "
        f"for {'; '.join(gaps)}: residents are told 'not stated'; give them with "
        f"`sensorpipe devices network --legal-basis ... --contact ...` (the network's) or "
        f"--legal-basis/--contact when adding the device",
        err=True,
    )
