"""Alert subscribers' broker accounts (registry `alert_subscribers`): in the password file, in
the acl_file fallback (read the alerts only; the ingest and readers write them), and names that
are taken are refused. The dynamic-security rights: tests/test_mosquitto_security.py; on a real
Mosquitto: tests/integration/test_crowd_alerts.py."""

from __future__ import annotations

import pytest

from sensorpipe.gateway.devices import (
    ProvisioningError,
    add_alert_subscriber,
    add_device,
    add_reader,
    set_ingest_account,
)
from sensorpipe.gateway.mosquitto import acl_file, password_file
from sensorpipe.protocol.registry import Registry


def _registry() -> Registry:
    r = Registry()
    add_device(r, "dev-a", site="centrum")
    set_ingest_account(r)
    add_reader(r, "auditor")
    add_alert_subscriber(r, "control-room")
    return r


def test_the_acl_file_lets_subscribers_read_and_readers_write_alerts() -> None:
    r = _registry()
    text = acl_file(r)
    assert "user control-room\ntopic read sensorpipe/alerts/v1/#\n" in text
    for reader in ("ingest", "auditor"):
        block = text.split(f"user {reader}\n", 1)[1].split("\n\n", 1)[0]
        assert "topic write sensorpipe/alerts/v1/+" in block.splitlines()
    assert [line.split(":")[0] for line in password_file(r).splitlines()] == [
        "dev-a",
        "ingest",
        "auditor",
        "control-room",
    ]


def test_a_rotated_subscriber_keeps_one_account_and_taken_names_are_refused() -> None:
    r = _registry()
    before = r.alert_subscribers[0].password_hash
    add_alert_subscriber(r, "control-room")
    assert [a.username for a in r.alert_subscribers] == ["control-room"]
    assert r.alert_subscribers[0].password_hash != before
    for taken in ("dev-a", "ingest", "auditor"):
        with pytest.raises(ProvisioningError):
            add_alert_subscriber(r, taken)
    with pytest.raises(ProvisioningError, match="invalid account name"):
        add_alert_subscriber(r, "no/slash")
