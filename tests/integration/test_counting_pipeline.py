"""Counts travel the same path as air readings, and no image data leaves the counter."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sensorpipe.edge.agent import Agent
from sensorpipe.edge.config import EdgeConfig
from sensorpipe.edge.counting.detector import Detector
from sensorpipe.edge.counting.loop import CountingLoop
from sensorpipe.edge.counting.pipeline import CountingPipeline
from sensorpipe.edge.counting.video import REAL_MODEL, load_spec
from sensorpipe.edge.outbox import SqliteOutbox
from sensorpipe.firmware_sim.camera import SyntheticCamera
from sensorpipe.firmware_sim.count_eval import DEFAULT_MODEL, DIRECTIONS, SHIPPED_CLASS_MAP
from sensorpipe.firmware_sim.scenes import DETECTOR_CLASSES, Scene
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for

IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM6", b"RIFF", b"\x00\x00\x00\x0cjP")


class RecordingCamera(SyntheticCamera):
    """Keeps random 24-byte samples of every frame it serves, to look for them later."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.samples: list[bytes] = []
        self._rng = random.Random(5)

    def frames(self) -> Any:
        for t, image in super().frames():
            raw = np.ascontiguousarray(image).tobytes()
            for _ in range(3):
                start = self._rng.randrange(0, len(raw) - 24)
                self.samples.append(raw[start : start + 24])
            yield t, image


def _observer(stack: LocalStack, received: list[tuple[str, bytes]]) -> mqtt.Client:
    # An account of its own: the broker uses the user name as client id, so borrowing the
    # ingest's account would disconnect the ingest.
    password = stack.add_reader("privacy-observer")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="privacy-observer", protocol=mqtt.MQTTv5
    )
    client.username_pw_set("privacy-observer", password)
    subscribed = threading.Event()
    client.on_message = lambda _c, _u, msg: received.append((msg.topic, bytes(msg.payload)))
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect("127.0.0.1", stack.require_info().broker_port)
    client.subscribe("sensorpipe/v1/#", qos=1)
    client.loop_start()
    assert subscribed.wait(5)
    return client


def _synthetic_detector() -> tuple[Path, list[str], dict[str, str]]:
    return DEFAULT_MODEL, list(DETECTOR_CLASSES), SHIPPED_CLASS_MAP


def _real_detector() -> tuple[Path, list[str], dict[str, str]]:
    spec = load_spec(REAL_MODEL)
    return spec.path, spec.classes, spec.class_map


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "model_spec", [_synthetic_detector, _real_detector], ids=["synthetic", "real"]
)
def test_counts_are_stored_and_no_image_data_leaves_the_counter(
    stack: LocalStack,
    influx: InfluxClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    model_spec: Callable[[], tuple[Path, list[str], dict[str, str]]],
) -> None:
    model, classes, class_map = model_spec()
    caplog.set_level("DEBUG")
    (creds,) = stack.add_devices([("camera-01", {"site": "kruispunt"})])
    received: list[tuple[str, bytes]] = []
    observer = _observer(stack, received)
    workdir = tmp_path / "device"
    workdir.mkdir()
    edge_config = EdgeConfig.model_validate(
        {
            "device_id": "camera-01",
            "private_key": creds.private_key,
            "mqtt": {
                "port": stack.require_info().broker_port,
                "username": creds.username,
                "password": creds.password,
            },
            "outbox_path": str(workdir / "outbox.sqlite"),
            "status_interval_s": 3600,
            "counting": {
                "model": str(model),
                "classes": classes,
                "class_map": class_map,
                "interval_s": 10,
                "threads": 1,
                "source": {"kind": "v4l2"},
            },
        }
    )
    assert edge_config.counting is not None
    # A minute of street as fast as the CPU counts them, in ten-second intervals, dated an
    # hour ago (inside the ingest's backlog window), on a whole minute.
    start = float(int(time.time()) // 60 * 60 - 3600)
    camera = RecordingCamera(Scene(1003, duration_s=60.0), fps=5.0, realtime=False, start=start)
    detector = Detector(model, classes, threads=1)
    pipeline = CountingPipeline(detector, class_map, directions=DIRECTIONS, interval_s=10)
    loop = CountingLoop(pipeline, camera)
    agent = Agent(
        edge_config,
        drivers=[],
        outbox=SqliteOutbox(edge_config.outbox_path),
        counter=loop,
        clock_synced=lambda: True,
    )
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), kwargs={"drain_timeout_s": 20})
    runner.start()
    wait_for(
        lambda: camera.frames_served >= 300 and loop.frames >= 300,
        timeout_s=120,
        what="the whole sequence counted",
    )
    stop.set()
    runner.join(60)
    agent.outbox.close()

    def stored_intervals() -> int:
        series = influx.query("SELECT count(frames) FROM counter WHERE device_id = 'camera-01'")
        return int(series[0]["values"][0][1]) if series else 0

    wait_for(
        lambda: stored_intervals() == agent.stats.kinds["count"],
        timeout_s=30,
        what="every count message stored",
    )
    observer.disconnect()
    observer.loop_stop()

    # Counts went through outbox, MQTT, validation and InfluxDB like any reading.
    assert agent.stats.kinds["count"] == 6  # 60 s in ten-second intervals
    traffic = influx.query(
        "SELECT sum(count) FROM traffic WHERE device_id = 'camera-01' GROUP BY class, direction"
    )
    assert len(traffic) == len(set(class_map.values())) * 2  # zeros stored too
    running = influx.query("SELECT min(running_fraction) FROM counter")[0]["values"][0][1]
    assert running > 0.9

    # Nothing of an image in any payload the broker carried ...
    count_payloads = [p for topic, p in received if topic.endswith("/count")]
    assert len(count_payloads) >= 6
    for topic, payload in received:
        body = json.loads(payload)
        assert body["kind"] in ("count", "status", "air")
        assert len(payload) < 4096, f"{topic}: {len(payload)} bytes"
        assert not any(sample in payload for sample in camera.samples)
    # ... in any file written during the run ...
    written = [Path(root) / name for root, _, names in os.walk(tmp_path) for name in names]
    written += [Path(root) / name for root, _, names in os.walk(stack.directory) for name in names]
    assert written
    for path in written:
        data = path.read_bytes()
        assert not data.startswith(IMAGE_MAGIC), path
        assert not any(sample in data for sample in camera.samples), path
    # ... or in the log.
    log_text = caplog.text.encode()
    assert not any(sample in log_text for sample in camera.samples)
