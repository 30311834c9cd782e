"""`sensorpipe devices`: register devices and publish the register.

`add`, `add-kit airrohr` and `add-kit ttn` take one path: the same register options
(`SITE_OPTION`, `_host_options`, `_register_options`), read into the register fields by
`_register_fields`, the sensor notes of `_sensor_notes`, and the stack's add function run by
`_provision`, whose refusals are one-line errors naming the option. Each command keeps only
its own options, checks and what it prints.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError

from sensorpipe.cli.common import DIR_OPTION, FC, fail, invalid, local_stack, options
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.provenance import EDGE, KIT_SOURCES

if TYPE_CHECKING:
    from sensorpipe.gateway.devices import RegisterFields
    from sensorpipe.protocol.enrollment import EnrolledKey
    from sensorpipe.protocol.messages import Location
    from sensorpipe.protocol.quarantine import Quarantine
    from sensorpipe.protocol.registry import DeviceEntry
    from sensorpipe.query.register import RegisterStats
    from sensorpipe.stack.local import LocalStack


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


def _host_options(what: str, sensor_help: str) -> Callable[[FC], FC]:
    """--owner, --purpose, --sensor: who hosts a device or kit (`what`), why it measures and
    with which sensors (their names differ per kind: `sensor_help`)."""
    return options(
        click.option("--owner", default="", help=f"Who hosts the {what}."),
        click.option("--purpose", default="", help="Why it measures: shown to residents."),
        click.option("--sensor", "sensors", multiple=True, help=sensor_help),
    )


def _register_options(
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


def _register_fields(
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
    """The register fields the options of `_host_options` and `_register_options` give, as
    every kind's add function takes them; a location that is not one is a one-line error."""
    return {
        "owner": owner,
        "purpose": purpose,
        "sensors": list(sensors),
        "location": _location(lat, lon),
        "location_precision_decimals": precision,
        "contact": contact,
        "legal_basis": legal_basis,
        "retention": retention,
        "licence": licence,
    }


def _provision(add: Callable[[], T]) -> T:
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


def _echo_notes(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)


@click.group()
def devices() -> None:
    """Register devices and publish what each one measures and why."""


@devices.command("add")
@click.argument("device_id")
@DIR_OPTION
@SITE_OPTION
@_host_options(
    "device", "Sensor model it may report (repeatable; none given: any model sensorpipe knows)."
)
@click.option(
    "--direction",
    "directions",
    multiple=True,
    help="Direction name of its counting line (repeatable; default left_to_right, right_to_left).",
)
@_register_options("Legal basis for processing personal data (default: the network's).")
@click.option(
    "--count-class",
    "count_classes",
    multiple=True,
    help="Class its camera counts (repeatable; default: every class sensorpipe counts).",
)
@click.option(
    "--personal-data/--no-personal-data",
    default=None,
    help="Whether it processes personal data (default: yes for a camera, no otherwise).",
)
@ALLOW_UNKNOWN_SENSOR
@click.option(
    "--make-key",
    is_flag=True,
    help="Make the device's signing key here and print it with the password, for a device "
    "you configure by hand. Default: the device makes its own key when it joins "
    "(`sensorpipe edge join` with the printed join code).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
def devices_add(
    device_id: str,
    directory: Path | None,
    site: str,
    directions: tuple[str, ...],
    count_classes: tuple[str, ...],
    personal_data: bool | None,
    allow_unknown_sensor: bool,
    make_key: bool,
    as_json: bool,
    **register: Any,
) -> None:
    """Register DEVICE_ID and print how it joins: a join code (its broker address, TLS
    certificate, username and password) and the three commands to run on the Pi, where its
    signing key is made. With --make-key: its password and signing key (shown once)."""
    fields = _register_fields(**register)
    check_count_classes("--count-class", count_classes)
    sensors: list[str] = list(register["sensors"])
    notes = _sensor_notes(sensors, allow_unknown_sensor)  # before registering
    s = local_stack(directory)
    creds = _provision(
        lambda: s.add_device(
            device_id,
            site=site,
            directions=list(directions),
            count_classes=list(count_classes),
            personal_data=personal_data,
            make_key=make_key,
            **fields,
        )
    )
    _echo_notes(notes)
    broker = _join_broker(s)
    out: dict[str, object] = {
        **creds.as_dict(),
        "site": site,
        "mqtt": broker and {k: v for k, v in broker.items() if k != "ca_pem"},
    }
    code = None
    if not make_key:
        del out["private_key"], out["public_key"]
        if broker is not None:
            from sensorpipe.protocol.enrollment import JoinCode

            code = JoinCode.model_validate(
                {
                    "device_id": device_id,
                    "username": creds.username,
                    "password": creds.password,
                    "sensors": sensors,
                    **broker,
                }
            ).encode()
        out["join_code"] = code
        out["pi_commands"] = pi_commands()
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"registered {device_id} (site {site}) in {s.registry_path}")
    if make_key:
        click.echo("credentials, shown only now; put them in the device's edge config:")
        click.echo(f"  username    = {creds.username}")
        click.echo(f"  password    = {creds.password}")
        click.echo(f"  private_key = {creds.private_key}")
        return
    if broker is None:
        click.echo(
            f"note: no broker address is known here (no `stack up` in {s.directory}, no "
            "`server setup`), so no join code: the device's password is below; its key is "
            "made when it joins",
            err=True,
        )
        click.echo(f"  username = {creds.username}\n  password = {creds.password}")
        return
    if join_note := _server_note(s):
        click.echo(join_note)
    click.echo("on the Pi, three commands (its signing key is made there, at the join):")
    for i, command in enumerate(pi_commands(), 1):
        click.echo(f"  {i}. {command}")
    click.echo(
        f"join code for {device_id}, asked for by command 2 (it holds the device's password: "
        "give it to the host only, as you would a password):"
    )
    click.echo(code)


