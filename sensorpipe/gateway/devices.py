"""Provisioning: a new device gets broker credentials and a signing key pair.

The registry keeps the password hash and the public key; the device keeps the password and
the private key, which are shown once and stored nowhere by this module.

Every registration, a device's here or a kit's (gateway.kits.provision, ttn_provision),
takes one path: `check_new_device_id`, then the kind's own checks and secrets, then
`register`, which writes the register fields all of them share (`RegisterFields`) with
what is the kind's own (its source, gateway, keys, password hash).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from sensorpipe.gateway.mosquitto import hash_password
from sensorpipe.protocol.messages import Location
from sensorpipe.protocol.registry import DeviceEntry, Registry, ServiceAccount
from sensorpipe.protocol.signing import generate_keypair
from sensorpipe.protocol.topics import is_valid_device_id

if TYPE_CHECKING:
    from typing_extensions import Unpack

# The broker account the ingest reads with. Taken as a device id before the ingest has its
# account, the name would stop the stack from giving it one.
INGEST_USERNAME = "ingest"


class ProvisioningError(ValueError):
    """The device cannot be added as asked (bad id, already registered)."""


class RegisterFields(TypedDict, total=False):
    """What the public register says of any device or kit besides its site, as keyword
    arguments of `register` and of each kind's add function. Left out: empty, and for
    contact, legal basis, retention and licence the network's value."""

    owner: str
    purpose: str
    sensors: list[str] | None
    location: Location | None
    location_precision_decimals: int
    contact: str
    legal_basis: str
    retention: str
    licence: str


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    device_id: str
    username: str
    password: str
    private_key: str
    public_key: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_account_name(name: str, what: str) -> None:
    """ProvisioningError unless `name` can name a broker account (a device's, a gateway's, a
    reader's); `what` is what the name is, for the error ("device id")."""
    if not is_valid_device_id(name):
        raise ProvisioningError(
            f"invalid {what} {name!r}: use lower-case letters a-z, digits, '-' and '_', "
            "starting with a letter or digit, at most 64 (e.g. control-room)"
        )


def check_not_reading_account(registry: Registry, name: str, what: str) -> None:
    """ProvisioningError where `name` is the ingest's or a reader's account (or the name
    the ingest's takes once it has one); `what` is what to choose instead ("device id")."""
    if name == INGEST_USERNAME or name in registry.reader_names():
        raise ProvisioningError(
            f"{name!r} is the name of a reading account (the ingest's or a reader's); "
            f"choose another {what}"
        )


def check_new_device_id(registry: Registry, device_id: str, hint: str = "") -> None:
    """ProvisioningError unless `device_id` is a valid id no device, reading account or
    gateway has; `hint` says how to choose another (e.g. the option that sets it)."""
    check_account_name(device_id, "device id")
    if device_id in registry.devices:
        raise ProvisioningError(f"device {device_id!r} is already registered{hint}")
    check_not_reading_account(registry, device_id, "device id")
    if device_id in registry.gateways:
        raise ProvisioningError(f"{device_id!r} is the name of a gateway; choose another device id")


def check_kit_gateway(registry: Registry, gateway: str) -> None:
    """ProvisioningError unless `gateway`, which is to vouch for a kit, is registered."""
    if gateway not in registry.gateways:
        raise ProvisioningError(
            f"gateway {gateway!r} is not registered: `sensorpipe devices add-gateway {gateway}`"
        )


def register(
    registry: Registry,
    device_id: str,
    *,
    site: str,
    own: dict[str, Any],
    **fields: Unpack[RegisterFields],
) -> None:
    """Write `device_id`'s registry entry: its site, the register `fields`, and `own`, the
    entry fields only its kind sets (source, gateway, keys, password hash). The caller has
    checked the id (`check_new_device_id`) and what its kind asks."""
    entry: dict[str, Any] = {**fields, **own}
    entry["sensors"] = entry.get("sensors") or []
    registry.devices[device_id] = DeviceEntry(site=site, **entry)


