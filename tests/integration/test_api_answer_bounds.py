"""The air answer's size counts every value it holds (not the estimate's), and times that
InfluxDB cannot hold once aligned to the interval are refused before it is asked: over a real
influxd, through the HTTP API and `sensorpipe query`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.protocol.quantities import QUANTITIES
from sensorpipe.protocol.registry import Registry, save_registry
from sensorpipe.query.influxql import INFLUX_MIN_TEXT
from tests.helpers import running_influxd
from tests.integration.test_api_bounds import (
    Env,
    imported_counter,
    imported_device,
    minute_ms_ten_minutes_ago,
)

pytestmark = pytest.mark.integration

DB = "answers"
ALL = "all-1"  # an sds011 device with one point of every quantity
SITE_DEVICES = ["pm-a", "pm-b"]  # two sds011 devices at site s2
COUNTER = "cnt-1"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with running_influxd(tmp_path_factory, "answers", DB) as (influxd, root):
        registry = Registry()
        registry.devices[ALL] = imported_device("s1")
        for d in SITE_DEVICES:
            registry.devices[d] = imported_device("s2")
        registry.devices[COUNTER] = imported_counter("s3")
        registry_path = root / "registry.toml"
        save_registry(registry, registry_path)
        now_ms = minute_ms_ten_minutes_ago()
        # One point with a value of every quantity, on a device whose model reports two.
        every_quantity = {q: 1.0 for q in QUANTITIES}
        points = [
            Point("air", {"device_id": ALL, "site": "s1", "sensor": "sds011", "source": "edge"},
                  every_quantity, now_ms)
        ]  # fmt: skip
        for d in SITE_DEVICES:
            tags = {"device_id": d, "site": "s2", "sensor": "sds011", "source": "edge"}
            points.append(Point("air", tags, {"pm2_5": 5.0, "pm10": 9.0}, now_ms))
        writer = influxd.client()
        writer.write([to_line(p) for p in points])
        writer.close()
        yield Env(influxd, registry_path, now_ms, root)


def _problem(answer: httpx.Response) -> str:
    assert answer.status_code == 400, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/problem+json")
    detail: str = answer.json()["detail"]
    return detail


def _values(body: dict[str, Any]) -> int:
    return sum(len(v) for s in body["series"] for v in s["values"].values())


# --- the answer holds at most max_points values, counted in the answer ------------------------
def test_quantities_beyond_the_sensor_models_count_against_max_points(env: Env) -> None:
    """The estimate counts 2 values an interval for an sds011; the device has a point of all
    11 quantities: 400 one-minute intervals x 11 columns with data is 4,400 values."""
    window = {"every": "1m", "from": "-400m"}
    with env.client(max_points=1000) as client:
        answer = client.get("/api/v1/air", params={"device": ALL, **window})
        detail = _problem(answer)
        assert "1,000" in detail and "quantit" in detail, detail
        assert len(answer.content) < 2000
        # What the estimate allows and the answer holds is still answered.
        two = client.get("/api/v1/air", params={"device": ALL, "quantity": ["pm2_5", "pm10"],
                                                **window})  # fmt: skip
        assert two.status_code == 200, two.text[:300]
        assert 0 < _values(two.json()) <= 1000
        # A site's mean (the dashboard's query) of two devices' two quantities: 802 values.
        site = client.get("/api/v1/air", params={"site": "s2", "group": "site", **window})
        assert site.status_code == 200, site.text[:300]
        assert list(site.json()["units"]) == ["pm2_5", "pm10"]
        assert 800 <= _values(site.json()) <= 1000
        # CSV is the same answer.
        csv = client.get("/api/v1/air", params={"device": ALL, "format": "csv", **window})
        _problem(csv)


# --- times InfluxDB cannot hold once aligned to the interval ----------------------------------
ALIGNED_BEFORE_1677 = [
    {"from": "1677-09-21T00:12:44Z", "to": "1677-09-23", "every": "1d"},
    {"from": "1677-09-21T00:12:44Z", "to": "1677-09-21T05:00:00Z", "every": "1h"},
    {"from": "1677-09-21T00:12:44Z", "to": "1677-09-21T01:00:00Z", "every": "1m"},
]


def test_a_from_that_its_interval_starts_before_influxdbs_range_is_a_clear_400(env: Env) -> None:
    with env.client() as client:
        for params in ALIGNED_BEFORE_1677:
            for path in ("/api/v1/air", "/api/v1/counts"):
                detail = _problem(client.get(path, params=params))
                assert INFLUX_MIN_TEXT in detail and "InfluxDB could not" not in detail, detail
                assert "every" in detail, detail
        # An interval that starts inside the range is answered.
        for path in ("/api/v1/air", "/api/v1/counts"):
            inside = client.get(
                path, params={"from": "1677-09-21T01:00:00Z", "to": "1677-09-21T03:00:00Z"}
            )
            assert inside.status_code == 200, inside.text[:300]


@pytest.mark.parametrize("what", ["air", "counts"])
def test_query_refuses_a_from_that_its_interval_starts_before_influxdbs_range(
    env: Env, what: str
) -> None:
    for params in ALIGNED_BEFORE_1677:
        result = CliRunner().invoke(
            main,
            ["query", what, "--influx-url", env.influxd.url, "--database", DB,
             "--from", params["from"], "--to", params["to"], "--every", params["every"]],
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        (line,) = result.output.strip().splitlines()
        assert INFLUX_MIN_TEXT in line and "overflow" not in line, line
    inside = CliRunner().invoke(
        main,
        ["query", what, "--influx-url", env.influxd.url, "--database", DB,
         "--from", "1677-09-21T01:00:00Z", "--to", "1677-09-21T03:00:00Z", "--every", "1h"],
    )  # fmt: skip
    assert inside.exit_code == 0, inside.output