def pi_commands() -> list[str]:
    """What the host of a Pi runs to join: install, join (asks for the code), check and start."""
    from sensorpipe import __version__

    wheel = f"./sensorpipe-{__version__}-py3-none-any.whl"
    return [
        "sudo apt-get install -y python3-venv i2c-tools && sudo python3 -m venv /opt/sensorpipe "
        f"&& sudo /opt/sensorpipe/bin/pip install {wheel}",
        "sudo /opt/sensorpipe/bin/sensorpipe edge join",
        "sudo -u sensorpipe /opt/sensorpipe/bin/sensorpipe edge check --config "
        "/etc/sensorpipe/edge.toml && sudo systemctl enable --now sensorpipe-edge",
    ]


def _join_broker(s: LocalStack) -> dict[str, object] | None:
    """What a join code says about the broker: a `server setup` directory's public TLS
    listener and CA, or a running local stack's loopback port."""
    from sensorpipe.stack.local import join_broker

    broker = join_broker(s.directory)
    if broker is not None:
        ca_file = str(broker.get("ca_file") or "")
        try:
            ca_pem = Path(ca_file).read_text() if ca_file else None
        except OSError as exc:
            fail(f"{ca_file}: cannot read the server's CA certificate ({exc.strerror or exc})")
        return {
            "host": str(broker.get("host")),
            "port": int(broker.get("port", 8883)),
            "tls": bool(broker.get("tls", True)),
            "ca_pem": ca_pem,
        }
    info = s.info()
    if info is None:
        return None
    return {"host": "127.0.0.1", "port": info.broker_port, "tls": False, "ca_pem": None}


def _server_note(s: LocalStack) -> str:
    from sensorpipe.stack.local import join_broker

    if join_broker(s.directory) is None:
        return ""
    return (
        "the broker learns the password when you run `sensorpipe server setup` again and "
        "`systemctl restart mosquitto` (before the Pi joins)"
    )


@devices.group("add-kit")
def devices_add_kit() -> None:
    """Register a kit that runs its own firmware (an airrohr box, a LoRaWAN node): its
    readings reach sensorpipe through a kit gateway, which vouches for them."""


