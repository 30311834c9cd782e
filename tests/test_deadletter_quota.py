"""Dead letters per device: one device's flood never costs another device a letter."""

from __future__ import annotations

from pathlib import Path

from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore, letter_device
from tests.helpers import run_sql


def _letter(device: str, i: int, size: int = 10, code: str = "bad_signature") -> DeadLetter:
    return DeadLetter(1000.0 + i, f"sensorpipe/v1/{device}/air", b"%d" % i + b"x" * size, code, "d")


def test_a_flood_fills_only_its_own_quota(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite", per_device_letters=100)
    kept = [_letter("good", i, code="undeclared_sensor") for i in range(10)]
    store.add_many(kept)
    result = store.add_many([_letter("flood", i) for i in range(1000)])
    assert len(result.refused) == 900 and store.refused == 900
    assert store.usage("flood").letters == 100
    # The good device's letters are all there, and it can still add more.
    assert len(store.list(device="good", limit=100)) == 10
    assert store.add_many([_letter("good", 10, code="undeclared_sensor")]).refused == []
    assert store.usage("good").letters == 11
    assert len(store.list(code="undeclared_sensor", limit=100)) == 11


def test_bytes_quota_and_the_warning_near_it(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite", per_device_bytes=10_000, warn_fraction=0.8)
    first = store.add_many([_letter("big", i, size=1000) for i in range(7)])
    assert first.near_full == [] and first.refused == []
    second = store.add_many([_letter("big", 7, size=1000)])
    assert second.near_full == ["big"]  # said once, when it passes 80 %
    third = store.add_many([_letter("big", i, size=1000) for i in range(8, 12)])
    assert third.near_full == [] and len(third.refused) >= 2
    assert store.usage("big").bytes <= 10_000


def test_the_same_payload_again_is_counted_not_stored(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.sqlite", per_device_letters=5)
    same = _letter("rep", 1)
    for _ in range(50):
        assert store.add_many([same]).refused == []
    (letter,) = store.list(device="rep")
    assert letter.repeats == 50 and store.usage("rep").letters == 1
    # The same bytes on another device's topic is another letter.
    other = DeadLetter(1.0, "sensorpipe/v1/other/air", same.payload, "bad_signature", "d")
    store.add_many([other])
    assert store.count() == 2


def test_usage_survives_a_reopen_and_purge_frees_it(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    store = DeadLetterStore(path, per_device_letters=3)
    store.add_many([_letter("a", i) for i in range(3)] + [_letter("b", 9)])
    store.close()
    store = DeadLetterStore(path, per_device_letters=3)
    assert store.add_many([_letter("a", 5)]).refused == [0]  # still full after the reopen
    assert store.purge(device="a") == 3
    assert store.usage("a").letters == 0 and store.count() == 1
    assert store.add_many([_letter("a", 5)]).refused == []
    assert store.purge(code="nothing-like-this") == 0


def test_a_store_from_before_quotas_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    run_sql(
        path,
        "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL "
        "NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, code TEXT NOT NULL, "
        "detail TEXT NOT NULL)",
        "INSERT INTO dead_letters (received_at, topic, payload, code, detail) VALUES (?,?,?,?,?)",
        rows=[(1.0, "sensorpipe/v1/old-dev/air", b"p%d" % i, "bad_json", "x") for i in range(4)],
    )
    store = DeadLetterStore(path, per_device_letters=5)
    assert store.usage("old-dev").letters == 4
    # An old letter's payload again is recognised as a repeat.
    store.add_many([DeadLetter(2.0, "sensorpipe/v1/old-dev/air", b"p0", "bad_json", "x")])
    assert store.count() == 4
    assert max(d.repeats for d in store.list(limit=10)) == 2


def test_letters_belong_to_the_device_their_topic_names() -> None:
    assert letter_device("sensorpipe/v1/dev-1/air") == "dev-1"
    assert letter_device("airrohr:12345") == "airrohr:12345"
    assert letter_device("import:track:ride.csv:17") == "import:track:ride.csv"
    assert letter_device("garbage") == ""


def test_deliveries_count_each_repeat_of_a_letter(tmp_path: Path) -> None:
    from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore

    store = DeadLetterStore(tmp_path / "dl.sqlite")
    same = DeadLetter(1.0, "sensorpipe/v1/d1/air", b"{not json", "malformed_json", "x")
    store.add_many([same])
    store.add_many([same])
    store.add_many([DeadLetter(2.0, "sensorpipe/v1/d1/air", b"{}", "schema", "y")])
    assert store.count() == 2  # letters
    assert store.deliveries() == 3  # messages
    assert store.deliveries_by_code() == {"malformed_json": 2, "schema": 1}
    store.close()
