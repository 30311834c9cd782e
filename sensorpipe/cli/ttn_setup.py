"""What `sensorpipe devices add-kit ttn` tells a group to set up in the TTN console and in the
gateway's configuration."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorpipe.gateway.kits.ttn_webhook import webhook_url_path


@dataclass
class TtnSetup:
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    configured: bool = False  # the application has a [[ttn]] section
    mqtt_server: str | None = None
    webhook: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "configured": self.configured,
            "mqtt_server": self.mqtt_server,
            "webhook": self.webhook,
            "notes": self.notes,
        }


def _section(config_path: Path, application: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, f"{config_path}: cannot read it ({exc})"
    for section in config.get("ttn", []):
        if isinstance(section, dict) and section.get("application") == application:
            return section, None
    return None, None


def _server_of(tenant: str) -> str:
    if tenant == "ttn":
        return "eu1.cloud.thethings.network"
    return f"{tenant}.eu1.cloud.thethings.industries"


def ttn_setup_lines(
    application: str, *, config_path: Path, kits_url: str | None, token: str | None
) -> TtnSetup:
    """The lines to print for a node of `application` (`token`: a webhook token just made)."""
    setup = TtnSetup()
    app_id, tenant = application.split("@", 1)
    section, problem = _section(config_path, application)
    if problem:
        setup.notes.append(problem)
    setup.configured = section is not None
    if section is not None and section.get("server"):
        setup.mqtt_server = str(section["server"])
        setup.lines.append(
            f"The gateway's MQTT bridge takes the uplinks of {application} from "
            f"{setup.mqtt_server}: nothing to type into the TTN console for this node."
        )
    if token is not None:
        base = kits_url or "https://<the gateway's address>/"
        url = base.rstrip("/") + webhook_url_path(application).removesuffix("/uplink")
        setup.webhook = {
            "base_url": url,
            "uplink_path": "/uplink",
            "header": "Authorization",
            "value": f"Bearer {token}",
        }
        setup.lines += [
            f"In the TTN console, application {app_id}: Integrations > Webhooks > Add webhook > "
            f"Custom webhook, and type",
            "  Webhook ID         : sensorpipe",
            "  Webhook format     : JSON",
            f"  Base URL           : {url}",
            f"  Additional headers : Authorization   Bearer {token}   (shown only now)",
            "  Enabled event types: Uplink message, with the path /uplink",
            f"The token's hash is now in {config_path} ([[ttn]] {application}); restart the "
            f"gateway to take it (`sensorpipe stack down`, `sensorpipe stack up`).",
        ]
        if kits_url is None or "//127." in kits_url or "//localhost" in kits_url:
            setup.notes.append(
                "The Things Stack must reach the gateway over the internet: give it a public "
                "address with TLS ([http] bind, tls_cert and tls_key in its gateway.toml, or a "
                "reverse proxy) and use that address in the Base URL"
            )
    if section is None and token is None:
        key_file = f"ttn-{app_id}.key"
        server = _server_of(tenant)
        setup.lines += [
            f"The application {application} is not in the gateway's configuration "
            f"({config_path}) yet. For the MQTT integration:",
            f"  1. TTN console, application {app_id}: Integrations > MQTT > Generate new API "
            f"key (its rights: read application traffic). Copy it.",
            f"  2. Save it alone in {config_path.parent / key_file}, mode 600.",
            f"  3. Add to {config_path}:",
            "       [[ttn]]",
            f'       application = "{application}"',
            f'       server = "{server}"   # the console\'s MQTT page names it',
            f'       api_key_file = "{key_file}"',
            f'       storage_url = "https://{server}"   # Storage Integration on: no gaps',
            "       [ttn.fields.pm25]   # one table per decoded_payload field to store",
            '       quantity = "pm2_5"',
            '       sensor = "sds011"',
            "  4. `sensorpipe stack down` and `sensorpipe stack up`: the gateway connects.",
            "For a webhook instead, register a node of the application with --webhook.",
        ]
    elif section is not None and not section.get("fields"):
        setup.notes.append(
            f"{config_path}: [[ttn]] {application} maps no decoded_payload field yet "
            f"([ttn.fields.<field>] quantity, sensor): until it does, every field of its "
            f"uplinks is kept as a dead letter (unknown_field), none stored"
        )
    return setup