@devices_add_kit.command("airrohr")
@click.option(
    "--chip-id",
    required=True,
    help="The kit's chip id: the number in its name (airRohr-<chip id>) and on its start page.",
)
@DIR_OPTION
@SITE_OPTION
@click.option(
    "--id",
    "device_id",
    default=None,
    help="Device id, also the kit's user name (default: airrohr-<chip id>).",
)
@_host_options(
    "kit",
    "Sensor model it has, as the kit gateway names the firmware's sensors (repeatable; "
    "none given: any of them): sds011, pms5003 (the whole PMS family), hpma115, nextpm, "
    "ips7100, sps30, bme280, bmp280, bmp180, sht3x, htu21d, dht22, ds18b20, scd30, dnms.",
)
@_register_options()
@ALLOW_UNKNOWN_SENSOR
@click.option("--json", "as_json", is_flag=True, help="Print the kit's settings as JSON.")
def devices_add_kit_airrohr(
    chip_id: str,
    directory: Path | None,
    site: str,
    device_id: str | None,
    allow_unknown_sensor: bool,
    as_json: bool,
    **register: Any,
) -> None:
    """Register a Sensor.Community airrohr kit received by the stack's kit gateway, and print
    what to type into its config page (tab "APIs", "Send data to custom API")."""
    chip_id = parse_chip_id(chip_id)
    fields = _register_fields(**register)
    _airrohr_sensors(register["sensors"])
    notes = _sensor_notes(list(register["sensors"]), allow_unknown_sensor, kit=True)
    s = local_stack(directory)
    creds = _provision(
        lambda: s.add_airrohr_kit(chip_id=chip_id, site=site, device_id=device_id, **fields)
    )
    _echo_notes(notes)
    setup = s.kit_setup()
    out = {
        "device_id": creds.device_id,
        "chip_id": creds.chip_id,
        "gateway": creds.gateway,
        "site": site,
        "server": setup["server"],
        "path": setup["path"],
        "port": setup["port"],
        "user": creds.device_id,
        "password": creds.password,
        "https": setup["https"],
    }
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(
            f"registered {creds.device_id} (chip {chip_id}, site {site}), received by gateway "
            f"{creds.gateway}, in {s.registry_path}"
        )
        click.echo(
            "On the kit's config page (http://airRohr-<chip id>.local/config or its address), "
            'tab "APIs": tick "Send data to custom API" and type'
        )
        click.echo(f"  Server   : {out['server']}")
        click.echo(f"  Path     : {out['path']}")
        click.echo(f"  Port     : {out['port']}")
        click.echo(f"  User     : {out['user']}")
        click.echo(f"  Password : {out['password']}   (shown only now)")
        click.echo(f"  HTTPS    : {'tick it' if out['https'] else 'leave it unticked'}")
        click.echo('then "Save configuration and restart".')
    if setup["note"]:
        click.echo(f"note: {setup['note']}", err=True)


@devices_add_kit.command("ttn")
@click.option(
    "--application",
    required=True,
    help="The Things Stack application: <application id>@<tenant id> (my-app@ttn on TTN).",
)
@click.option(
    "--device-id",
    "ttn_device",
    required=True,
    help="The node's end device id as the TTN console shows it (e.g. eui-70b3d57ed005e1a2).",
)
@DIR_OPTION
@SITE_OPTION
@click.option(
    "--id", "device_id", default=None, help="sensorpipe device id (default: the TTN device id)."
)
@_host_options(
    "node",
    "Sensor model it has, as the application's [ttn.fields] name it (repeatable; none "
    "given: any model sensorpipe knows).",
)
@_register_options()
@click.option(
    "--webhook",
    is_flag=True,
    help="Make a webhook token for the application (its hash goes into the stack's "
    "gateway.toml) and print what to type into the console's webhook form.",
)
@ALLOW_UNKNOWN_SENSOR
@click.option("--json", "as_json", is_flag=True, help="Print the node's settings as JSON.")
def devices_add_kit_ttn(
    application: str,
    ttn_device: str,
    directory: Path | None,
    site: str,
    device_id: str | None,
    webhook: bool,
    allow_unknown_sensor: bool,
    as_json: bool,
    **register: Any,
) -> None:
    """Register a LoRaWAN node of a The Things Stack application (The Things Network or a
    private instance), bridged by the stack's kit gateway, and print what to set up in the
    TTN console: with the MQTT integration nothing per node (the gateway connects); with
    --webhook the URL, header and token of the application's webhook."""
    from sensorpipe.cli.ttn_setup import ttn_setup_lines
    from sensorpipe.gateway.devices import ProvisioningError
    from sensorpipe.gateway.kits.ttn_provision import add_webhook_hash, new_webhook_token
    from sensorpipe.stack.local import STACK_GATEWAY_ID

    application, ttn_device = application.strip(), ttn_device.strip()
    fields = _register_fields(**register)
    notes = _sensor_notes(list(register["sensors"]), allow_unknown_sensor, kit=True)
    s = local_stack(directory)
    registered = _provision(
        lambda: s.add_ttn_node(
            application=application, ttn_device=ttn_device, site=site, device_id=device_id, **fields
        )
    )
    token = None
    if webhook:
        token, digest = new_webhook_token()
        try:
            add_webhook_hash(s.gateway_config_path, application, digest)
        except (ProvisioningError, OSError) as exc:
            fail(f"{registered} is registered, but the webhook token was not saved: {exc}")
    _echo_notes(notes)
    info = s.info()
    setup = ttn_setup_lines(
        application,
        config_path=s.gateway_config_path,
        kits_url=info.kits_url if info is not None else None,
        token=token,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "device_id": registered,
                    "application": application,
                    "ttn_device": ttn_device,
                    "gateway": STACK_GATEWAY_ID,
                    "site": site,
                    **setup.as_dict(),
                }
            )
        )
        return
    click.echo(
        f"registered {registered} (TTN device {ttn_device} of {application}, site {site}), "
        f"received by gateway {STACK_GATEWAY_ID}, in {s.registry_path}"
    )
    for line in setup.lines:
        click.echo(line)
    for note in setup.notes:
        click.echo(f"note: {note}", err=True)


