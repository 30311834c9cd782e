"""What the ingest says about its broker connection, driven through paho's callbacks with a
fake clock: an unreachable or refusing broker at once with the reason and then less often,
reaching it again, and a connection that another client with the same user name keeps taking.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from sensorpipe.ingest.config import IngestConfig
from sensorpipe.ingest.link import SHORT_LINK_S
from sensorpipe.ingest.service import IngestService
from sensorpipe.protocol.brokerlink import NoMqttAnswer
from sensorpipe.protocol.registry import Registry, save_registry

LOGGER = "sensorpipe.ingest.service"


class FakeInflux:
    def write(self, lines: Any, *, precision: str = "ms") -> None:
        pass

    def close(self) -> None:
        pass


class FakeClient:
    """What the service's paho callbacks touch of the client."""

    def __init__(self) -> None:
        self.last_connect_error: OSError | None = None
        self.subscribed: list[str] = []

    def subscribe(self, topic: str, qos: int = 0) -> None:
        self.subscribed.append(topic)


class Link:
    """Plays paho's part: attempts that fail, succeed or end, at times of a fake clock."""

    def __init__(self, tmp_path: Path, **broker: Any) -> None:
        save_registry(Registry(), tmp_path / "registry.toml")
        config = IngestConfig.model_validate(
            {
                "broker": {"password": "x", "port": 1884, **broker},
                "registry_path": str(tmp_path / "registry.toml"),
                "deadletter_path": str(tmp_path / "dl.sqlite"),
            }
        )
        self.now = 1000.0
        self.service = IngestService(
            config,
            influx=FakeInflux(),  # type: ignore[arg-type]
            monotonic=lambda: self.now,
        )
        self.client = FakeClient()

    def fail(self, exc: OSError) -> None:
        self.service._link.on_pre_connect(self.client, None)
        self.client.last_connect_error = exc
        self.service._link.on_connect_fail(self.client, None)

    def refuse(self, code: int) -> None:
        self.service._link.on_pre_connect(self.client, None)
        self.service._link.on_connect(
            self.client,
            None,
            ConnectFlags(False),
            ReasonCode(PacketTypes.CONNACK, identifier=code),
            None,
        )
        self.service._link.on_disconnect(
            self.client, None, DisconnectFlags(False), ReasonCode(PacketTypes.DISCONNECT), None
        )

    def connect(self) -> None:
        self.service._link.on_pre_connect(self.client, None)
        self.service._link.on_connect(
            self.client, None, ConnectFlags(False), ReasonCode(PacketTypes.CONNACK), None
        )

    def close_unanswered(self) -> None:
        self.service._link.on_pre_connect(self.client, None)
        self.drop()

    def drop(self) -> None:
        self.service._link.on_disconnect(
            self.client,
            None,
            DisconnectFlags(False),
            ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"),
            None,
        )


@pytest.fixture
def link(tmp_path: Path) -> Any:
    made: list[Link] = []

    def make(**broker: Any) -> Link:
        made.append(Link(tmp_path / str(len(made)), **broker))
        return made[-1]

    (tmp_path / "0").mkdir()
    (tmp_path / "1").mkdir()
    yield make
    for one in made:
        one.service.close()


def _lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def test_an_unreachable_broker_is_said_at_once_with_its_reason_then_less_often(
    link: Any, caplog: pytest.LogCaptureFixture
) -> None:
    one = link()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        one.fail(ConnectionRefusedError(111, "Connection refused"))
        (first,) = caplog.records
        assert first.levelno == logging.WARNING
        assert first.getMessage() == (
            "cannot connect to the broker at 127.0.0.1:1884: connection refused: nothing "
            "listens on port 1884 (wrong port, the broker down, or a firewall); still trying"
        )
        for _ in range(20):  # paho tries again every few seconds
            one.now += 2.0
            one.fail(ConnectionRefusedError(111, "Connection refused"))
        assert len(caplog.records) == 1  # the same reason is not repeated at every attempt ...
        one.now += 30.0
        one.fail(ConnectionRefusedError(111, "Connection refused"))
        assert len(caplog.records) == 2  # ... but after a while, with how often
        assert "; 21 times in the last 70 s; still trying" in _lines(caplog)[-1]
        one.fail(socket.gaierror(-2, "Name or service not known"))  # a new reason: at once
        assert "the host name '127.0.0.1' does not resolve" in _lines(caplog)[-1]
        one.fail(NoMqttAnswer(10.0))
        assert (
            "no MQTT answer from 127.0.0.1:1884 within 10 s: is it an MQTT broker"
            in (_lines(caplog)[-1])
        )
        one.refuse(0x87)
        assert _lines(caplog)[-1] == (
            "cannot connect to the broker at 127.0.0.1:1884: the broker refused the "
            "connection: Not authorized (check username and password in [broker]); still trying"
        )
        assert len(caplog.records) == 5
        one.now += 5.0
        one.connect()
        assert caplog.records[-2].levelno == logging.WARNING
        assert (
            caplog.records[-2]
            .getMessage()
            .startswith(
                "connected to the broker at 127.0.0.1:1884 (after 25 failed attempts over 75 s)"
            )
        )
        assert _lines(caplog)[-1] == (
            "connected to the broker at 127.0.0.1:1884, subscribed to sensorpipe/v1/+/+ "
            "(session present: False)"
        )
    assert one.service.stats.connect_failures == 25 and one.service.stats.connected


