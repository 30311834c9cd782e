"""The helpers issue 26 made one of where the package had two copies: each case is what both
former copies did (the callers' own tests cover them in place)."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import fields
from pathlib import Path

import pytest
from starlette.requests import Request

from sensorpipe.http_server import bearer_listed, body_up_to, check_token_hashes, token_hash
from sensorpipe.importer.files import ReadProblem
from sensorpipe.importer.jsonstream import _CHUNK, items
from sensorpipe.ingest.stats import IngestStats
from sensorpipe.protocol.configfile import ConfigError, resolve_tls_files
from sensorpipe.protocol.quarantine import PendingLift, Quarantine
from sensorpipe.query.export import STATS_FIELDS
from sensorpipe.query.register import DeviceStats


def _request(headers: dict[str, str], chunks: list[bytes]) -> Request:
    sent = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    sent.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict[str, object]:
        return sent.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


@pytest.mark.parametrize(
    ("headers", "chunks", "expected"),
    [
        ({}, [b"ab", b"cd"], b"abcd"),
        ({"content-length": "4"}, [b"abcd"], b"abcd"),
        ({"content-length": " 5 "}, [], None),  # announced over the limit: not read
        ({}, [b"ab", b"cde"], None),  # sent over the limit without saying so
    ],
)
def test_body_up_to_reads_no_further_than_the_limit(
    headers: dict[str, str], chunks: list[bytes], expected: bytes | None
) -> None:
    assert asyncio.run(body_up_to(_request(headers, chunks), 4)) == expected


def test_bearer_listed_takes_only_a_listed_bearer_token() -> None:
    hashes = [token_hash("other"), token_hash("s3cret")]
    assert bearer_listed(_request({"authorization": "Bearer s3cret"}, []), hashes)
    assert bearer_listed(_request({"authorization": "bearer  s3cret "}, []), hashes)
    assert not bearer_listed(_request({"authorization": "Bearer wrong"}, []), hashes)
    assert not bearer_listed(_request({"authorization": "Basic s3cret"}, []), hashes)
    assert not bearer_listed(_request({}, []), hashes)


def test_check_token_hashes_says_how_to_make_one() -> None:
    good = [token_hash("t")]
    assert check_token_hashes(good, how="x") == good
    with pytest.raises(ValueError, match=r"expected 'sha256:' and 64 hex digits; run this"):
        check_token_hashes(["sha256:abc"], how="run this")


class _Tls:
    def __init__(self, cert: str | None, key: str | None) -> None:
        self.tls_cert = cert
        self.tls_key = key


def test_resolve_tls_files_resolves_against_the_file_and_wants_both(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text("[http]\ntls_cert = 'c.pem'\n")
    (tmp_path / "c.pem").write_text("")
    (tmp_path / "k.pem").write_text("")
    both = _Tls("c.pem", "k.pem")
    resolve_tls_files(config, both, ["http"])
    assert (both.tls_cert, both.tls_key) == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    with pytest.raises(ConfigError, match=r"http\.tls_cert.*together"):
        resolve_tls_files(config, _Tls("c.pem", None), ["http"])
    with pytest.raises(ConfigError, match=r"tls_key.*'gone\.pem': no such file"):
        resolve_tls_files(config, _Tls("c.pem", "gone.pem"))


def test_device_activity_keys_and_times() -> None:
    s = DeviceStats(first_seen_ms=0, uptime={"24h": 0.5}, messages_7d=3)
    assert s.activity() == {
        "first_seen": "1970-01-01T00:00:00Z",
        "last_seen": None,
        "uptime_24h": 0.5,
        "uptime_7d": None,
        "messages_7d": 3,
        "missing_7d": 0,
        "median_latency_ms_7d": None,
        "flagged_7d": {},  # per quality flag, the readings that carried it
    }
    # In the order devices export lists them.
    assert list(s.activity()) == [f for f in STATS_FIELDS if f != "sensors_not_ok"]


def test_quarantine_records_keep_their_keys_in_order() -> None:
    q = Quarantine(device_id="d", since=1.0, reason="manual", detail="x", by="op")
    assert json.dumps(q.as_dict()) == (
        '{"device_id": "d", "since": 1.0, "reason": "manual", "detail": "x", "by": "op"}'
    )
    lift = PendingLift(
        device_id="d", lifted_at=2.0, by="op", reason="manual", attempts=1, last_error="e"
    )
    assert list(lift.as_dict()) == [
        "device_id",
        "lifted_at",
        "by",
        "reason",
        "attempts",
        "last_error",
    ]


@pytest.mark.parametrize("shift", [-1, 0, 1])
def test_json_scanner_reads_on_across_chunks(shift: int) -> None:
    # White space that fills a chunk, then a string whose escape (a backslash and its quote)
    # lies across the second chunk's end, as the reader cuts its input.
    head = " " * (_CHUNK + 7) + '[{"a": 1}, {"n": "'
    name = "x" * (2 * _CHUNK - 1 - len(head) + shift) + '\\"q'
    doc = head + name + '"}' + " " * _CHUNK + "]"
    assert [item for _, item in items(io.StringIO(doc))] == [{"a": 1}, {"n": name[:-3] + '"q'}]


@pytest.mark.parametrize(
    ("doc", "problem"),
    [('[{"a": "open', "ends inside a string"), ('[{"a": [1, 2', "ends inside a value")],
)
def test_json_scanner_says_where_the_document_ends_too_soon(doc: str, problem: str) -> None:
    with pytest.raises(ReadProblem, match=problem):
        list(items(io.StringIO(doc)))


def test_ingest_stats_file_has_every_field_in_order_with_plain_values() -> None:
    stats = IngestStats(received=3)
    stats.rejected_by_code["bad_sig"] += 2
    for i in range(25):
        stats.note_shed(f"d{i:02}", "over_rate", 10)
    stats.note_shed("d07", "over_rate", 10)
    stats.deadletter_near_full |= {"b", "a"}
    out = json.loads(json.dumps(stats.as_dict()))
    assert list(out) == [f.name for f in fields(IngestStats)]
    assert out["received"] == 3 and out["rejected_by_code"] == {"bad_sig": 2}
    assert out["shed_by_reason"] == {"over_rate": 26} and out["shed_bytes"] == 260
    assert len(out["shed_by_device"]) == 20 and next(iter(out["shed_by_device"])) == "d07"
    assert out["deadletter_near_full"] == ["a", "b"]