@devices.command("add-gateway")
@click.argument("gateway_id")
@DIR_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the gateway's key and password files (default: <stack dir>/gateways).",
)
@click.option("--rotate", is_flag=True, help="Give a registered gateway a new key and password.")
def devices_add_gateway(
    gateway_id: str, directory: Path | None, out_dir: Path | None, rotate: bool
) -> None:
    """Register a kit gateway that runs on another machine (`sensorpipe gateway run`): its
    private key and broker password go into two private files for that machine; the
    registry keeps the public key and the password's hash. The stack's own gateway
    (local-gateway) is registered by `sensorpipe stack up`."""
    from sensorpipe.protocol.files import write_private

    s = local_stack(directory)
    out_dir = out_dir or s.directory / "gateways"
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir}: is a file; give a directory")
    creds = _provision(lambda: s.add_gateway(gateway_id, rotate=rotate))
    key_path = out_dir / f"{gateway_id}.key"
    password_path = out_dir / f"{gateway_id}.password"
    try:
        write_private(key_path, creds.private_key + "\n")
        write_private(password_path, creds.password + "\n")
    except OSError as exc:
        fail(
            f"--out {out_dir}: cannot write the gateway's files ({exc.strerror or exc}); "
            f"`sensorpipe devices add-gateway {gateway_id} --rotate --out DIR` makes new ones"
        )
    click.echo(f"registered gateway {gateway_id} in {s.registry_path}")
    click.echo(f"  private key     : {key_path}")
    click.echo(f"  broker password : {password_path}")
    click.echo(
        "copy both (mode 600) to the gateway's machine and name them in its gateway.toml "
        "(private_key_file, [broker] password_file); `sensorpipe config example gateway` "
        "shows the rest"
    )


def _location(lat: float | None, lon: float | None) -> Location | None:
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


def _vouch_text(d: DeviceEntry) -> str:
    """How a device's readings are vouched for, in words."""
    if d.source == EDGE:
        return "signed on the device"
    if d.source in KIT_SOURCES:
        return f"signed by gateway {d.gateway}"
    return "imported by a named user"


def _data_sources(
    s: LocalStack,
) -> tuple[dict[str, list[str]] | None, RegisterStats | None, str | None]:
    """The provenance of the data stored per device and the register's statistics (each
    sensor's health among them), or None and why they are not known."""
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.register import register_stats, sources_seen

    endpoint = s.influx_endpoint()
    if endpoint is None:
        return None, None, None  # no stack here: the registry alone is what there is to list
    url, database = endpoint
    client = InfluxClient(url, database, timeout_s=5.0)
    try:
        if not client.ping(timeout_s=2.0):
            return None, None, f"InfluxDB at {url} does not answer"
        return sources_seen(client), register_stats(client), None
    except (StorageUnavailable, QueryError) as exc:
        return None, None, f"InfluxDB at {url} could not list the data's sources ({exc})"
    finally:
        client.close()


