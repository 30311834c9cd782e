"""sensorpipe as a user installs it: a wheel in a fresh virtualenv, used from another directory.

The wheel is built from an sdist (as `python -m build` does), so it holds only what the
package declares, never leftovers of the checkout. Nothing here imports the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from sensorpipe.edge.counting.clips import VTEST_LINE, fetch_vtest
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.ingest.influxd import Influxd
from sensorpipe.process import free_ports
from tests.helpers import wait_for
from tests.integration.setup_server import SetupServer

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SENSORPIPE_DIR")}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once for this module's tests."""
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=dist)
    (built,) = dist.glob("sensorpipe-*.whl")
    return built


@pytest.mark.timeout(300)  # several minutes on a busy machine (make test's workers)
def test_the_wheel_installs_one_package_and_runs_from_anywhere(tmp_path: Path, wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "sensorpipe",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for shipped in (
        "sensorpipe/models/coco-nanodet-m-416.onnx",
        "sensorpipe/models/coco-nanodet-m-416.json",
        "sensorpipe/models/street-detector.int8.onnx",
        "sensorpipe/models/street-detector.json",
        "sensorpipe/models/MODEL_CARD.md",
        "sensorpipe/config/edge.example.toml",
        "sensorpipe/config/edge-camera.example.toml",
        "sensorpipe/config/ingest.example.toml",
        "sensorpipe/config/registry.example.toml",
        "sensorpipe/config/serve.example.toml",
        "sensorpipe/config/gateway.example.toml",
        "sensorpipe/api/static/index.html",
        "sensorpipe/api/static/vendor/leaflet/leaflet.js",
        "sensorpipe/api/static/vendor/leaflet/LICENSE",
        "sensorpipe/api/static/vendor/uplot/uPlot.iife.min.js",
        "sensorpipe/api/static/vendor/uplot/LICENSE",
    ):
        assert shipped in names, shipped

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", f"{wheel}[camera]"], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = str(env_dir / "bin" / "sensorpipe")

    where = _run([str(python), "-c", "import sensorpipe; print(sensorpipe.__file__)"], elsewhere)
    assert where.stdout.strip().startswith(str(env_dir))
    version = _run([command, "--version"], elsewhere)
    assert version.stdout.strip() == "sensorpipe, version 0.1.0"

    example = _run([command, "config", "example", "edge-camera"], elsewhere).stdout
    (elsewhere / "edge.toml").write_text(example)
    assert "[counting]" in example

    summary = json.loads(
        _run([command, "demo", "--duration", "6", "--devices", "2", "--json"], elsewhere).stdout
    )
    assert summary["published"] > 0 and summary["lost"] == 0
    assert summary["stored"] + summary["rejected"] == summary["published"]

    # The stack it starts serves the API and the dashboard, with its vendored libraries.
    stack_dir = tmp_path / "stack"
    up = _run([command, "stack", "up", "--dir", str(stack_dir), "--json"], elsewhere)
    try:
        url = json.loads(up.stdout)["api"]
        assert "<html" in httpx.get(url, timeout=10).text.lower()
        assert httpx.get(f"{url}static/vendor/leaflet/leaflet.js", timeout=10).status_code == 200
        assert httpx.get(f"{url}api/v1/health", timeout=10).json()["status"] == "ok"
        assert httpx.get(f"{url}openapi.json", timeout=10).json()["paths"]
        # A citizen-science group's kit posts to the stack's kit gateway, and its history
        # file is imported: both land beside the rest, each with its provenance.
        kit = json.loads(
            _run(
                [command, "devices", "add-kit", "airrohr", "--dir", str(stack_dir),
                 "--chip-id", "13107491", "--site", "oost", "--json"],
                elsewhere,
            ).stdout
        )  # fmt: skip
        body = {
            "esp8266id": "13107491",
            "software_version": "NRZ-2024-135",
            "sensordatavalues": [
                {"value_type": "SDS_P1", "value": "12.30"},
                {"value_type": "SDS_P2", "value": "5.10"},
            ],
        }
        posted = httpx.post(
            f"http://{kit['server']}:{kit['port']}{kit['path']}",
            json=body,
            auth=(kit["user"], kit["password"]),
            headers={"X-Sensor": "esp8266-13107491"},
            timeout=30,
        )
        assert posted.status_code == 200, posted.text
        files = tmp_path / "files"
        files.mkdir()
        archive = files / "2024-03-01_sds011_sensor_12345.csv"
        shutil.copy(ROOT / "tests" / "data" / "import" / archive.name, archive)
        imported = json.loads(
            _run(
                [command, "import", "sensor-community", str(archive), "--dir", str(stack_dir),
                 "--json"],
                elsewhere,
            ).stdout
        )  # fmt: skip
        assert (
            imported["stored"] > 0 and imported["rejected"] == imported["rows"] - imported["stored"]
        )

        def kit_pm10() -> list[float | None]:
            answer = httpx.get(
                f"{url}api/v1/air",
                params={"source": "airrohr", "quantity": "pm10", "from": "-1h", "every": "1h"},
                timeout=10,
            ).json()
            return [v for s in answer["series"] for v in s["values"]["pm10"] if v is not None]

        wait_for(lambda: kit_pm10() == [12.3], what="the kit's reading through the ingest")
    finally:
        _run([command, "stack", "down", "--dir", str(stack_dir)], elsewhere)

    clip = fetch_vtest()
    line = ",".join(str(v) for v in VTEST_LINE)
    counted = json.loads(
        _run([command, "count-video", str(clip), "--line", line, "--json"], elsewhere).stdout
    )
    assert counted["model_id"].startswith("coco-nanodet-m-416@")
    # The figures docs/edge.md gives for this clip, counted by the checkout's own tests too.
    assert counted["frames"] == 398
    assert counted["totals"]["pedestrian"] == 32
    assert counted["totals"]["car"] == counted["totals"]["heavy_vehicle"] == 0
    assert list(elsewhere.iterdir()) == [elsewhere / "edge.toml"]  # nothing left behind


@pytest.mark.timeout(300)  # several minutes on a busy machine (make test's workers)
def test_a_pi_joins_a_lasting_server_from_the_installed_wheel(
    tmp_path: Path, wheel: Path, influxd: Influxd
) -> None:
    """Issue 25's acceptance, from the wheel (air only: no extra): the documented server
    commands (`server setup`, `devices add`, `server setup` again, the units), then the Pi's
    (`edge join` with the printed code, `edge check`, `edge run`): the Pi's readings are in
    /api/v1/air over HTTPS. Each bad case gives `edge check` a non-zero exit and one FAIL line
    naming the cause."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)
    command = [str(env_dir / "bin" / "sensorpipe")]

    server = SetupServer(tmp_path / "server", command, "127.0.0.1", influxd.url)
    server.setup()
    sensors = ["--sensor", "sds011", "--sensor", "bme280"]
    added = server.add_device("pi-wheel", "--site", "lab", *sensors)
    assert "private_key" not in added
    server.setup()
    pi = tmp_path / "pi"
    code_file = tmp_path / "code"
    code_file.write_text(added["join_code"])
    config = pi / "etc" / "sensorpipe" / "edge.toml"
    # The Pi's side is the installed package too, with the simulated BME280 and a clock taken
    # as synchronised put in place (tests/integration/pi_agent.py).
    agent = [python, str(ROOT / "tests" / "integration" / "pi_agent.py"), "edge"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def check(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*agent, "check", "--config", str(config)],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
        )

    sim = Sds011Simulator(Sds011Device(read_pm=Street(2).pm_now, bad_frame_rate=0.0))
    run = None
    try:
        server.start(serve=True)
        # It names itself as its certificate does (--public-host), not by the machine's name.
        api_url = f"https://127.0.0.1:{server.ports['api']}/"
        wait_for(lambda: f"dashboard {api_url}" in (server.logs / "s").read_text(), what=api_url)
        joined = subprocess.run(
            [*command, "edge", "join", "--root", str(pi), "--code-file", str(code_file)],
            cwd=elsewhere, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert joined.returncode == 0, joined.stdout + joined.stderr
        with sim:
            edge = tomllib.loads(config.read_text())
            assert [s["driver"] for s in edge["sensors"]] == ["sds011", "bme280"]
            edge["sensors"][0].update(port=sim.port, interval_s=0.5)
            edge["sensors"][1].update(interval_s=1.0)
            config.write_text(tomli_w.dumps(edge))
            good = check()
            assert good.returncode == 0, good.stdout + good.stderr
            assert [line.split()[0] for line in good.stdout.splitlines()] == ["ok"] * 6

            # Each bad case: non-zero, and one FAIL line that names the cause.
            other_ca = tmp_path / "other-ca.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=another CA", "-days",
                 "1", "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca)],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            (closed,) = free_ports(1)  # nothing listens there
            cases: list[tuple[dict[str, Any], dict[str, str] | None, str, str]] = [
                ({"mqtt": {"password": "wrong"}}, None, "broker", "login refused"),
                ({"mqtt": {"ca_file": str(other_ca)}}, None, "broker", "not trusted"),
                ({"mqtt": {"port": closed}}, None, "broker", "connection refused"),
                ({"sds011": "/dev/ttyNONE"}, None, "sds011", "no such port"),
                ({}, {"PI_CLOCK_SYNCED": "0"}, "clock", "not synchronised"),
            ]
            for change, env, name, cause in cases:
                bad = tomllib.loads(config.read_text())
                bad["mqtt"].update(change.get("mqtt", {}))
                if "sds011" in change:
                    bad["sensors"][0]["port"] = change["sds011"]
                case_config = tmp_path / f"bad-{name}.toml"
                case_config.write_text(tomli_w.dumps(bad))
                failed = subprocess.run(
                    [*agent, "check", "--config", str(case_config)],
                    cwd=elsewhere, capture_output=True, text=True, timeout=120,
                    env={**os.environ, **(env or {})},
                )  # fmt: skip
                assert failed.returncode != 0, (name, failed.stdout)
                fails = [line for line in failed.stdout.splitlines() if line.startswith("FAIL")]
                assert len(fails) == 1 and fails[0].split()[1] == name, failed.stdout
                assert cause in fails[0], fails[0]

            run = subprocess.Popen(
                [*agent, "run", "--config", str(config)],
                cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            api = f"https://127.0.0.1:{server.ports['api']}/api/v1/air"
            ca = ssl.create_default_context(cafile=str(server.etc / "tls" / "ca.pem"))

            def pm25() -> list[float]:
                query = {"device": "pi-wheel", "quantity": "pm2_5", "from": "-1h", "every": "1m"}
                answer = httpx.get(api, params=query, verify=ca, timeout=10).json()
                return [v for s in answer["series"] for v in s["values"]["pm2_5"] if v is not None]

            wait_for(lambda: len(pm25()) >= 1, timeout_s=60, what="readings in /api/v1/air")

            # The operator's commands on the lasting server, pointed at /etc/sensorpipe only:
            # the device with its enrolled key and data, its readings, the dead letters.
            etc = str(server.etc)
            listed = _run([*command, "devices", "list", "--dir", etc], elsewhere).stdout
            (line,) = [x for x in listed.splitlines() if x.startswith("pi-wheel ")]
            assert "key=enrolled(" in line and "data=edge" in line, listed
            rows = _run(
                [*command, "query", "air", "--dir", etc, "--device", "pi-wheel", "--from", "-1h"],
                elsewhere,
            ).stdout
            assert "pm2_5" in rows, rows
            _run([*command, "ingest", "rejects", "--dir", etc, "--json"], elsewhere)
    finally:
        if run is not None:
            run.terminate()
            run.wait(timeout=30)
        server.stop()
