"""Registering gateways and airrohr kits.

A gateway gets an Ed25519 key pair and a broker password: the registry keeps the public key
and the Mosquitto hash, the caller writes the private key and the password to private files
for the gateway process. An airrohr kit gets a basic-auth password: the registry keeps its
salted hash, the person setting up the kit types the password into its config page.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensorpipe.gateway.devices import (
    ProvisioningError,
    check_account_name,
    check_kit_gateway,
    check_new_device_id,
    check_not_reading_account,
    register,
)
from sensorpipe.gateway.kits.auth import hash_kit_password, new_kit_password
from sensorpipe.gateway.mosquitto import hash_password
from sensorpipe.protocol.provenance import AIRROHR
from sensorpipe.protocol.registry import GatewayAccount, Registry
from sensorpipe.protocol.signing import generate_keypair

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from sensorpipe.gateway.devices import RegisterFields


@dataclass(frozen=True, slots=True)
class GatewayCredentials:
    gateway_id: str
    password: str
    private_key: str
    public_key: str


@dataclass(frozen=True, slots=True)
class KitCredentials:
    device_id: str
    chip_id: str
    gateway: str
    password: str


def add_gateway(registry: Registry, gateway_id: str, *, rotate: bool = False) -> GatewayCredentials:
    """Register `gateway_id` (or, with `rotate`, give it a new key and password)."""
    check_account_name(gateway_id, "gateway id")
    if gateway_id in registry.devices:
        raise ProvisioningError(f"{gateway_id!r} is registered as a device; choose another id")
    check_not_reading_account(registry, gateway_id, "id")
    if gateway_id in registry.gateways and not rotate:
        raise ProvisioningError(
            f"gateway {gateway_id!r} is already registered (--rotate gives it a new key and "
            f"password; the old ones stop working)"
        )
    password = secrets.token_urlsafe(24)
    private_key, public_key = generate_keypair()
    registry.gateways[gateway_id] = GatewayAccount(
        public_key=public_key, password_hash=hash_password(gateway_id, password)
    )
    return GatewayCredentials(gateway_id, password, private_key, public_key)


def default_kit_id(chip_id: str) -> str:
    return f"airrohr-{chip_id}"


def add_airrohr_kit(
    registry: Registry,
    *,
    chip_id: str,
    gateway: str,
    site: str,
    device_id: str | None = None,
    **fields: Unpack[RegisterFields],
) -> KitCredentials:
    """Register the airrohr kit with chip id `chip_id`, received by `gateway`; returns the
    basic-auth user (its device id) and password to type into the kit."""
    device_id = device_id or default_kit_id(chip_id)
    check_new_device_id(registry, device_id)
    other = registry.kit_by_chip(chip_id)
    if other is not None:
        raise ProvisioningError(f"chip id {chip_id} is already registered as {other!r}")
    check_kit_gateway(registry, gateway)
    password = new_kit_password()
    own = {
        "source": AIRROHR,
        "gateway": gateway,
        "chip_id": chip_id,
        "password_hash": hash_kit_password(password),
    }
    register(registry, device_id, site=site, own=own, **fields)
    return KitCredentials(device_id, chip_id, gateway, password)