@devices.command("list")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True)
def devices_list(directory: Path | None, as_json: bool) -> None:
    """List registered devices: site, how their readings arrive and who vouches for them, the
    sources of their stored data (when the stack's InfluxDB answers), their sensors and
    whether they are quarantined (`--json`: with the register fields each one sets itself
    and the quarantine's reason, detail, time and who made it)."""
    s = local_stack(directory)
    if not s.registry_path.is_file():
        fail(
            f"no registry at {s.registry_path}: no device is registered there; give --dir "
            "(the stack's directory, or /etc/sensorpipe on a lasting server)"
        )
    registry = s.registry()
    quarantined = s.quarantines()
    pending = s.pending_lifts()
    from sensorpipe.query.health import NO_DATA_YET, not_ok_notes

    keys = _enrolled_keys(s)
    seen, stats, why_not = _data_sources(s)
    if why_not:
        click.echo(
            f"note: {why_not}; listed without the sources of stored data and the sensors' health",
            err=True,
        )
    if as_json:
        out = []
        for item in registry.public_view():
            d = registry.devices[str(item["device_id"])]
            out.append(
                {
                    **item,
                    "source": d.source,
                    "vouched": _vouch_text(d),
                    "gateway": d.gateway,
                    "data_sources": None if seen is None else seen.get(str(item["device_id"]), []),
                    "directions": d.directions,
                    "location_precision_decimals": d.location_precision_decimals,
                    # Empty: the network's value; personal_data null: decided from the sensors.
                    "contact": d.contact,
                    "legal_basis": d.legal_basis,
                    "retention": d.retention,
                    "licence": d.licence,
                    "count_classes": d.count_classes,
                    "personal_data": d.personal_data,
                    # Edge devices: where its signing key comes from (protocol.enrollment).
                    "key": _key_fields(d, keys.get(str(item["device_id"]))),
                    # null, or since when (epoch s), why and by whom it is quarantined.
                    "quarantine": _quarantine_fields(quarantined.get(str(item["device_id"]))),
                    # null, or a lift the broker has not confirmed (account still disabled).
                    "lift_pending": (
                        None
                        if (p := pending.get(str(item["device_id"]))) is None
                        else {k: v for k, v in p.as_dict().items() if k != "device_id"}
                    ),
                    # null where InfluxDB does not answer; else per sensor: ok, last error,
                    # since when, uptime (sensorpipe.query.health)
                    **_health_fields(stats, str(item["device_id"])),
                }
            )
        click.echo(json.dumps(out, indent=2))
        return
    for device_id, d in sorted(registry.devices.items()):
        data = "" if seen is None else f" data={','.join(seen.get(device_id, [])) or 'none'}"
        q = quarantined.get(device_id)
        state = "" if q is None else f" QUARANTINED({q.reason} since {_when(q.since)})"
        if device_id in pending:
            state += f" LIFT-PENDING(since {_when(pending[device_id].lifted_at)})"
        key = _key_fields(d, keys.get(device_id))
        if key is not None:
            fp = f"({key['fingerprint']})" if key["fingerprint"] else ""
            state += f" key={str(key['state']).replace(' ', '-')}{fp}"
        if stats is not None and stats.of(device_id).first_seen_ms is None:
            state += f" ({NO_DATA_YET})"
        click.echo(
            f"{device_id:20s} site={d.site:16s} source={d.source:8s} "
            f"vouch={_vouch_text(d)!r}{data} sensors={','.join(d.sensors)}{state}"
        )
        for note in [] if stats is None else not_ok_notes(stats.of(device_id).health):
            click.echo(f"  ! {note}")


AWAITING_JOIN = "awaiting join"


def _enrolled_keys(s: LocalStack) -> dict[str, EnrolledKey]:
    import sqlite3

    from sensorpipe.protocol.enrollment import KeyStore

    try:
        return KeyStore(s.keys_path).all()
    except sqlite3.Error as exc:
        click.echo(f"note: {s.keys_path}: cannot read the enrolled keys ({exc})", err=True)
        return {}


def _key_fields(d: DeviceEntry, enrolled: EnrolledKey | None) -> dict[str, object] | None:
    """Where an edge device's signing key comes from: the registry (made by `devices add
    --make-key`), enrolled by the device at its join, or not yet (awaiting its join)."""
    from datetime import UTC, datetime

    from sensorpipe.protocol.enrollment import fingerprint

    if d.source != EDGE:
        return None
    if d.public_key:
        return {"state": "registry", "fingerprint": fingerprint(d.public_key)}
    if enrolled is None:
        return {"state": AWAITING_JOIN, "fingerprint": None}
    when = datetime.fromtimestamp(enrolled.enrolled_at, UTC).isoformat(timespec="seconds")
    return {
        "state": "enrolled",
        "fingerprint": fingerprint(enrolled.public_key),
        "enrolled_at": when.replace("+00:00", "Z"),
    }


@devices.command("reset-key")
@click.argument("device_id")
@DIR_OPTION
def devices_reset_key(device_id: str, directory: Path | None) -> None:
    """Forget the key DEVICE_ID enrolled at its join, so that it can join again (a Pi set up
    anew, a lost SD card). Until it joins again, its messages are set aside (`no_key`)."""
    from sensorpipe.protocol.enrollment import KeyStore

    s = local_stack(directory)
    registry = s.registry()
    entry = registry.devices.get(device_id)
    if entry is None:
        fail(s.unknown_device(registry, device_id))
    if entry.source != EDGE:
        fail(f"{device_id}: a device of source {entry.source!r} has no key of its own")
    if entry.public_key:
        fail(
            f"{device_id}: its key is in the registry (registered with --make-key), not "
            "enrolled: register it again to give it another"
        )
    if not KeyStore(s.keys_path).forget(device_id):
        fail(f"{device_id}: it has not enrolled a key ({s.keys_path}): it can join as it is")
    # Touched (owner and mode kept), so that the ingest, which re-reads a changed registry,
    # forgets the key too.
    os.utime(s.registry_path)
    click.echo(f"{device_id}: its enrolled key is forgotten; it can join again (`edge join`)")


