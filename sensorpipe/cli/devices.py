"""`sensorpipe devices`: register devices and publish the register.

Here: the group, `add` (a device and how it joins), `add-gateway`, `list` and `reset-key`.
The group's other commands live in their own modules and are added to it here: `kits`
(`add-kit airrohr|ttn`), `quarantine` (`quarantine`, `lift`), `public_register` (`export`,
`network`) and `device_edit` (`edit`: the public register fields). `add` and the kits take one
provisioning path (`provisioning`): the same register options, read into the same register
fields, and the stack's add function run with one-line refusals; each command keeps only its
own options, checks and what it prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sensorpipe.cli import provisioning
from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.device_edit import devices_edit
from sensorpipe.cli.kits import devices_add_kit
from sensorpipe.cli.options import DIR_OPTION, json_option
from sensorpipe.cli.public_register import devices_export, devices_network
from sensorpipe.cli.quarantine import devices_lift, devices_quarantine, when
from sensorpipe.protocol.provenance import EDGE, KIT_SOURCES

if TYPE_CHECKING:
    from sensorpipe.protocol.enrollment import EnrolledKey
    from sensorpipe.protocol.quarantine import Quarantine
    from sensorpipe.protocol.registry import DeviceEntry
    from sensorpipe.query.register import RegisterStats
    from sensorpipe.stack.local import LocalStack


@click.group()
def devices() -> None:
    """Register devices and publish what each one measures and why."""


# The group's commands that live in their own modules.
for _command in (
    devices_add_kit,  # kits
    devices_quarantine,  # quarantine
    devices_lift,
    devices_export,  # public_register
    devices_network,
    devices_edit,  # device_edit
):
    devices.add_command(_command)


@devices.command("add")
@click.argument("device_id")
@DIR_OPTION
@provisioning.SITE_OPTION
@provisioning.host_options(
    "device", "Sensor model it may report (repeatable; none given: any model sensorpipe knows)."
)
@click.option(
    "--direction",
    "directions",
    multiple=True,
    help="Direction name of its counting line (repeatable; default left_to_right, right_to_left).",
)
@provisioning.register_options("Legal basis for processing personal data (default: the network's).")
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
@provisioning.ALLOW_UNKNOWN_SENSOR
@click.option(
    "--make-key",
    is_flag=True,
    help="Make the device's signing key here and print it with the password, for a device "
    "you configure by hand. Default: the device makes its own key when it joins "
    "(`sensorpipe edge join` with the printed join code).",
)
@json_option("Print the credentials as JSON.")
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
    fields = provisioning.register_fields(**register)
    provisioning.check_count_classes("--count-class", count_classes)
    sensors: list[str] = list(register["sensors"])
    notes = provisioning.sensor_notes(sensors, allow_unknown_sensor)  # before registering
    s = local_stack(directory)
    creds = provisioning.provision(
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
    provisioning.echo_notes(notes)
    provisioning.warn_personal_data_gaps(s.registry(), [device_id])
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
        out["pi_commands"] = pi_commands(sensors)
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
    for i, command in enumerate(pi_commands(sensors), 1):
        click.echo(f"  {i}. {command}")
    click.echo(
        f"join code for {device_id}, asked for by command 2 (it holds the device's password: "
        "give it to the host only, as you would a password):"
    )
    click.echo(code)


# Sensor models whose drivers are Sensirion's, in the `sensirion` extra (edge.drivers.sensirion).
SENSIRION_MODELS = frozenset({"sps30", "scd30", "scd4x"})


def pi_commands(sensors: Sequence[str] = ()) -> list[str]:
    """What the host of a Pi runs to join: install (with the `sensirion` extra where a declared
    sensor needs it), join (asks for the code), check and start."""
    from sensorpipe import __version__
    from sensorpipe.protocol.registry import sensor_model

    wheel = f"./sensorpipe-{__version__}-py3-none-any.whl"
    if any(sensor_model(s) in SENSIRION_MODELS for s in sensors):
        wheel = f"'{wheel}[sensirion]'"  # quoted: [...] is a shell pattern
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
    creds = provisioning.provision(lambda: s.add_gateway(gateway_id, rotate=rotate))
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


def _vouch_text(d: DeviceEntry) -> str:
    """How a device's readings are vouched for, in words."""
    if d.source == EDGE:
        return "signed on the device"
    if d.source in KIT_SOURCES:
        return f"signed by gateway {d.gateway}"
    if d.source == "reference":
        return "a reference station's published values, imported by a named user"
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
@json_option()
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
                    # Reference stations: their code, who runs them, how they measure.
                    "station_code": d.station_code,
                    "operator": d.operator,
                    "method": d.method,
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
        state = "" if q is None else f" QUARANTINED({q.reason} since {when(q.since)})"
        if device_id in pending:
            state += f" LIFT-PENDING(since {when(pending[device_id].lifted_at)})"
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
