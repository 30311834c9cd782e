"""`sensorpipe crowd alerts subscriber add|list|remove` without a running broker (the real
Mosquitto: tests/integration/test_crowd_alert_subscribers.py): the registry keeps the password's
hash and the account's read-only rights, the password is printed once or written to a 0600 file,
an existing subscriber is given a new password only with --rotate (its password file left as it
was otherwise), and a `server setup` directory's line names its TLS listener and CA."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from pathlib import Path

from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.gateway.mosquitto import account_acls
from sensorpipe.protocol.registry import load_registry


def _run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["crowd", "alerts", "subscriber", *args])
    assert result.exit_code == code, result.output
    return result.output


def _is_hash_of(password_hash: str, password: str) -> bool:
    """Whether `password_hash` (Mosquitto's $7$: PBKDF2-SHA512) is `password`'s."""
    _, _, rounds, salt, digest = password_hash.split("$")
    made = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(rounds))
    return base64.b64encode(made).decode() == digest


def test_add_list_rotate_remove(tmp_path: Path) -> None:
    d = str(tmp_path / "st")
    out = _run("add", "control-room", "--dir", d)
    (password,) = [ln.split(":", 1)[1].split()[0] for ln in out.splitlines() if "password" in ln]
    assert "(shown only now)" in out
    assert "may read : sensorpipe/alerts/v1/#" in out
    assert "(mosquitto_sub: Debian's mosquitto-clients package)" in out
    (line,) = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("mosquitto_sub")]
    args = shlex.split(line)
    assert args[args.index("-h") + 1] == "BROKER"  # no broker known here: said on stderr
    assert (args[args.index("-u") + 1], args[args.index("-P") + 1]) == ("control-room", password)
    assert args[args.index("-t") + 1] == "sensorpipe/alerts/v1/#" and "-c" in args
    registry = load_registry(tmp_path / "st" / "registry.toml")
    assert account_acls(registry)["control-room"] == [
        {"acltype": t, "topic": "sensorpipe/alerts/v1/#", "priority": 0, "allow": True}
        for t in ("subscribePattern", "publishClientReceive")
    ]
    before = registry.alert_subscribers[0].password_hash
    assert _is_hash_of(before, password) and not _is_hash_of(before, password + "x")
    assert password not in (tmp_path / "st" / "registry.toml").read_text()
    # Again without --rotate: refused, and a password file given is left as it was.
    secret = tmp_path / "cr.password"
    secret.write_text("kept\n")
    _run("add", "control-room", "--dir", d, "--password-file", str(secret), code=1)
    assert secret.read_text() == "kept\n"
    assert load_registry(tmp_path / "st" / "registry.toml").alert_subscribers[0].password_hash == (
        before
    )
    rotate = ["--rotate", "--password-file", str(secret), "--json"]
    made = json.loads(_run("add", "control-room", "--dir", d, *rotate))
    assert made["password"] is None and made["password_file"] == str(secret)
    assert secret.stat().st_mode & 0o777 == 0o600
    rotated = secret.read_text().strip()
    assert f'-P "$(cat {secret})"' in made["mosquitto_sub"]
    after = load_registry(tmp_path / "st" / "registry.toml").alert_subscribers
    assert [a.username for a in after] == ["control-room"]
    assert _is_hash_of(after[0].password_hash, rotated)
    assert not _is_hash_of(after[0].password_hash, password)
    _run("add", "pager-bridge", "--dir", d)
    assert _run("list", "--dir", d).splitlines() == [
        "control-room  reads sensorpipe/alerts/v1/#",
        "pager-bridge  reads sensorpipe/alerts/v1/#",
    ]
    assert _run("remove", "control-room", "--dir", d).startswith("control-room: removed from")
    listed = json.loads(_run("list", "--dir", d, "--json"))
    assert listed == [{"username": "pager-bridge", "topic": "sensorpipe/alerts/v1/#"}]
    assert "control-room" not in account_acls(load_registry(tmp_path / "st" / "registry.toml"))


def test_a_server_directory_names_its_tls_listener_and_says_how_the_broker_learns(
    tmp_path: Path,
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "server.toml").write_text(
        '[broker]\nhost = "sensors.example.org"\nport = 8883\ntls = true\n'
        'ca_file = "/etc/sensorpipe/tls/ca.crt"\n'
    )
    out = _run("add", "control-room", "--dir", str(etc))
    assert "`sensorpipe server setup` again and `systemctl restart mosquitto`" in out
    (line,) = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("mosquitto_sub")]
    args = shlex.split(line)
    assert args[1:7] == [
        "-h",
        "sensors.example.org",
        "-p",
        "8883",
        "--cafile",
        "/etc/sensorpipe/tls/ca.crt",
    ]
    removed = _run("remove", "control-room", "--dir", str(etc))
    assert "the broker forgets the account when you run `sensorpipe server setup` again" in removed