def _health_fields(stats: RegisterStats | None, device_id: str) -> dict[str, object]:
    from sensorpipe.query.health import NO_DATA_YET, not_ok_notes

    if stats is None:
        return {"state": None, "sensor_health": None, "notes": None}
    of = stats.of(device_id)
    return {
        "state": NO_DATA_YET if of.first_seen_ms is None else None,
        "sensor_health": [h.as_json() for _, h in sorted(of.health.items())],
        "notes": not_ok_notes(of.health),
    }


def _quarantine_fields(q: Quarantine | None) -> dict[str, object] | None:
    if q is None:
        return None
    return {k: v for k, v in q.as_dict().items() if k != "device_id"}


def _when(epoch_s: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s))


@devices.command("quarantine")
@click.argument("device_id")
@DIR_OPTION
@click.option(
    "--reason-text",
    default="",
    help="Why, in words (kept in the quarantine book's log and shown by `devices list`).",
)
def devices_quarantine(directory: Path | None, device_id: str, reason_text: str) -> None:
    """Take DEVICE_ID off the network until `sensorpipe devices lift`: the ingest drops its
    messages, the kit gateway refuses its posts, and where the stack's broker runs its broker
    account is disabled now (it is disconnected and cannot log in again)."""
    from sensorpipe.stack.local import StackError

    if len(reason_text) > 2000:
        fail(f"--reason-text: {len(reason_text)} characters; at most 2000")
    s = local_stack(directory)
    try:
        _entry, disabled = s.quarantine(device_id, detail=reason_text, by=_operator())
    except StackError as exc:
        fail(str(exc))
    entry = s.registry().devices[device_id]
    if disabled:
        where = "its broker account is disabled"
    elif entry.source in KIT_SOURCES:
        where = f"a kit has no broker account: gateway {entry.gateway} refuses it"
    elif entry.source != EDGE:
        where = f"a device of source {entry.source} has no broker account"
    else:
        where = f"no broker runs; {_restart_broker(s)} with the account disabled"
    click.echo(f"quarantined {device_id} ({where}); `sensorpipe devices lift {device_id}` ends it")


@devices.command("lift")
@click.argument("device_id")
@DIR_OPTION
def devices_lift(directory: Path | None, device_id: str) -> None:
    """End DEVICE_ID's quarantine: the ingest and the kit gateway take it again within a
    second, and where the stack's broker runs its broker account is enabled."""
    from sensorpipe.stack.local import StackError

    s = local_stack(directory)
    pending = s.pending_lifts().get(device_id)
    try:
        entry, enabled = s.lift(device_id, by=_operator())
    except StackError as exc:
        fail(str(exc))
    if pending is not None:
        click.echo(
            f"the broker account of {device_id} is enabled: the lift made "
            f"{_when(pending.lifted_at)} by {pending.by} is done"
        )
        return
    since = _when(entry.since)
    if enabled:
        account = "its broker account is enabled"
    elif s.running()["mosquitto"]:
        account = "it has no broker account to enable"
    else:
        account = f"no broker runs; {_restart_broker(s)} with the account enabled"
    click.echo(
        f"lifted the quarantine of {device_id} ({entry.reason} since {since}, by {entry.by}); "
        f"{account}"
    )


def _restart_broker(s: LocalStack) -> str:
    """How to start the stack's broker again: `stack up` refuses while other parts run."""
    if any(s.running().values()):
        return "`sensorpipe stack down` then `sensorpipe stack up` start it"
    return "`sensorpipe stack up` starts it"


def _operator() -> str:
    """Who runs the command, for the quarantine book's log."""
    import getpass

    try:
        return f"operator {getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return "operator"


