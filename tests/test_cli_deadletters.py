"""`sensorpipe ingest rejects --device` and `ingest purge`: letters leave only when an operator
says so."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore


def _store(path: Path) -> None:
    store = DeadLetterStore(path)
    store.add_many(
        [
            DeadLetter(1000.0 + i, f"sensorpipe/v1/{d}/air", b"%s-%d" % (d.encode(), i), c, "x")
            for i, (d, c) in enumerate(
                [("flood", "bad_signature")] * 5 + [("good", "undeclared_sensor")] * 2
            )
        ]
        + [DeadLetter(2000.0, "sensorpipe/v1/flood/air", b"flood-0", "bad_signature", "x")]
    )
    store.close()


def test_rejects_by_device_with_repeats(tmp_path: Path) -> None:
    db = tmp_path / "dl.sqlite"
    _store(db)
    result = CliRunner().invoke(main, ["ingest", "rejects", "--db", str(db), "--device", "good"])
    assert result.exit_code == 0, result.output
    assert "letters by device: flood 5" in result.output
    assert result.output.count("sensorpipe/v1/good/air") == 2
    assert "sensorpipe/v1/flood/air" not in result.output
    out = CliRunner().invoke(main, ["ingest", "rejects", "--db", str(db), "--json"])
    doc = json.loads(out.output)
    assert doc["by_device"]["flood"]["letters"] == 5
    assert max(x["repeats"] for x in doc["letters"]) == 2  # flood-0 came twice


def test_purge_removes_only_what_the_operator_chose(tmp_path: Path) -> None:
    db = tmp_path / "dl.sqlite"
    _store(db)
    refused = CliRunner().invoke(main, ["ingest", "purge", "--db", str(db)])
    assert refused.exit_code != 0 and "--all" in refused.output
    assert "Traceback" not in refused.output
    done = CliRunner().invoke(main, ["ingest", "purge", "--db", str(db), "--device", "flood"])
    assert done.exit_code == 0, done.output
    assert "removed 5 dead letters (device flood); 2 left" in done.output
    store = DeadLetterStore(db)
    assert {d.device for d in store.list(limit=10)} == {"good"}
    store.close()
    old = CliRunner().invoke(
        main, ["ingest", "purge", "--db", str(db), "--older-than", "1970-01-02"]
    )
    assert "removed 2 dead letters (older than 1970-01-02); 0 left" in old.output


def test_the_kit_gateway_keeps_a_kits_letters_within_its_quota(tmp_path: Path) -> None:
    from sensorpipe.cli.gateway import _DeadLetters

    store = DeadLetterStore(tmp_path / "dl.sqlite", per_device_letters=3)
    sink = _DeadLetters(store)
    for i in range(10):  # a kit posting junk: beyond its quota nothing is kept, nothing raised
        sink.keep("airrohr:123", b"junk %d" % i, "malformed_json", "x")
    sink.keep("airrohr:456", b"other kit", "malformed_json", "x")
    assert store.usage("airrohr:123").letters == 3
    assert store.usage("airrohr:456").letters == 1
    store.close()
