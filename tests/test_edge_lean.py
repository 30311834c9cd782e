"""The edge agent on a small Pi (issue 25): what it imports, how often it writes to the SD card,
and how its outbox drains after an outage. The figures themselves come from `bench.edge`."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest

from sensorpipe.cli import main as cli_main
from sensorpipe.edge import host
from sensorpipe.edge import outbox as outbox_module
from sensorpipe.edge.outbox import MemoryOutbox, SqliteOutbox
from sensorpipe.protocol.codec import canonical_bytes, decode, encode
from sensorpipe.protocol.messages import MESSAGE_ADAPTER
from sensorpipe.protocol.signing import Signer, Verifier, generate_keypair
from tests.helpers import wait_for
from tests.test_cli_edge import _edge_config
from tests.test_publisher import _fill, _publisher

# Never needed by an agent without a camera: numpy/ONNX (counting), the server side.
HEAVY = (
    "numpy",
    "onnxruntime",
    "cv2",
    "fastapi",
    "uvicorn",
    "httpx",
    "rich",
    "sensorpipe.stack.local",
    "sensorpipe.edge.counting.pipeline",
    "sensorpipe.cli.stack",
    "sensorpipe.cli.query",
)


def _loaded_after(code: str, *args: str) -> tuple[list[str], str]:
    """Run `code` in a fresh interpreter; the HEAVY modules it left imported, and its stderr."""
    found = f"','.join(m for m in {HEAVY!r} if m in sys.modules)"
    probe = f"{code}\nimport sys\nprint('loaded:' + {found})"
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("loaded:")]
    return [m for m in line.removeprefix("loaded:").split(",") if m], done.stderr


def test_help_lists_every_group_and_imports_none() -> None:
    code = (
        "from click.testing import CliRunner\n"
        "from sensorpipe.cli.main import COMMANDS, main\n"
        "out = CliRunner().invoke(main, ['--help']).output\n"
        "assert all(f'  {name} ' in out for name in COMMANDS), out\n"
        "assert not [m for m in sys.modules if m.startswith('sensorpipe.cli.') and m not in\n"
        "            ('sensorpipe.cli.main', 'sensorpipe.cli.entry')], sorted(sys.modules)\n"
    )
    loaded, _ = _loaded_after("import sys\n" + code)
    assert loaded == []


def test_each_group_s_short_help_is_its_docstring_s() -> None:
    ctx = click.Context(cli_main.main)
    for name, (_where, short) in cli_main.COMMANDS.items():
        command = cli_main.main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=10_000) == short, name


def _config_that_stops_at_the_outbox(tmp_path: Path) -> Path:
    """An agent's configuration whose outbox cannot be opened (its folder is a file): `edge run`
    stops after it has imported what it runs with and loaded the configuration."""
    config = _edge_config(tmp_path, host="127.0.0.1", port=1)
    (tmp_path / "a-file").write_text("")
    text = config.read_text().replace(
        str(tmp_path / "outbox.sqlite"), str(tmp_path / "a-file" / "outbox.sqlite")
    )
    config.write_text(text)
    return config


def test_the_agent_without_a_camera_imports_no_counting_and_no_server_code(
    tmp_path: Path,
) -> None:
    config = _config_that_stops_at_the_outbox(tmp_path)
    code = (
        "from sensorpipe.cli.entry import main\n"
        "try:\n"
        "    main(['-v', 'edge', 'run', '--config', sys.argv[1]])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 1, exc.code\n"
        "assert not [m for m in sys.modules if m == 'click' or m.startswith('sensorpipe.cli.')\n"
        "            and m != 'sensorpipe.cli.entry'], sorted(sys.modules)\n"
        "assert not [m for m in sys.modules if m in ('sensorpipe.edge.counting.loop',\n"
        "            'sensorpipe.edge.counting.intervals', 'ctypes.util')], sorted(sys.modules)\n"
    )
    loaded, stderr = _loaded_after("import sys\n" + code, str(config))
    # It got as far as opening the outbox, and said why it stopped in one line, as click would.
    (error,) = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert "outbox_path" in error
    assert loaded == []


def test_the_agent_reads_no_package_metadata_and_no_spelling_helper(tmp_path: Path) -> None:
    # sensorpipe.__version__ (parsed from the installed package's metadata) is for the command
    # line and the HTTP services; difflib only suggests a spelling when a configuration has a
    # mistake. Neither has a use in the agent's memory.
    config = _config_that_stops_at_the_outbox(tmp_path)
    code = (
        "import sensorpipe\n"
        "from sensorpipe.cli.entry import main\n"
        "try:\n"
        "    main(['edge', 'run', '--config', sys.argv[1]])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 1, exc.code\n"
        "assert '__version__' not in vars(sensorpipe), sensorpipe.__version__\n"
        "assert 'difflib' not in sys.modules\n"
    )
    loaded, stderr = _loaded_after("import sys\n" + code, str(config))
    assert [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert loaded == []


def test_the_version_is_read_when_asked_for() -> None:
    import sensorpipe
    from sensorpipe import __version__

    assert __version__ == sensorpipe.__version__ != "0+unknown"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sensorpipe.nothing  # noqa: B018


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["edge", "run", "--config", "edge.toml"], (Path("edge.toml"), 0)),
        (["-vv", "edge", "run", "--config=/etc/e.toml"], (Path("/etc/e.toml"), 2)),
        (["-v", "--verbose", "edge", "run", "--config", "e.toml"], (Path("e.toml"), 2)),
        (["edge", "run", "--config"], None),  # click says what is missing
        (["edge", "run", "--config="], None),
        (["edge", "run", "--help"], None),
        (["edge", "run", "--config", "e.toml", "--extra"], None),
        (["edge", "check", "--config", "e.toml"], None),
        (["--version"], None),
        ([], None),
    ],
)
def test_only_a_plain_edge_run_starts_without_click(
    args: list[str], expected: tuple[Path, int] | None
) -> None:
    from sensorpipe.cli.entry import agent_command

    assert agent_command(args) == expected


def test_the_command_without_click_runs_as_the_click_command_does(tmp_path: Path) -> None:
    """The same configuration error, the same line and status, whichever way it starts."""
    config = tmp_path / "edge.toml"
    config.write_text('device_id = "Not A Valid Id"\n')
    lean = subprocess.run(
        [sys.executable, "-m", "sensorpipe", "edge", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    full = subprocess.run(  # an extra -- is not plain: click reads this command line
        [sys.executable, "-m", "sensorpipe", "edge", "run", "--config", str(config), "--"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lean.returncode == full.returncode == 1
    assert lean.stderr == full.stderr
    assert lean.stderr.startswith("Error: ") and str(config) in lean.stderr
    assert "Traceback" not in lean.stderr


# --- the outbox: bookkeeping in batches --------------------------------------------------


def _commits_seen(path: Path) -> sqlite3.Connection:
    """A second connection: its `PRAGMA data_version` changes when another one commits."""
    return sqlite3.connect(path)


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def test_a_reading_costs_one_commit_its_bookkeeping_rides_with_the_next(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = SqliteOutbox(path)
    other = _commits_seen(path)
    first = box.put("t", b"1", seq=1)
    box.put("t", b"2", seq=2)  # queued while the first is on its way
    seen = _version(other)
    box.mark_sent(first)  # PUBACK
    assert box.confirm([1]) == 1  # the ingest's confirmation
    assert _version(other) == seen  # nothing written yet ...
    assert box.depth() == 1 and [e.seq for e in box.pending()] == [2]  # ... it counts at once
    box.put("t", b"3", seq=3)  # the next reading: one commit with both
    assert _version(other) != seen
    assert [r[0] for r in other.execute("SELECT seq FROM outbox")] == [2, 3]
    other.close()
    box.close()


def test_an_outbox_whose_entries_are_all_delivered_is_empty_on_disk_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.sqlite"
    box = SqliteOutbox(path)
    other = _commits_seen(path)
    ids = [box.put("t", b"x", seq=n) for n in (1, 2)]
    box.mark_sent_many(ids)
    assert box.confirm([1]) == 1
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2  # one still waits
    assert box.confirm([2]) == 1
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    other.close()
    box.close()


def test_a_batch_is_written_once_enough_entries_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "FLUSH_ENTRIES", 10)
    path = tmp_path / "o.sqlite"
    box = SqliteOutbox(path)
    ids = [box.put("t", b"x", seq=n) for n in range(1, 21)]
    other = _commits_seen(path)
    box.remove_many(ids[:9])
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 20
    box.remove(ids[9])  # the tenth: written
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 10
    box.remove_many(ids[10:12])
    box.close()  # and what waits at close
    assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 8
    other.close()


def test_a_new_outbox_has_small_pages_an_older_one_keeps_its_own(tmp_path: Path) -> None:
    new = SqliteOutbox(tmp_path / "new.sqlite")
    assert new._db.execute("PRAGMA page_size").fetchone()[0] == outbox_module.PAGE_SIZE == 1024
    new.close()
    old = sqlite3.connect(tmp_path / "old.sqlite")  # an older agent's: SQLite's default
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (x)")
    old.close()
    box = SqliteOutbox(tmp_path / "old.sqlite")
    assert box._db.execute("PRAGMA page_size").fetchone()[0] == 4096
    box.put("t", b"x" * 3000, seq=1)
    assert [len(e.body) for e in box.pending()] == [3000]
    box.close()


_CRASH = """
import os, signal, sys
from sensorpipe.edge.outbox import SqliteOutbox
box = SqliteOutbox(sys.argv[1])
ids = [box.put("t", b"m%d" % n, seq=box.next_seq()) for n in range(1, 6)]
box.remove(ids[0])  # delivered without confirmations (PUBACK)
box.mark_sent(ids[1])
box.confirm([3])  # delivered and confirmed by the ingest
print(box.depth(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # power cut before the batch was written
"""


def test_a_crash_before_the_batch_is_written_sends_again_and_loses_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.sqlite"
    done = subprocess.run(
        [sys.executable, "-c", _CRASH, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL and done.stdout.strip() == "3"
    box = SqliteOutbox(path)
    # What was delivered comes back unsent and goes again (the ingest keeps one copy of
    # each); what was not delivered is all there; numbers are never handed out twice.
    assert [e.seq for e in box.pending()] == [1, 2, 3, 4, 5]
    assert box.next_seq() == 6
    box.close()


def test_a_drained_backlog_writes_its_bookkeeping_at_once_single_messages_do_not() -> None:
    flushes: list[int] = []

    class Box(MemoryOutbox):
        def flush(self) -> None:
            flushes.append(self.depth())

    box = Box()
    _fill(box, 150)  # more than the window (100)
    publisher, client = _publisher(box, confirm=False, max_messages_per_s=10_000)
    try:
        client.connect()
        client.suback()
        while box.depth():
            wait_for(lambda: len(client.sent) > 0, what="entries sent")
            batch = list(client.sent)
            for sent in batch:
                client.puback(sent)
            # Only those acknowledged: the publisher may have sent more meanwhile.
            del client.sent[: len(batch)]
            time.sleep(0.05)
        wait_for(lambda: flushes == [0], what="the bookkeeping written once, at the end")
        box.put("sensorpipe/v1/dev-1/air", b"one more", seq=151)
        publisher.notify()
        wait_for(lambda: len(client.sent) == 1, what="the single message sent")
        client.puback(client.sent[0])
        wait_for(lambda: box.depth() == 0, what="the single message delivered")
        time.sleep(0.6)  # the pump runs again meanwhile
        assert flushes == [0]  # its bookkeeping waits for the next reading
    finally:
        publisher.stop()


# --- less work for each message ------------------------------------------------------------


def test_a_signed_message_is_the_sorted_json_of_its_fields_and_verifies() -> None:
    private, public = generate_keypair()
    draft = {
        "v": 1,
        "kind": "air",
        "device_id": "dev-1",
        "seq": 7,
        "observed_at": "2026-01-01T00:00:00.000+00:00",
        "sent_at": "2026-01-01T00:00:01.000+00:00",
        "clock_synced": True,
        "location": None,
        "readings": [{"quantity": "pm2_5", "value": 1.5, "unit": "µg/m³", "sensor": "sds011"}],
        "link": {"reconnects": 0, "outbox_depth": 1, "uptime_s": 1.0, "firmware": "x"},
    }
    payload = encode(MESSAGE_ADAPTER.validate_python(draft), Signer(private).sign)
    obj = json.loads(payload)
    assert (
        payload
        == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert obj["readings"][0]["unit"] == "ug/m3"
    assert Verifier(public).verify(canonical_bytes(obj), obj["sig"])
    assert decode(payload).seq == 7


def test_the_clock_check_finds_the_c_library_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opened once, from the process's own symbols: no `ctypes.util.find_library`, which runs
    `ldconfig -p` in a subprocess."""
    calls: list[str | None] = []
    real = host.ctypes.CDLL

    def counting(name: str | None, **kwargs: Any) -> object:
        calls.append(name)
        return real(name, **kwargs)

    host._libc.cache_clear()
    monkeypatch.setattr(host.ctypes, "CDLL", counting)
    first = host.clock_synchronised()
    assert [host.clock_synchronised() for _ in range(5)] == [first] * 5
    assert calls == [None]
    assert hasattr(host._libc(), "adjtimex")  # the clock check can ask the kernel
    host._libc.cache_clear()


def test_a_prepared_entry_is_sent_as_the_same_bytes_as_one_validated_when_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The readings are kept encoded (PREPARED_PARTS) and only `sent_at` and `link` are added
    as the entry is sent: the same signed bytes as a message validated and encoded whole,
    and as an entry queued by an agent before this form (a JSON object marked PREPARED)."""
    from sensorpipe.edge import agent as agent_module
    from sensorpipe.edge import entries
    from sensorpipe.edge.publisher import LinkState
    from tests.test_agent import FakeDriver, _agent

    monkeypatch.setattr(agent_module.time, "monotonic", lambda: 1000.0)  # the same uptime_s
    sds = FakeDriver("sds011", [{"pm2_5": 10.04, "pm10": 15.0}])
    agent, box = _agent([sds])
    agent.sample(agent._slots)
    (prepared,) = box.pending()
    assert prepared.body.startswith(entries.PREPARED_PARTS)
    fields = entries.read_body(prepared.body)
    assert fields["readings"][0] == {
        "quantity": "pm2_5",
        "sensor": "sds011",
        "unit": "ug/m3",
        "value": 10.04,
    }
    plain_id = box.put(prepared.topic, json.dumps(fields).encode(), seq=prepared.seq)
    legacy = {**fields, entries.PREPARED: True}
    legacy_id = box.put(prepared.topic, json.dumps(legacy).encode(), seq=prepared.seq)
    pending = {e.id: e for e in box.pending()}
    for state in (
        LinkState(reconnects=2, outbox_depth=2, backlog=True),
        LinkState(reconnects=0, outbox_depth=7, backlog=False),
    ):
        sent = agent._finalize(prepared, state)
        assert sent == agent._finalize(pending[plain_id], state)
        assert sent == agent._finalize(pending[legacy_id], state)
        message = decode(sent)
        assert message.seq == prepared.seq
        assert (message.link.outbox_depth, message.link.backlog) == (
            state.outbox_depth,
            state.backlog,
        )


def test_encoding_from_parts_gives_the_bytes_of_encoding_the_whole_message() -> None:
    """encode_parts against encode_fields, for values JSON escapes or formats specially:
    non-ASCII and control characters, quotes, floats of every form, nesting, empty values."""
    from sensorpipe.protocol.codec import dumps_value, encode_fields, encode_parts

    body: dict[str, Any] = {
        "a_first": 'zuid-oost \u00e9\u20ac "quoted" \\ back\nline\u0000nul',
        "device_id": "d\u00fcsseldorf-1",
        "floats": [0.1, 1e16, 1.5e-7, -0.0, 123456789.125, 2.0],
        "link": {"uptime_s": 1.0, "firmware": "x", "kit": "airrohr"},
        "nested": {"z": [], "a": {}, "m": None, "b": True},
        "seq": 2**53,
        "t": "\u2603",
        "vouched_by": "gw-1",
    }
    sign = lambda data: f"signed {len(data)} {hash(data)}"  # noqa: E731
    parts = {key: dumps_value(value) for key, value in body.items()}
    assert encode_parts(parts, sign) == encode_fields(dict(body), sign)
    assert json.loads(encode_parts(parts, sign))["sig"] == sign(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


def test_a_draft_that_does_not_validate_is_kept_as_it_is_and_refused_when_sent() -> None:
    from sensorpipe.edge.entries import PREPARED, prepare

    draft = {"v": 1, "kind": "air", "device_id": "d1", "seq": 1, "readings": []}
    assert PREPARED not in json.loads(prepare(draft))
    assert json.loads(prepare(draft)) == draft
