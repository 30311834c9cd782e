"""Two ingests under one user name on a broker that uses the user name as client id (as the
broker sensorpipe configures does): each connection ends the other's, about once a second.
Each ingest says so, naming the likely cause, instead of only "disconnected: Unspecified error"
at every turn."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sensorpipe.gateway.broker import mosquitto_binary
from sensorpipe.process import free_ports, port_open
from tests.helpers import wait_for
from tests.test_ingest_run import Ingest, fake_influx, write_ingest_config

pytestmark = pytest.mark.integration

CAUSE = "Probably another client is connected with the user name 'ingest'"


def test_a_second_ingest_with_the_same_user_name_is_named_as_the_likely_cause(
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuse_username_as_clientid true\n"
        "persistence false\n"
    )
    broker = subprocess.Popen(
        [mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ingests: list[Ingest] = []
    try:
        wait_for(lambda: port_open(port), timeout_s=30, what="mosquitto to listen")
        with fake_influx() as (url, _writes):
            for name in ("first", "second"):
                (tmp_path / name).mkdir()
                ingests.append(
                    Ingest(write_ingest_config(tmp_path / name, port=port, influx_url=url))
                )
            try:
                wait_for(
                    lambda: all(i.said(CAUSE) for i in ingests),
                    timeout_s=120,
                    what="both ingests to name the other as the likely cause",
                )
            finally:
                for ingest in ingests:
                    ingest.stop()
    finally:
        broker.terminate()
        broker.wait(timeout=30)
    for ingest in ingests:
        (said,) = ingest.said(CAUSE)  # once: the next only after a pause
        assert " WARNING " in said and "keeps ending the ingest's connection right after" in said
        assert len(ingest.said("disconnected from the broker")) <= 2, ingest.lines
