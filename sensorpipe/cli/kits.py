"""`sensorpipe devices add-kit airrohr|ttn`: register a kit that runs its own firmware.

Both take the register options and the provisioning path of `provisioning`, as `devices add`
does; what is a kit's own is here: an airrohr kit's chip id and the sensor names its firmware
reports, a The Things Stack node's application and webhook token, and what each prints to type
into the kit's config page or the TTN console. `devices` adds the group to its own.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import click

from sensorpipe.cli import provisioning
from sensorpipe.cli.common import fail, local_stack
from sensorpipe.cli.options import DIR_OPTION, json_option


@click.group("add-kit")
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
@provisioning.SITE_OPTION
@click.option(
    "--id",
    "device_id",
    default=None,
    help="Device id, also the kit's user name (default: airrohr-<chip id>).",
)
@provisioning.host_options(
    "kit",
    "Sensor model it has, as the kit gateway names the firmware's sensors (repeatable; "
    "none given: any of them): sds011, pms5003 (the whole PMS family), hpma115, nextpm, "
    "ips7100, sps30, bme280, bmp280, bmp180, sht3x, htu21d, dht22, ds18b20, scd30, dnms.",
)
@provisioning.register_options()
@provisioning.ALLOW_UNKNOWN_SENSOR
@json_option("Print the kit's settings as JSON.")
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
    fields = provisioning.register_fields(**register)
    _airrohr_sensors(register["sensors"])
    notes = provisioning.sensor_notes(list(register["sensors"]), allow_unknown_sensor, kit=True)
    s = local_stack(directory)
    creds = provisioning.provision(
        lambda: s.add_airrohr_kit(chip_id=chip_id, site=site, device_id=device_id, **fields)
    )
    provisioning.echo_notes(notes)
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
@provisioning.SITE_OPTION
@click.option(
    "--id", "device_id", default=None, help="sensorpipe device id (default: the TTN device id)."
)
@provisioning.host_options(
    "node",
    "Sensor model it has, as the application's [ttn.fields] name it (repeatable; none "
    "given: any model sensorpipe knows).",
)
@provisioning.register_options()
@click.option(
    "--webhook",
    is_flag=True,
    help="Make a webhook token for the application (its hash goes into the stack's "
    "gateway.toml) and print what to type into the console's webhook form.",
)
@provisioning.ALLOW_UNKNOWN_SENSOR
@json_option("Print the node's settings as JSON.")
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
    fields = provisioning.register_fields(**register)
    notes = provisioning.sensor_notes(list(register["sensors"]), allow_unknown_sensor, kit=True)
    s = local_stack(directory)
    registered = provisioning.provision(
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
    provisioning.echo_notes(notes)
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