def add_device(
    registry: Registry,
    device_id: str,
    *,
    site: str,
    directions: list[str] | None = None,
    count_classes: list[str] | None = None,
    personal_data: bool | None = None,
    max_messages_per_s: float | None = None,
    max_bytes_per_s: int | None = None,
    make_key: bool = True,
    **fields: Unpack[RegisterFields],
) -> DeviceCredentials:
    """Register `device_id` and return its credentials. `make_key` False: no key pair is
    made here; the device makes its own and enrols it (`edge join`, protocol.enrollment), and
    the credentials' keys are empty. The register fields (contact, legal
    basis, retention, licence) left empty are the network's; `personal_data` None is decided
    from its sensors (a camera processes personal data on the device). `max_messages_per_s`,
    `max_bytes_per_s`: its own quota at the ingest instead of the network's default."""
    check_new_device_id(registry, device_id)
    password = secrets.token_urlsafe(24)
    private_key, public_key = generate_keypair() if make_key else ("", "")
    own = {
        "directions": directions or [],
        "public_key": public_key,
        "max_messages_per_s": max_messages_per_s,
        "max_bytes_per_s": max_bytes_per_s,
        "password_hash": hash_password(device_id, password),
        "count_classes": count_classes or [],
        "personal_data": personal_data,
    }
    register(registry, device_id, site=site, own=own, **fields)
    return DeviceCredentials(device_id, device_id, password, private_key, public_key)


def set_ingest_account(registry: Registry, username: str = INGEST_USERNAME) -> str:
    """Create or rotate the ingest's broker account; returns its new password."""
    taken = "a device" if username in registry.devices else None
    if any(r.username == username for r in registry.readers):
        taken = "a reader"
    if taken is not None:
        raise ProvisioningError(
            f"{username!r} is registered as {taken}, but that name is the ingest's account"
        )
    password = secrets.token_urlsafe(24)
    registry.ingest = ServiceAccount(
        username=username, password_hash=hash_password(username, password)
    )
    return password


def add_reader(registry: Registry, username: str) -> str:
    """Create or rotate an account that reads every device's messages; returns its password."""
    check_account_name(username, "account name")
    ingest = INGEST_USERNAME if registry.ingest is None else registry.ingest.username
    if username in registry.devices or username == ingest:
        raise ProvisioningError(f"{username!r} is already a device or the ingest")
    password = secrets.token_urlsafe(24)
    account = ServiceAccount(username=username, password_hash=hash_password(username, password))
    registry.readers = [r for r in registry.readers if r.username != username] + [account]
    return password


def add_alert_subscriber(registry: Registry, username: str, *, rotate: bool = True) -> str:
    """Create or rotate an account that may only read the crowding alerts
    (sensorpipe/alerts/v1/#); returns its password. `rotate` False: one that exists is
    refused instead of given a new password."""
    check_account_name(username, "account name")
    check_not_reading_account(registry, username, "account name")
    if username in registry.devices or username in registry.gateways:
        raise ProvisioningError(
            f"{username!r} is already a device or a gateway: choose another name for the subscriber"
        )
    if not rotate and any(a.username == username for a in registry.alert_subscribers):
        raise ProvisioningError(
            f"alert subscriber {username!r} already exists (--rotate gives it a new password; "
            f"the old one stops working)"
        )
    password = secrets.token_urlsafe(24)
    account = ServiceAccount(username=username, password_hash=hash_password(username, password))
    kept = [a for a in registry.alert_subscribers if a.username != username]
    registry.alert_subscribers = [*kept, account]
    return password


def remove_alert_subscriber(registry: Registry, username: str) -> None:
    """Remove the alert subscriber `username`'s account."""
    kept = [a for a in registry.alert_subscribers if a.username != username]
    if len(kept) == len(registry.alert_subscribers):
        known = ", ".join(a.username for a in registry.alert_subscribers) or "none"
        raise ProvisioningError(f"{username}: no such alert subscriber (subscribers: {known})")
    registry.alert_subscribers = kept