@devices.command("export")
@DIR_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "geojson", "csv", "html"]),
    default="json",
    show_default=True,
    help="json: a list of devices; geojson: a FeatureCollection; csv: a row per device; "
    "html: one self-contained page for a website.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "nl"]),
    default=None,
    help="Language of the html page (default en; nl: Dutch).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file (default: standard output).",
)
@click.option(
    "--influx-url",
    default=None,
    help="InfluxDB for first/last seen, uptime and latency (default: the stack's).",
)
@click.option("--database", default=None, help="Its database (default: the stack's, sensorpipe).")
def devices_export(
    directory: Path | None,
    fmt: str,
    lang: str | None,
    out: str | None,
    influx_url: str | None,
    database: str | None,
) -> None:
    """Public register: what each sensor measures, who owns it, why, personal data, legal basis,
    retention, licence, contact, rounded location, and (when InfluxDB answers) how it runs."""
    from sensorpipe.query.export import export

    if lang is not None and fmt != "html":
        fail(
            f"--lang {lang}: only the html page is translated; json, geojson and csv use the "
            f"register's field names (use --format html, or leave --lang out)"
        )
    if out is not None and not Path(out).parent.is_dir():
        fail(f"--out {out}: no directory {Path(out).parent}; create it or give another file")
    s = local_stack(directory)
    registry = s.registry()
    stats, why_not = _register_stats(s, influx_url, database)
    if why_not:
        click.echo(
            f"note: {why_not}; exported the register without first/last seen, uptime, missing "
            f"messages and latency",
            err=True,
        )
    text = export(registry, stats, fmt, lang=lang or "en")
    if out is None:
        click.echo(text.rstrip("\n"))
        return
    try:
        Path(out).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(
            f"--out {out}: cannot write it ({exc.strerror or exc}); give a file in a "
            f"directory that exists"
        )
    click.echo(f"wrote {len(registry.devices)} devices ({fmt}) to {out}", err=True)


def _register_stats(
    s: LocalStack, influx_url: str | None, database: str | None
) -> tuple[RegisterStats | None, str | None]:
    """The statistics from InfluxDB, or None and why there are none."""
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.register import register_stats

    if influx_url is None:
        endpoint = s.influx_endpoint()
        if endpoint is None:
            return None, f"no stack in {s.directory} (pass --influx-url for statistics)"
        influx_url, database = endpoint[0], database or endpoint[1]
    client = InfluxClient(influx_url, database or "sensorpipe", timeout_s=10.0)
    try:
        if not client.ping():
            return None, f"InfluxDB at {influx_url} does not answer"
        return register_stats(client), None
    except (StorageUnavailable, QueryError) as exc:
        return None, f"InfluxDB at {influx_url} could not give statistics ({exc})"
    finally:
        client.close()


@devices.command("network")
@DIR_OPTION
@click.option("--name", default=None, help="Name of the network, the register's title.")
@click.option("--operator", default=None, help="Who runs it (a municipality, a foundation).")
@click.option("--contact", default=None, help="Whom residents ask about any device.")
@click.option("--legal-basis", default=None, help="Legal basis where personal data is processed.")
@click.option("--retention", default=None, help="How long data is kept.")
@click.option("--licence", default=None, help="Licence of the published data, e.g. CC-BY-4.0.")
@click.option("--privacy-url", default=None, help="Web address of the privacy statement.")
@click.option("--json", "as_json", is_flag=True, help="Print the network's values as JSON.")
def devices_network(
    directory: Path | None,
    name: str | None,
    operator: str | None,
    contact: str | None,
    legal_basis: str | None,
    retention: str | None,
    licence: str | None,
    privacy_url: str | None,
    as_json: bool,
) -> None:
    """Set what applies to every device unless its own entry says otherwise (contact, legal
    basis, retention, licence) and who runs the network; without options, print them."""
    from sensorpipe.protocol.registry import NetworkInfo, save_registry

    given = {
        "name": name,
        "operator": operator,
        "contact": contact,
        "legal_basis": legal_basis,
        "retention": retention,
        "licence": licence,
        "privacy_url": privacy_url,
    }
    changes = {k: v.strip() for k, v in given.items() if v is not None}
    if changes.get("name") == "":
        fail("--name '': give the network a name (it is the register's title)")
    url = changes.get("privacy_url")
    if url and (
        not url.lower().startswith(("https://", "http://")) or any(c.isspace() for c in url)
    ):
        fail(f"--privacy-url {url!r}: give a web address like https://example.org/privacy")
    s = local_stack(directory)
    registry = s.registry()
    if changes:
        try:
            registry.network = NetworkInfo(**{**registry.network.model_dump(), **changes})
        except ValidationError as exc:
            invalid(exc, {k: "--" + k.replace("_", "-") for k in given})
        save_registry(registry, s.registry_path)
    values = registry.network.model_dump()
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    if changes:
        click.echo(f"network defaults saved in {s.registry_path}")
    for key, value in values.items():
        click.echo(f"{key:12s} {value}")