def test_a_connection_closed_before_the_broker_answers_points_to_tls(
    link: Any, caplog: pytest.LogCaptureFixture
) -> None:
    plain, tls = link(), link(tls=True)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        plain.close_unanswered()  # what Mosquitto's TLS port does to a plain-text client
        assert _lines(caplog) == [
            "cannot connect to the broker at 127.0.0.1:1884: the connection was closed before "
            "the broker answered; if port 1884 is the broker's TLS port, set tls = true in "
            "[broker]; still trying"
        ]
        tls.fail(ConnectionResetError(104, "Connection reset by peer"))  # a plain-text port
        assert (
            "the TLS handshake failed (Connection reset by peer): is port 1884 the "
            in (_lines(caplog)[-1])
        )
        tls.fail(ssl.SSLCertVerificationError(1, "certificate verify failed"))
        assert (
            "TLS failed" in _lines(caplog)[-1]
            and "check ca_file in [broker]" in (_lines(caplog)[-1])
        )
    assert plain.service.stats.connect_failures == 1


def test_a_connection_taken_over_again_and_again_names_the_likely_cause_now_and_then(
    link: Any, caplog: pytest.LogCaptureFixture
) -> None:
    one = link()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        one.connect()
        one.now += 3600.0
        for _ in range(120):  # a second ingest under the same user name: each takes over
            one.drop()
            one.now += 1.0
            one.connect()
            one.now += 0.2
        warnings = _lines(caplog, logging.WARNING)
        cause = [w for w in warnings if "another client is connected" in w]
        assert len(cause) == 2  # at the third time, then after a minute; not 118 times
        assert cause[0] == (
            "the broker at 127.0.0.1:1884 keeps ending the ingest's connection right after it "
            "is made: 3 times or more in a row, each within 10 s. Probably another client is "
            "connected with the user name 'ingest': the broker uses the user name as client "
            "id, so each connection ends the other's. Give every ingest worker an account "
            "of its own"
        )
        assert len(warnings) <= 4  # with the first disconnects, as disconnects
        assert len(_lines(caplog)) <= 8  # no INFO line at every reconnect either
        caplog.clear()
        one.now += SHORT_LINK_S  # the other one went away: the connection lasts
        one.service._link.tend()
        assert _lines(caplog, logging.WARNING)[0].startswith(
            "the connection to the broker lasts again"
        )


def test_one_disconnect_after_a_long_connection_is_only_a_disconnect(
    link: Any, caplog: pytest.LogCaptureFixture
) -> None:
    one = link()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        one.connect()
        caplog.clear()
        one.now += 600.0
        one.drop()
        one.now += 1.0
        one.connect()
    assert _lines(caplog, logging.WARNING) == [
        "disconnected from the broker at 127.0.0.1:1884: Unspecified error; reconnecting"
    ]
    assert any(line.startswith("connected to the broker again") for line in _lines(caplog))


def test_a_disconnect_on_stopping_says_nothing(link: Any, caplog: pytest.LogCaptureFixture) -> None:
    one = link()
    one.connect()
    one.service._stop.set()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        caplog.clear()  # the connection's own line, logged when another test left INFO on
        one.drop()
    assert caplog.records == []
    assert not one.service.stats.connected
