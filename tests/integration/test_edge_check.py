"""`sensorpipe edge check` against the real stack: Mosquitto, the ingest and InfluxDB, an SDS011
simulated on a pty and a BME280 on the simulated I2C bus. Green for a registered device; each
broken thing is one FAIL line naming its cause and a non-zero exit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sensorpipe.cli.main import main
from sensorpipe.edge.check import Probes
from sensorpipe.firmware_sim.bme280 import Bme280Device
from sensorpipe.firmware_sim.environment import Street
from sensorpipe.firmware_sim.i2c import SimulatedI2CBus
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator
from sensorpipe.gateway.devices import DeviceCredentials, add_device
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.process import free_ports
from sensorpipe.protocol.registry import Registry
from sensorpipe.protocol.signing import generate_keypair
from sensorpipe.stack.local import LocalStack
from tests.helpers import EDGE_CHECK_ALL_OK
from tests.integration.test_broker_tls import _certificates, tls_broker


@pytest.fixture
def sds011() -> Iterator[Sds011Simulator]:
    with Sds011Simulator(Sds011Device(read_pm=Street(1).pm_now, bad_frame_rate=0.0)) as sim:
        yield sim


def _probes(*, synced: bool = True) -> Probes:
    bus = SimulatedI2CBus(1)
    bus.attach(0x76, Bme280Device(Street(1).climate_now))
    return Probes(clock_synced=lambda: synced, i2c_bus_factory=lambda _n: bus)


def _config(
    tmp_path: Path,
    creds: DeviceCredentials,
    *,
    port: int,
    serial_port: str,
    password: str | None = None,
    ca_file: Path | None = None,
    confirm: bool = True,
) -> Path:
    tls = f'tls = true\nca_file = "{ca_file}"\n' if ca_file is not None else ""
    text = f"""\
device_id = "{creds.device_id}"
private_key = "{creds.private_key}"
outbox_path = "{tmp_path / "outbox.sqlite"}"

[mqtt]
host = "127.0.0.1"
port = {port}
username = "{creds.username}"
password = "{password or creds.password}"
connect_timeout_s = 5
confirm = {str(confirm).lower()}
{tls}
[[sensors]]
driver = "sds011"
port = "{serial_port}"
timeout_s = 1.0

[[sensors]]
driver = "bme280"
bus = 1
address = 0x76
"""
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def _check(config: Path, probes: Probes, *extra: str) -> Result:
    return CliRunner().invoke(main, ["edge", "check", "--config", str(config), *extra], obj=probes)


def _failed(result: Result) -> list[str]:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("FAIL")]


def test_edge_check_is_green_for_a_registered_device_and_its_message_is_stored(
    stack: LocalStack, influx: InfluxClient, tmp_path: Path, sds011: Sds011Simulator
) -> None:
    (creds,) = stack.add_devices([("check-01", {"site": "c"})])
    config = _config(
        tmp_path, creds, port=stack.require_info().broker_port, serial_port=sds011.port
    )
    result = _check(config, _probes())
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[:2] for line in lines] == EDGE_CHECK_ALL_OK
    assert "pm2_5" in lines[0] and "temperature" in lines[1]
    assert "confirmed by the ingest" in lines[5]
    # Confirmed means stored: the check's status message is in InfluxDB ...
    series = influx.query("SELECT seq FROM link WHERE device_id = 'check-01'")
    assert [int(v[1]) for s in series for v in s["values"]] == [1]
    # ... and no longer waits in the outbox; a second check takes the next number.
    again = json.loads(_check(config, _probes(), "--json").output)
    assert again["ok"] is True
    assert (
        "0 messages waiting" in next(c for c in again["checks"] if c["name"] == "outbox")["detail"]
    )
    assert "message 2 " in again["checks"][-1]["detail"]
    # A broker with no ingest behind it (confirm = false): the broker's acknowledgement does.
    port = stack.require_info().broker_port
    unconfirmed = _config(tmp_path, creds, port=port, serial_port=sds011.port, confirm=False)
    result = _check(unconfirmed, _probes())
    assert result.exit_code == 0, result.output
    assert "message 3 accepted by the broker (confirm = false" in result.output


def test_edge_check_names_the_cause_of_each_failure(
    stack: LocalStack, tmp_path: Path, sds011: Sds011Simulator
) -> None:
    (creds,) = stack.add_devices([("check-02", {"site": "c"})])
    port = stack.require_info().broker_port

    wrong_password = _failed(
        _check(
            _config(tmp_path, creds, port=port, serial_port=sds011.port, password="nope"), _probes()
        )
    )
    assert len(wrong_password) == 1 and "broker" in wrong_password[0]
    assert "wrong username or password" in wrong_password[0]

    (closed,) = free_ports(1)
    port_closed = _failed(
        _check(_config(tmp_path, creds, port=closed, serial_port=sds011.port), _probes())
    )
    assert len(port_closed) == 1 and f"127.0.0.1:{closed}" in port_closed[0]
    assert "connection refused" in port_closed[0]

    missing = str(tmp_path / "ttyUSB7")
    sensor_missing = _failed(
        _check(_config(tmp_path, creds, port=port, serial_port=missing), _probes())
    )
    assert len(sensor_missing) == 1 and "sds011" in sensor_missing[0]
    assert f"{missing}: no_port: no such port" in sensor_missing[0]

    unsynced = _failed(
        _check(_config(tmp_path, creds, port=port, serial_port=sds011.port), _probes(synced=False))
    )
    assert len(unsynced) == 1 and "clock" in unsynced[0] and "not synchronised" in unsynced[0]

    # A private key that is not the device's: the ingest confirms the message (kept as a dead
    # letter, so the device drops it) and says it set it aside; the check does not call that
    # delivered.
    other_key, _ = generate_keypair()
    wrong_key = _failed(
        _check(
            _config(
                tmp_path,
                dataclasses.replace(creds, private_key=other_key),
                port=port,
                serial_port=sds011.port,
            ),
            _probes(),
        )
    )
    assert len(wrong_key) == 1 and "delivery" in wrong_key[0], wrong_key
    assert "set it aside instead of storing it: bad_signature" in wrong_key[0]


def test_edge_check_says_when_the_brokers_certificate_is_not_signed_by_the_configured_ca(
    tmp_path: Path, sds011: Sds011Simulator
) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "other").mkdir()
    _ca, cert, key = _certificates(tmp_path / "server")
    wrong_ca, _, _ = _certificates(tmp_path / "other")  # a CA that did not sign the broker's
    registry = Registry()
    dev = add_device(registry, "check-tls", site="c")
    with tls_broker(tmp_path / "broker", registry, cert, key) as port:
        config = _config(tmp_path, dev, port=port, serial_port=sds011.port, ca_file=wrong_ca)
        failed = _failed(_check(config, _probes()))
    assert len(failed) == 1 and "broker" in failed[0]
    assert "TLS: the broker's certificate is not trusted" in failed[0]
    assert str(wrong_ca) in failed[0]
