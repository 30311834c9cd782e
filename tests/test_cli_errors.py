"""Bad command-line input gets a one-line error naming the option, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--site", "a b"], "--site 'a b': use letters, digits"),
        (["--lat", "999", "--lon", "5"], "--lat 999.0: Input should be less than or equal to 90"),
        (["--lat", "nan", "--lon", "5"], "--lat nan: not a number"),
        (["--lat", "52", "--lon", "inf"], "--lon inf: not a number"),
    ],
)
def test_devices_add_explains_bad_fields(tmp_path: Path, extra: list[str], expected: str) -> None:
    code, output = _run("devices", "add", "dev-1", "--dir", str(tmp_path), *extra)
    assert code == 1 and expected in output
    assert not (tmp_path / "registry.toml").exists()  # nothing half-registered


def test_query_explains_a_bad_time(tmp_path: Path) -> None:
    code, output = _run(
        "query", "--dir", str(tmp_path), "--influx-url", "http://127.0.0.1:9", "--from", "yesterday"
    )
    assert code == 1 and "time 'yesterday'" in output and "ISO 8601" in output


def test_deadletter_refuses_a_file_that_is_not_its_database(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_bytes(b"my notes\n")
    code, output = _run("ingest", "rejects", "--db", str(other))
    assert code == 1 and "not a dead-letter store" in output
    assert other.read_bytes() == b"my notes\n"  # untouched, not turned into a database
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    code, output = _run("ingest", "rejects", "--db", str(empty))
    assert code == 1 and empty.stat().st_size == 0
    code, output = _run("ingest", "rejects", "--db", str(tmp_path))
    assert code == 1 and "no dead-letter store" in output


def _ingest_config(tmp_path: Path, registry: str, deadletter: str) -> Path:
    path = tmp_path / f"ingest-{registry}"
    path.write_text(
        f'registry_path = "{registry}"\ndeadletter_path = "{deadletter}"\n'
        '[broker]\npassword = "x"\n'
    )
    return path


def test_ingest_run_explains_a_bad_start(tmp_path: Path) -> None:
    (tmp_path / "good-registry.toml").write_text("")
    (tmp_path / "bad-registry.toml").write_text("devices = 5\n")
    (tmp_path / "latin1.toml").write_bytes(b'registry_path = "caf\xe9.toml"\n')
    (tmp_path / "a-directory").mkdir()
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")
    cases = [
        (tmp_path / "latin1.toml", "not UTF-8 text"),
        (tmp_path / "a-directory", "is a directory"),
        (
            _ingest_config(tmp_path, "good-registry.toml", f"{blocked}/dl.sqlite"),
            "cannot open the dead-letter store",
        ),
        (_ingest_config(tmp_path, "bad-registry.toml", "dl.sqlite"), "devices (line 1)"),
    ]
    for config, expected in cases:
        code, output = _run("ingest", "run", "--config", str(config))
        assert code == 1 and expected in output, (config, output)
