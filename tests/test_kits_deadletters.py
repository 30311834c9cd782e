"""Dead letters of kits and imports: every reason of a payload is kept and findable, repeats
count deliveries, and letters carry the registered device they belong to (`ingest rejects
--device <device id>` finds them), while stores written before keep working."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore

POST = b'{"esp8266id": "555001", "sensordatavalues": []}'


def _rejects(db: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["ingest", "rejects", "--db", str(db), "--json", *args])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.output)
    return doc


def test_every_reason_of_one_payload_is_kept_and_repeats_count_deliveries(tmp_path: Path) -> None:
    db = tmp_path / "dl.sqlite"
    store = DeadLetterStore(db, per_device_letters=10)

    def deliver() -> None:
        # What the gateway keeps for one post with two problems: one letter per reason.
        for code in ("bad_value", "unknown_value_type"):
            store.add_many([DeadLetter(1.0, "airrohr:555001", POST, code, f"{code} of it")])

    deliver()
    letters = store.list()
    assert sorted((d.code, d.repeats) for d in letters) == [
        ("bad_value", 1),
        ("unknown_value_type", 1),
    ]
    deliver()  # the same post again: each reason counts a second delivery
    assert sorted((d.code, d.repeats) for d in store.list()) == [
        ("bad_value", 2),
        ("unknown_value_type", 2),
    ]
    store.close()
    found = _rejects(db, "--reason", "unknown_value_type")["letters"]
    assert [(x["code"], x["repeats"]) for x in found] == [("unknown_value_type", 2)]
    text = CliRunner().invoke(main, ["ingest", "rejects", "--db", str(db)]).output
    assert "[bad_value] (x2)" in text and "[unknown_value_type] (x2)" in text


def test_a_letter_rejected_again_for_another_reason_merges_with_that_reasons_letter(
    tmp_path: Path,
) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite")
    store.add_many([DeadLetter(1.0, "sensorpipe/v1/a/air", b"p", "unknown_device", "x")])
    store.add_many([DeadLetter(2.0, "sensorpipe/v1/a/air", b"p", "bad_signature", "y")])
    first, _ = sorted(store.list(), key=lambda d: d.id)
    store.update_reason(first.id, "bad_signature", "y again")
    (merged,) = store.list()
    assert merged.code == "bad_signature" and merged.repeats == 2
    assert store.usage("a").letters == 1
    store.close()


def test_letters_carry_their_registered_device_and_old_ones_stay_findable(
    tmp_path: Path,
) -> None:
    db = tmp_path / "dl.sqlite"
    # A store as sensorpipe wrote it before letters carried a registered device.
    old = DeadLetterStore(db)
    old.add_many([DeadLetter(1.0, "airrohr:555001", b"old", "bad_value", "old letter")])
    old.close()
    con = sqlite3.connect(db)
    columns = {r[1] for r in con.execute("PRAGMA table_info(dead_letters)")}
    if "device_id" in columns:
        con.execute("DROP INDEX IF EXISTS dead_letters_device_id")
        con.execute("ALTER TABLE dead_letters DROP COLUMN device_id")
    con.commit()
    con.close()

    store = DeadLetterStore(db)
    store.add_many(
        [
            DeadLetter(
                2.0, "airrohr:555001", b"new", "bad_value", "new", device_id="airrohr-555001"
            ),
            DeadLetter(
                3.0, "import:sensor_community:a.csv:7", b"row", "bad_row", "r", device_id="sc-1"
            ),
            DeadLetter(4.0, "ttn:app@ttn/node-1", b"up", "schema", "s", device_id="kit-ttn-1"),
        ]
    )
    store.close()
    by_id = _rejects(db, "--device", "airrohr-555001")["letters"]
    assert [x["payload"] for x in by_id] == ["new"]
    assert by_id[0]["device_id"] == "airrohr-555001"
    # The names letters were found by before still find them, old and new.
    by_topic = _rejects(db, "--device", "airrohr:555001")["letters"]
    assert sorted(x["payload"] for x in by_topic) == ["new", "old"]
    assert [x["payload"] for x in _rejects(db, "--device", "sc-1")["letters"]] == ["row"]
    assert [x["payload"] for x in _rejects(db, "--device", "kit-ttn-1")["letters"]] == ["up"]
    purged = CliRunner().invoke(main, ["ingest", "purge", "--db", str(db), "--device", "sc-1"])
    assert purged.exit_code == 0 and "removed 1 dead letters" in purged.output


def test_an_imports_letters_are_found_by_the_device_it_named(tmp_path: Path) -> None:
    from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry
    from tests.test_importer_runner import BAD, DATA, FakeInflux, run

    (tmp_path / "files").mkdir()
    (tmp_path / "files" / BAD).write_bytes((DATA / BAD).read_bytes())
    registry = Registry()
    registry.devices["pi-1"] = DeviceEntry(
        site="south", public_key="k", password_hash="h", sensors=["bme280"]
    )
    save_registry(registry, tmp_path / "registry.toml")
    (result,) = run(tmp_path, FakeInflux(), [BAD], device="pi-1")
    assert sum(result.rejected.values()) > 0
    db = tmp_path / "ingest" / "deadletter.sqlite"
    found = _rejects(db, "--device", "pi-1", "--limit", "100")["letters"]
    assert len(found) == sum(result.rejected.values())
    assert {x["device_id"] for x in found} == {"pi-1"}
    # The file's name for them still finds them too.
    assert len(_rejects(db, "--device", f"import:sensor-community:{BAD}")["letters"]) == len(found)


def test_a_kits_letters_from_before_are_found_by_its_device_id_in_the_stack(
    tmp_path: Path,
) -> None:
    from sensorpipe.gateway.kits.provision import add_airrohr_kit
    from sensorpipe.protocol.registry import GatewayAccount, Registry, save_registry
    from sensorpipe.protocol.signing import generate_keypair

    registry = Registry()
    registry.gateways["gw-1"] = GatewayAccount(public_key=generate_keypair()[1], password_hash="x")
    creds = add_airrohr_kit(registry, chip_id="555001", gateway="gw-1", site="oost")
    save_registry(registry, tmp_path / "registry.toml")
    (tmp_path / "ingest").mkdir()
    store = DeadLetterStore(tmp_path / "ingest" / "deadletter.sqlite")
    # Kept before letters carried their device id: only the topic names the kit.
    store.add_many([DeadLetter(1.0, "airrohr:555001", b"old", "bad_value", "old letter")])
    store.add_many([DeadLetter(1.0, "airrohr:999", b"other", "bad_value", "another kit")])
    store.close()
    result = CliRunner().invoke(
        main, ["ingest", "rejects", "--dir", str(tmp_path), "--json", "--device", creds.device_id]
    )
    assert result.exit_code == 0, result.output
    assert [x["payload"] for x in json.loads(result.output)["letters"]] == ["old"]
