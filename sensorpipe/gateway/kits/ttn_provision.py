"""Registering The Things Stack nodes, and the webhook token of an application.

A node needs no secret of its own: The Things Stack authenticates it (LoRaWAN session keys),
and the gateway that bridges its application vouches for it. The registry keeps which
application and end device id it is and which gateway may publish for it.
"""

from __future__ import annotations

import re
import secrets
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w
from pydantic import ValidationError

from sensorpipe.gateway.devices import (
    ProvisioningError,
    check_kit_gateway,
    check_new_device_id,
    register,
)
from sensorpipe.gateway.kits.ttn_config import TtnApplication
from sensorpipe.http_server import token_hash
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.provenance import TTN
from sensorpipe.protocol.registry import TTN_APPLICATION_PATTERN, TTN_DEVICE_PATTERN, Registry

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from sensorpipe.gateway.devices import RegisterFields


def add_ttn_node(
    registry: Registry,
    *,
    application: str,
    ttn_device: str,
    gateway: str,
    site: str,
    device_id: str | None = None,
    **fields: Unpack[RegisterFields],
) -> str:
    """Register the end device `ttn_device` of `application` (`app@tenant`), bridged by
    `gateway`, as `device_id` (default: its TTN device id); returns the device id."""
    if not re.match(TTN_APPLICATION_PATTERN, application):
        raise ProvisioningError(
            f"application {application!r}: expected <application id>@<tenant id>, e.g. "
            f"my-app@ttn on The Things Network (lower case letters, digits and dashes)"
        )
    if not re.match(TTN_DEVICE_PATTERN, ttn_device):
        raise ProvisioningError(
            f"TTN device id {ttn_device!r}: expected the end device id as the console shows "
            f"it, e.g. eui-70b3d57ed005e1a2 (lower case letters, digits and dashes)"
        )
    device_id = device_id or ttn_device
    check_new_device_id(registry, device_id, "; give this node another id (--id)")
    other = registry.kit_by_ttn(application, ttn_device)
    if other is not None:
        raise ProvisioningError(
            f"TTN device {ttn_device} of {application} is already registered as {other!r}"
        )
    check_kit_gateway(registry, gateway)
    own = {
        "source": TTN,
        "gateway": gateway,
        "ttn_application": application,
        "ttn_device": ttn_device,
    }
    register(registry, device_id, site=site, own=own, **fields)
    return device_id


def new_webhook_token() -> tuple[str, str]:
    """A token for the webhook's `Authorization: Bearer` header, and its hash for the
    application's `webhook_token_hashes`."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def add_webhook_hash(config_path: Path, application: str, digest: str) -> bool:
    """Add `digest` to the `webhook_token_hashes` of `application`'s `[[ttn]]` section in the
    gateway configuration `config_path`, making the section when there is none (True then).
    The file is rewritten (its comments are lost, as `sensorpipe stack up` rewrites it too)."""
    try:
        config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        config = {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProvisioningError(f"{config_path}: cannot read it ({exc})") from None
    sections = config.setdefault("ttn", [])
    if not isinstance(sections, list):
        raise ProvisioningError(f"{config_path}: ttn must be a list of [[ttn]] sections")
    section = next(
        (t for t in sections if isinstance(t, dict) and t.get("application") == application),
        None,
    )
    created = section is None
    if section is None:
        section = {"application": application}
        sections.append(section)
    hashes = section.setdefault("webhook_token_hashes", [])
    hashes.append(digest)
    try:
        TtnApplication.model_validate(section)
    except ValidationError as exc:
        raise ProvisioningError(
            f"{config_path}: the [[ttn]] section of {application} is not valid: {exc}"
        ) from None
    write_private(config_path, tomli_w.dumps(config))
    return created
