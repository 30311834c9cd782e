"""Secrets are private from the first byte, and passwords never go on a command line."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sensorpipe.gateway.devices import add_device
from sensorpipe.gateway.mosquitto import hash_password, write_broker_files
from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore
from sensorpipe.protocol.files import write_private
from sensorpipe.protocol.registry import Registry, save_registry


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_registry_broker_files_and_dead_letters_are_private(tmp_path: Path) -> None:
    registry = Registry()
    add_device(registry, "dev-1", site="centrum")
    save_registry(registry, tmp_path / "registry.toml")
    files = write_broker_files(tmp_path / "broker", registry, port=1883)
    store = DeadLetterStore(tmp_path / "ingest" / "deadletter.sqlite")
    store.add_many([DeadLetter(1.0, "t", b"raw", "bad_json", "x")])
    private = [
        tmp_path / "registry.toml",
        files.passwords,
        files.acl,
        tmp_path / "ingest" / "deadletter.sqlite",
        tmp_path / "ingest" / "deadletter.sqlite-wal",
    ]
    for path in private:
        assert path.exists() and _mode(path) == 0o600, (path, oct(_mode(path)))
    store.close()
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file left behind


def test_write_private_never_has_a_readable_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "secret.toml"
    target.write_text("old")
    target.chmod(0o644)
    seen: list[int] = []
    import os

    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        seen.append(stat.S_IMODE(os.stat(src).st_mode))  # the new content before it lands
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_private(target, "new")
    assert seen == [0o600] and target.read_text() == "new" and _mode(target) == 0o600


def test_the_password_never_goes_on_mosquitto_passwds_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []
    real_run = subprocess.run

    def run(args: list[str], **kwargs: Any) -> Any:
        calls.append(list(args))
        return real_run(args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    secret = "Sup3r-secret-passw0rd"
    hashed = hash_password("dev-1", secret)
    assert hashed.startswith("$7$") and secret not in hashed
    assert calls and all(secret not in " ".join(c) for c in calls)


def test_dead_letters_are_capped_in_size_and_count_and_never_evicted(tmp_path: Path) -> None:
    import hashlib

    store = DeadLetterStore(
        tmp_path / "dl.sqlite", max_payload_bytes=1024, max_letters=100, max_age_s=3600
    )
    huge = b"A" * 10_000_000
    store.add_many([DeadLetter(1000.0, "t", huge, "too_large", "10 MB")])
    (letter,) = store.list()
    assert len(letter.payload) == 1024 and letter.payload == huge[:1024]
    assert "of 10000000 bytes" in letter.detail
    assert hashlib.sha256(huge).hexdigest() in letter.detail
    result = store.add_many(
        [DeadLetter(1000.0 + i, "t", b"x%d" % i, "bad_json", "x") for i in range(1, 150)]
    )
    # A full store refuses the newest; it never removes an older letter to make room.
    assert store.count() == 100 and store.pruned == 0 and store.refused == 50
    assert result.refused == list(range(99, 149))
    assert min(d.received_at for d in store.list(limit=1000)) == 1000.0
    # Age pruning, where configured, removes what is older than max_age_s.
    store.add_many([DeadLetter(1000.0 + 7200, "t", b"new", "bad_json", "new")])
    assert [d.detail for d in store.list(limit=1000)] == ["new"]
    assert store.pruned == 100
    store.close()
