"""The ingest workers' shared-subscription group name is a secret devices cannot guess.

Mosquitto grants a device's SUBSCRIBE to the workers' group and refuses it only the messages it
is dealt, which the group then loses (tests/integration/test_device_subscriptions.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sensorpipe.ingest.config import (
    SHARED_GROUP_PATTERN,
    IngestConfig,
    load_ingest_config,
    new_shared_group,
)
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.topics import subscription


def _config(group: str | None) -> IngestConfig:
    broker = {"password": "x"} if group is None else {"password": "x", "shared_group": group}
    return IngestConfig.model_validate({"broker": broker, "registry_path": "r.toml"})


def test_a_new_group_name_is_random_and_valid_in_a_shared_subscription() -> None:
    names = {new_shared_group() for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert len(name) >= 22  # 128 random bits
        assert _config(name).broker.shared_group == name
        # MQTT forbids '/', '+' and '#' in a share name.
        assert not set(name) & set("/+#")
        assert subscription(name) == f"$share/{name}/sensorpipe/v1/+/+"


@pytest.mark.parametrize(
    "group", ["ingest", "workers", "ingest-workers", "", "a/b-0123456789abcdef", "x" * 65]
)
def test_a_guessable_or_malformed_group_name_is_refused(group: str) -> None:
    with pytest.raises(ValueError, match="cannot guess"):
        _config(group)


def test_without_a_group_the_ingest_reads_unshared() -> None:
    assert _config(None).broker.shared_group is None


def test_the_error_names_the_file_and_key_and_offers_a_name(tmp_path: Path) -> None:
    path = tmp_path / "ingest.toml"
    path.write_text('registry_path = "r.toml"\n[broker]\npassword = "x"\nshared_group = "ingest"\n')
    with pytest.raises(ConfigError) as caught:
        load_ingest_config(path)
    message = str(caught.value)
    assert str(path) in message and "broker.shared_group (line 4)" in message
    offered = message.rsplit("e.g. ", 1)[1].strip("'")
    assert re.match(SHARED_GROUP_PATTERN, offered)
