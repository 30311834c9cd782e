"""`sensorpipe serve`: the broker's bind rules, its config file and its tokens."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from sensorpipe.api.config import ServeConfig, hash_token, load_serve_config
from tests.helpers import one_line_config_error


def _serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sensorpipe", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _config(tmp_path: Path, text: str = "") -> Path:
    """serve.toml with `text`, beside an (empty) registry.toml that it names by default."""
    (tmp_path / "registry.toml").touch()
    path = tmp_path / "serve.toml"
    path.write_text(text)
    return path


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_a_public_address_needs_tls_or_an_explicit_plaintext_flag(tmp_path: Path) -> None:
    config = _config(tmp_path)
    line = _one_error_line(_serve("--config", str(config), "--host", "0.0.0.0"))
    assert "not loopback" in line and "tls_cert" in line and "allow_plaintext" in line


def test_a_bind_address_that_is_no_address_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    line = _one_error_line(_serve("--config", str(config), "--host", "127.0.0.1 -evil"))
    assert "not an IP address or host name" in line


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = _one_error_line(_serve("--config", str(config), "--port", str(port)))
    assert f"port {port}" in line and "in use" in line


def test_tls_files_must_exist_and_come_in_pairs(tmp_path: Path) -> None:
    missing = _config(tmp_path, 'tls_cert = "nope.crt"\ntls_key = "nope.key"\n')
    assert "no such file" in _one_error_line(_serve("--config", str(missing)))
    (tmp_path / "server.crt").write_text("x")
    half = _config(tmp_path, 'tls_cert = "server.crt"\n')
    assert "together" in _one_error_line(_serve("--config", str(half)))


def test_config_mistakes_name_the_file_and_key(tmp_path: Path) -> None:
    for text, key in (
        ('token_hashes = ["abc"]\n', "token_hashes"),
        ("max_points = 1\n", "max_points"),
        ('tile_url = "tiles"\n', "tile_url"),
        ("prot = 8080\n", "prot"),
        ('[map]\nbasemap = "google"\n', "map.basemap"),
        ('[map]\nbasemap = "custom"\n', "map"),
        ('[map]\nbasemap = "osm"\ntile_url = "https://t.example/{z}/{x}/{y}.png"\n', "map"),
    ):
        config = _config(tmp_path, text)
        assert key in one_line_config_error(load_serve_config, config)
        line = _one_error_line(_serve("--config", str(config)))
        assert str(config) in line and key in line


def test_serve_token_prints_a_token_and_the_hash_that_admits_it(tmp_path: Path) -> None:
    result = _serve("token")
    assert result.returncode == 0
    token = result.stdout.splitlines()[0].rsplit(" ", 1)[1]
    digest = result.stdout.split('token_hashes = ["', 1)[1].split('"', 1)[0]
    assert digest == hash_token(token)
    config = _config(tmp_path, f'token_hashes = ["{digest}"]\n')
    assert load_serve_config(config).token_hashes == [digest]


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    config = _config(tmp_path, 'registry_path = "sub/registry.toml"\n')
    loaded = load_serve_config(config)
    assert Path(loaded.registry_path) == tmp_path / "sub" / "registry.toml"
    assert ServeConfig().host == "127.0.0.1"  # loopback unless told otherwise


def test_a_missing_registry_is_refused_not_served_as_an_empty_register(tmp_path: Path) -> None:
    config = _config(tmp_path, 'registry_path = "nowhere/registry.toml"\n')
    line = _one_error_line(_serve("--config", str(config)))
    assert str(config) in line and "registry_path" in line and "does not exist" in line


def test_the_host_option_is_named_when_it_breaks_the_bind_rule(tmp_path: Path) -> None:
    config = _config(tmp_path)
    line = _one_error_line(_serve("--config", str(config), "--host", "0.0.0.0"))
    assert line.startswith("Error: --host: ")
