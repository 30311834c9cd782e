"""sensorpipe as a user installs it: a wheel in a fresh virtualenv, used from another directory.

The wheel is built from an sdist (as `python -m build` does), so it holds only what the
package declares, never leftovers of the checkout. Nothing here imports the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx

from sensorpipe.edge.counting.clips import VTEST_LINE, fetch_vtest
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SENSORPIPE_DIR")}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_wheel_installs_one_package_and_runs_from_anywhere(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=tmp_path)
    (wheel,) = dist.glob("sensorpipe-*.whl")
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