# Models a kit's firmware has that the kit gateway reports under another name.
_AIRROHR_ALIASES = {
    "pms1003": "pms5003",
    "pms3003": "pms5003",
    "pms6003": "pms5003",
    "pms7003": "pms5003",
    "pmsa003": "pms5003",
    "sht31": "sht3x",
    "sht30": "sht3x",
    "sht35": "sht3x",
}


def _airrohr_sensors(sensors: tuple[str, ...]) -> None:
    """An airrohr kit's readings name the models the kit gateway maps the firmware's value
    types to (gateway.kits.airrohr.VALUE_TYPES): a model declared under another name (its
    readings would all be set aside as undeclared) or one the gateway never reports is
    refused with the name to use."""
    from sensorpipe.gateway.kits.airrohr import VALUE_TYPES

    reported = sorted({v.sensor for v in VALUE_TYPES.values()})
    for model in sensors:
        if model in reported:
            continue
        alias = _AIRROHR_ALIASES.get(model.lower())
        if alias is not None:
            fail(
                f"--sensor {model}: the kit gateway reports this sensor of an airrohr kit as "
                f"{alias!r}; declare --sensor {alias}"
            )
        close = difflib.get_close_matches(model.lower(), reported, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        fail(
            f"--sensor {model}: not a sensor the airrohr firmware reports; {hint}the kit "
            f"gateway reports {', '.join(reported)}"
        )


def parse_chip_id(text: str) -> str:
    """The chip id of `--chip-id` as the kit's firmware sends it (`esp8266id`): the decimal
    number of an ESP8266 kit (its name airRohr-<number>, also given as esp8266-<number>), or
    the hexadecimal id of an ESP32 kit, which must be given with its prefix (esp32-<hex>) so
    that a mistyped decimal id is never taken for one. Anything else is a one-line error."""
    import re

    value = text.strip()
    decimal = re.fullmatch(r"(?i:airrohr-|esp8266-)?([0-9]{1,20})", value)
    if decimal and int(decimal.group(1)) > 0:
        # The firmware sends the number without leading zeros (esp8266id "42", not "0042").
        return str(int(decimal.group(1)))
    esp32 = re.fullmatch(r"(?i:esp32-)([0-9a-fA-F]{1,20})", value)
    if esp32:
        return esp32.group(1).lower()
    hint = ""
    if re.fullmatch(r"[0-9a-fA-F]{1,20}", value):
        hint = f"; if it is an ESP32 kit, give it as esp32-{value.lower()}"
    fail(
        f"--chip-id {text!r}: not a chip id; it is the number in the kit's name airRohr-<number> "
        f"(an ESP8266 kit) or esp32-<hex digits> for an ESP32 kit, as its start page shows"
        f"{hint}"
    )


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


def _sensor_notes(
    sensors: list[str], allow_unknown: bool = False, *, kit: bool = False
) -> list[str]:
    """What to know about declared sensor models that the edge agent cannot read itself (not
    for a `kit`: its firmware reads them); a model sensorpipe does not know is refused (with
    the nearest known one) unless `allow_unknown` (--allow-unknown-sensor)."""
    from sensorpipe.edge.drivers.registry import DRIVERS
    from sensorpipe.protocol.registry import KNOWN_SENSORS

    notes = []
    for model in sensors:
        if model not in KNOWN_SENSORS and model.lower() in KNOWN_SENSORS:
            fail(f"--sensor {model}: did you mean {model.lower()!r}? Sensor models are lower case")
        if model not in KNOWN_SENSORS:
            close = difflib.get_close_matches(model, sorted(KNOWN_SENSORS), n=1)
            if not allow_unknown:
                hint = f"did you mean {close[0]!r}? " if close else ""
                fail(
                    f"--sensor {model}: not a model sensorpipe knows; {hint}known models: "
                    f"{', '.join(sorted(KNOWN_SENSORS))}; to declare another model, add "
                    f"--allow-unknown-sensor"
                )
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            notes.append(
                f"--sensor {model}: not a model sensorpipe knows{hint}; readings that name it "
                f"are accepted from this device only as declared here"
            )
        elif model == "camera":
            continue  # read by the counting pipeline (`[counting]` in the edge config)
        elif model not in DRIVERS and not kit:
            notes.append(
                f"--sensor {model}: the sensorpipe edge agent has no driver for it (drivers: "
                f"{', '.join(sorted(DRIVERS))}); its readings can come from another sender "
                f"that signs as this device"
            )
    return notes
