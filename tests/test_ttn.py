"""The Things Stack v3 uplinks (tests/data/ttn, in the documented JSON format) to messages:
values, units, link metadata, sequence numbers across sessions, and every dead letter."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sensorpipe.gateway.kits.publish import BrokerUnavailable
from sensorpipe.gateway.kits.ttn_config import FieldMapping, TtnApplication
from sensorpipe.gateway.kits.ttn_receiver import (
    DeadLettersUnavailable,
    KitLetter,
    TtnReceiver,
    flatten,
)
from sensorpipe.gateway.kits.ttn_state import TtnState
from sensorpipe.gateway.kits.ttn_uplink import ApplicationUp
from sensorpipe.protocol.messages import AirMessage
from sensorpipe.protocol.registry import DeviceEntry, GatewayAccount, Registry

DATA = Path(__file__).parent / "data" / "ttn"
APP = "fijnstof-wijk@ttn"
HASH = "sha256:" + "0" * 64


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def edited(name: str, change: Any) -> bytes:
    """A sample uplink with `change(obj)` applied."""
    obj = json.loads(sample(name))
    change(obj)
    return json.dumps(obj).encode()


# The decoded payload fields of an SDS011 + BME280 node, as a [ttn] section maps them.
FIELDS: dict[str, dict[str, Any]] = {
    "pm25": {"quantity": "pm2_5", "sensor": "sds011"},
    "pm10": {"quantity": "pm10", "sensor": "sds011"},
    "temperature": {"quantity": "temperature", "sensor": "bme280"},
    "humidity": {"quantity": "relative_humidity", "sensor": "bme280"},
    "pressure": {"quantity": "pressure", "sensor": "bme280", "scale": 0.01},
}


def application(**overrides: Any) -> TtnApplication:
    settings: dict[str, Any] = {
        "application": APP,
        "webhook_token_hashes": [HASH],
        "fields": FIELDS,
    }
    settings.update(overrides)
    return TtnApplication.model_validate(settings)


def registry() -> Registry:
    def node(device: str, gateway: str = "gw-1") -> DeviceEntry:
        return DeviceEntry(
            site="centrum",
            source="ttn",
            gateway=gateway,
            ttn_application=APP,
            ttn_device=device,
        )

    return Registry(
        gateways={
            "gw-1": GatewayAccount(public_key="k1", password_hash="h1"),
            "gw-2": GatewayAccount(public_key="k2", password_hash="h2"),
        },
        devices={
            "fijnstof-01": node("eui-70b3d57ed005e1a2"),
            "school-02": node("school-dak-02"),
            "elders-03": node("elders-03", gateway="gw-2"),
        },
    )


class FakePublisher:
    gateway_id = "gw-1"

    def __init__(self) -> None:
        self.messages: list[AirMessage] = []
        self.down = False

    def publish(self, message: AirMessage, *, timeout_s: float = 10.0) -> None:
        if self.down:
            raise BrokerUnavailable("broker 127.0.0.1:1: not connected")
        self.messages.append(message)


class Letters:
    def __init__(self) -> None:
        self.kept: list[KitLetter] = []
        self.full = False

    def __call__(self, letters: Sequence[KitLetter]) -> None:
        if self.full:
            raise OSError("database or disk is full")
        self.kept += letters

    def codes(self) -> list[str]:
        return [letter.code for letter in self.kept]


@pytest.fixture
def state(tmp_path: Path) -> TtnState:
    return TtnState(tmp_path / "ttn.sqlite")


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def letters() -> Letters:
    return Letters()


def receiver(
    state: TtnState, publisher: FakePublisher, letters: Letters, app: TtnApplication | None = None
) -> TtnReceiver:
    return TtnReceiver(
        app or application(),
        publisher=publisher,
        registry=registry,
        letters=letters,
        state=state,
        # After every sample's time, within the ingest's window (the gateway checks it).
        clock=lambda: 1_732_622_400.0,
    )


def test_an_uplink_becomes_an_air_message_with_its_values_and_units(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    handled = receiver(state, publisher, letters).handle(
        sample("uplink.json"), topic_device="eui-70b3d57ed005e1a2"
    )
    assert handled.letters == [] and handled.device_id == "fijnstof-01"
    (message,) = publisher.messages
    assert message.device_id == "fijnstof-01"
    values = {(r.sensor, r.quantity): (r.value, r.unit) for r in message.readings}
    assert values == {
        ("sds011", "pm2_5"): (12.3, "ug/m3"),
        ("sds011", "pm10"): (20.1, "ug/m3"),
        ("bme280", "temperature"): (18.45, "degC"),
        ("bme280", "relative_humidity"): (61.5, "%"),
        ("bme280", "pressure"): (pytest.approx(1013.2), "hPa"),  # Pa * 0.01
    }
    # The Network Server's received_at, to the microsecond: the same uplink, the same point.
    assert message.observed_at == datetime(2024, 11, 26, 9, 15, 42, 331628, tzinfo=UTC)
    assert message.clock_synced is True
    assert message.location is None  # a fixed node: its place is the registry's


def test_link_metadata_of_a_single_gateway(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    receiver(state, publisher, letters).handle(sample("uplink.json"))
    link = publisher.messages[0].link
    assert link.rssi_dbm == -87 and link.firmware == "1.2"  # version_ids.firmware_version
    assert link.uptime_s == 0.0 and link.reconnects == 0
    kit = link.kit
    assert kit is not None
    assert kit.model_dump(exclude_none=True) == {
        "time_source": "network",
        "f_cnt": 42,
        "f_port": 1,
        "gateways": 1,
        "gateway_ids": ["ttn-bibliotheek-dak"],
        "snr_db": 9.25,
        "spreading_factor": 7,
        "bandwidth_hz": 125000,
        "frequency_hz": 868500000,  # "868500000" in the JSON: a uint64 is a string
        "airtime_s": 0.061696,  # "0.061696s"
    }
    assert publisher.messages[0].seq == 43  # 1 + f_cnt: the first session starts at 1


def test_several_gateways_antennas_and_packet_broker(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    receiver(state, publisher, letters).handle(sample("uplink_gateways.json"))
    (message,) = publisher.messages
    assert message.device_id == "school-02" and message.seq == 1235
    kit = message.link.kit
    assert kit is not None
    # Four antennas, three gateways, strongest first; Packet Broker's by its forwarder's id.
    assert kit.gateways == 3
    assert kit.gateway_ids == ["ttn-school-roof", "eui-b827ebfffe8b01dd", "kerkplein-gw"]
    assert message.link.rssi_dbm == -97 and kit.snr_db == 4.5
    assert (kit.spreading_factor, kit.bandwidth_hz, kit.frequency_hz) == (9, 125000, 867300000)
    assert kit.airtime_s == 0.205824
    assert message.link.firmware == "lorawan"  # no version_ids
    values = {r.quantity: r.value for r in message.readings}
    assert values == {"pm2_5": 8.7, "pm10": 14.0, "temperature": -2.15, "relative_humidity": 89.0}


def test_a_simulated_uplink_is_kept_aside_saying_what_it_would_store(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    handled = receiver(state, publisher, letters).handle(sample("uplink_simulated.json"))
    assert publisher.messages == []
    (letter,) = letters.kept
    assert letter.code == "simulated"
    assert letter.topic == "ttn:fijnstof-wijk@ttn/eui-70b3d57ed005e1a2"
    assert letter.payload == sample("uplink_simulated.json")  # the exact bytes
    assert "it would store pm2_5=4 ug/m3, pm10=6.1 ug/m3, temperature=22.1 degC" in letter.detail
    # 30 Pa is no air pressure: said too.
    assert "pressure = 30: pressure = 0.3 hPa is outside the plausible range" in letter.detail
    assert handled.codes == ["simulated"]


def test_simulated_uplinks_are_stored_when_the_application_says_so(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    fields = application().fields
    del fields["pressure"]
    app = application(store_simulated=True, fields=fields, ignore_fields=["pressure"])
    receiver(state, publisher, letters, app).handle(sample("uplink_simulated.json"))
    (message,) = publisher.messages
    # The console's gateway "test" reports an RSSI of +42, which no radio link has.
    assert message.link.rssi_dbm is None
    assert message.link.kit is not None and message.link.kit.gateway_ids == ["test"]
    assert message.seq == 1  # no f_cnt in the JSON: frame counter 0
    assert letters.kept == []


def test_an_uplink_without_decoded_payload_is_a_dead_letter(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    receiver(state, publisher, letters).handle(sample("uplink_not_decoded.json"))
    assert publisher.messages == []
    (letter,) = letters.kept
    assert letter.code == "not_decoded"
    assert "f_cnt 0 on f_port 2" in letter.detail and "payload formatter" in letter.detail


def test_what_can_be_stored_is_stored_and_the_rest_kept_with_reasons(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    handled = receiver(state, publisher, letters).handle(sample("uplink_extra_fields.json"))
    (message,) = publisher.messages
    assert {r.quantity for r in message.readings} == {"pm2_5", "pm10", "temperature", "pressure"}
    assert sorted(handled.codes) == ["schema", "unknown_field"]
    by_code = {letter.code: letter.detail for letter in letters.kept}
    assert "battery_v, status" in by_code["unknown_field"]
    assert "ignore_fields" in by_code["unknown_field"]
    assert "humidity = 127.5" in by_code["schema"] and "0.0..100.0" in by_code["schema"]
    assert all(letter.payload == sample("uplink_extra_fields.json") for letter in letters.kept)


def test_ignored_fields_nested_paths_and_null_values(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    app = application(
        fields={
            "sds011.pm25": FieldMapping(quantity="pm2_5", sensor="sds011"),
            "sds011.pm10": FieldMapping(quantity="pm10", sensor="sds011"),
            "climate.t": FieldMapping(quantity="temperature", sensor="sht3x"),
        },
        ignore_fields=["battery", "status"],
    )

    def nested(obj: dict[str, Any]) -> None:
        obj["uplink_message"]["decoded_payload"] = {
            "sds011": {"pm25": 5.5, "pm10": None},
            "climate": {"t": 11},
            "battery": 3.3,
            "status": {"code": 2, "text": "warming up"},
        }

    receiver(state, publisher, letters, app).handle(edited("uplink.json", nested))
    (message,) = publisher.messages
    assert [(r.quantity, r.value, r.sensor) for r in message.readings] == [
        ("pm2_5", 5.5, "sds011"),
        ("temperature", 11.0, "sht3x"),
    ]
    assert letters.kept == []


def test_a_mapped_value_that_is_no_number_is_a_schema_letter(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    def texts(obj: dict[str, Any]) -> None:
        obj["uplink_message"]["decoded_payload"].update({"pm25": "12.3 ug", "pm10": True})

    receiver(state, publisher, letters).handle(edited("uplink.json", texts))
    assert {r.quantity for r in publisher.messages[0].readings} == {
        "temperature",
        "relative_humidity",
        "pressure",
    }
    (letter,) = letters.kept
    assert letter.code == "schema"
    assert "pm25: expected a number, got '12.3 ug'" in letter.detail
    assert "pm10: expected a number, got True" in letter.detail


def test_only_unknown_fields_publish_nothing_and_keep_the_uplink(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    def other(obj: dict[str, Any]) -> None:
        obj["uplink_message"]["decoded_payload"] = {"co2_ppm": 612}

    handled = receiver(state, publisher, letters).handle(edited("uplink.json", other))
    assert publisher.messages == [] and handled.codes == ["unknown_field"]


def test_a_node_that_is_not_registered(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    def stranger(obj: dict[str, Any]) -> None:
        obj["end_device_ids"]["device_id"] = "eui-0000000000000001"

    receiver(state, publisher, letters).handle(edited("uplink.json", stranger))
    (letter,) = letters.kept
    assert letter.code == "unknown_device"
    assert letter.topic == "ttn:fijnstof-wijk@ttn/eui-0000000000000001"
    assert (
        "sensorpipe devices add-kit ttn --application fijnstof-wijk@ttn "
        "--device-id eui-0000000000000001" in letter.detail
    )
    assert publisher.messages == []


def test_a_node_of_another_gateway_is_not_published(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    def elsewhere(obj: dict[str, Any]) -> None:
        obj["end_device_ids"]["device_id"] = "elders-03"

    receiver(state, publisher, letters).handle(edited("uplink.json", elsewhere))
    assert letters.codes() == ["wrong_signer"] and publisher.messages == []
    assert "gateway 'gw-2'" in letters.kept[0].detail


@pytest.mark.parametrize(
    ("raw", "code", "detail"),
    [
        (b"{not json", "malformed_json", ""),
        (b"[1, 2]", "malformed_json", "expected a JSON object"),
        (b"x" * 70_000, "too_large", "70000 bytes"),
        (
            b'{"end_device_ids": {"device_id": "dev1", "application_ids": '
            b'{"application_id": "fijnstof-wijk"}}, "join_accept": {"session_key_id": "AX=="}}',
            "schema",
            "not an uplink message (no uplink_message; has join_accept)",
        ),
    ],
)
def test_what_is_no_uplink(
    state: TtnState,
    publisher: FakePublisher,
    letters: Letters,
    raw: bytes,
    code: str,
    detail: str,
) -> None:
    receiver(state, publisher, letters).handle(raw, topic_device="dev1")
    (letter,) = letters.kept
    assert (letter.code, letter.payload) == (code, raw)
    assert detail in letter.detail
    assert letter.topic.startswith("ttn:fijnstof-wijk@ttn/")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda o: o["uplink_message"].update(f_cnt="42"), "uplink_message.f_cnt"),
        (lambda o: o["uplink_message"]["settings"].update(frequency=868.5), "frequency"),
        (lambda o: o["uplink_message"].update(consumed_airtime="61ms"), "consumed_airtime"),
        (lambda o: o["uplink_message"]["rx_metadata"][0].update(rssi="-87"), "rssi"),
        (lambda o: o["uplink_message"].pop("settings"), "settings"),
        (lambda o: o.pop("end_device_ids"), "end_device_ids"),
    ],
)
def test_fields_sensorpipe_uses_are_checked_strictly(
    state: TtnState, publisher: FakePublisher, letters: Letters, change: Any, where: str
) -> None:
    receiver(state, publisher, letters).handle(edited("uplink.json", change))
    assert letters.codes() == ["schema"] and where in letters.kept[0].detail
    assert publisher.messages == []


def test_fields_it_does_not_know_are_ignored(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    def newer(obj: dict[str, Any]) -> None:
        obj["uplink_message"]["packet_error_rate"] = 0.02
        obj["uplink_message"]["last_battery_percentage"] = {"f_cnt": 40, "value": 91}
        obj["some_future_field"] = {"a": 1}

    receiver(state, publisher, letters).handle(edited("uplink.json", newer))
    assert len(publisher.messages) == 1 and letters.kept == []


def test_body_and_topic_or_application_that_disagree(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    r = receiver(state, publisher, letters)
    r.handle(sample("uplink.json"), topic_device="school-dak-02")

    def other_app(obj: dict[str, Any]) -> None:
        obj["end_device_ids"]["application_ids"]["application_id"] = "someone-else"

    r.handle(edited("uplink.json", other_app))
    assert letters.codes() == ["device_mismatch", "device_mismatch"]
    assert "topic 'school-dak-02'" in letters.kept[0].detail
    assert "'someone-else'" in letters.kept[1].detail
    assert publisher.messages == []


def test_the_same_uplink_again_is_neither_published_nor_kept_twice(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    r = receiver(state, publisher, letters)
    for _ in range(3):
        r.handle(sample("uplink_extra_fields.json"))
    again = r.handle(sample("uplink_extra_fields.json"))
    assert again.duplicate and len(publisher.messages) == 1 and len(letters.kept) == 2
    assert r.stats.as_dict() == {
        "received": 4,
        "published": 1,
        "duplicates": 3,
        "rejected": {"unknown_field": 1, "schema": 1},
        "dropped": {},
    }


def test_a_broker_that_is_away_leaves_the_uplink_to_come_again(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    r = receiver(state, publisher, letters)
    publisher.down = True
    with pytest.raises(BrokerUnavailable):
        r.handle(sample("uplink.json"))
    publisher.down = False
    r.handle(sample("uplink.json"))
    assert [m.seq for m in publisher.messages] == [43]


def test_a_full_dead_letter_store_leaves_the_uplink_to_come_again(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    r = receiver(state, publisher, letters)
    letters.full = True
    with pytest.raises(DeadLettersUnavailable, match="disk is full"):
        r.handle(sample("uplink_simulated.json"))
    letters.full = False
    r.handle(sample("uplink_simulated.json"))
    assert letters.codes() == ["simulated"]


def _uplink(f_cnt: int, at: str, session: str | None) -> bytes:
    def change(obj: dict[str, Any]) -> None:
        up = obj["uplink_message"]
        up["f_cnt"] = f_cnt
        up["received_at"] = at
        if session is None:
            up.pop("session_key_id")
        else:
            up["session_key_id"] = session
        if f_cnt == 0:
            up.pop("f_cnt")  # as The Things Stack sends a zero

    return edited("uplink.json", change)


def test_seq_continues_across_a_rejoin_and_survives_a_restart(
    tmp_path: Path, publisher: FakePublisher, letters: Letters
) -> None:
    path = tmp_path / "ttn.sqlite"
    r = receiver(TtnState(path), publisher, letters)
    r.handle(_uplink(41, "2024-11-26T09:00:00Z", "AAA="))
    r.handle(_uplink(42, "2024-11-26T09:05:00Z", "AAA="))
    r.handle(_uplink(0, "2024-11-26T09:20:00Z", "BBB="))  # joined again: f_cnt from 0
    r.handle(_uplink(2, "2024-11-26T09:30:00Z", "BBB="))  # f_cnt 1 was lost: a gap
    assert [m.seq for m in publisher.messages] == [42, 43, 44, 46]
    # After a restart: an uplink of the first session that comes late keeps its place, and
    # the new sessions go on where the last one was.
    state = TtnState(path)
    r2 = receiver(state, publisher, letters)
    r2.handle(_uplink(40, "2024-11-26T08:55:00Z", "AAA="))
    r2.handle(_uplink(3, "2024-11-26T09:35:00Z", "BBB="))
    r2.handle(_uplink(0, "2024-11-26T10:00:00Z", "CCC="))
    assert [m.seq for m in publisher.messages][4:] == [41, 47, 48]
    # The same uplink, whenever asked, has the same number.
    ms = round(datetime(2024, 11, 26, 9, 5, tzinfo=UTC).timestamp() * 1000)
    seq = state.seq(APP, "eui-70b3d57ed005e1a2", session_key="AAA=", f_cnt=42, received_ms=ms)
    assert seq == 43


def test_an_uplink_handled_before_a_restart_is_not_handled_again(
    tmp_path: Path, publisher: FakePublisher, letters: Letters
) -> None:
    path = tmp_path / "ttn.sqlite"
    receiver(TtnState(path), publisher, letters).handle(sample("uplink_extra_fields.json"))
    again = receiver(TtnState(path), publisher, letters).handle(sample("uplink_extra_fields.json"))
    assert again.duplicate
    assert len(publisher.messages) == 1 and len(letters.kept) == 2


def test_nodes_without_session_key_reset_their_counter(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    r = receiver(state, publisher, letters)
    r.handle(_uplink(7, "2024-11-26T09:00:00Z", None))
    r.handle(_uplink(9, "2024-11-26T09:02:00Z", None))
    r.handle(_uplink(0, "2024-11-26T09:03:00Z", None))  # rebooted: counter reset
    r.handle(_uplink(1, "2024-11-26T09:04:00Z", None))
    # An uplink from before the reset arrives late: its place in the old counting.
    r.handle(_uplink(8, "2024-11-26T09:01:00Z", None))
    assert [m.seq for m in publisher.messages] == [8, 10, 11, 12, 9]


def test_a_moving_node_has_the_position_from_its_payload(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    def gps(obj: dict[str, Any]) -> None:
        up = obj["uplink_message"]
        up["decoded_payload"].update({"latitude": 51.8431, "longitude": 5.8571, "altitude": 14})
        up["locations"]["frm-payload"] = {
            "latitude": 51.8431,
            "longitude": 5.8571,
            "altitude": 14,
            "source": "SOURCE_GPS",
        }

    receiver(state, publisher, letters).handle(edited("uplink.json", gps))
    location = publisher.messages[0].location
    assert location is not None
    assert (location.lat, location.lon, location.alt_m) == (51.8431, 5.8571, 14.0)
    assert letters.kept == []  # latitude, longitude, altitude are the position


def test_a_missing_snr_is_zero_when_the_gateway_reported_signal(
    state: TtnState, publisher: FakePublisher, letters: Letters
) -> None:
    def zero(obj: dict[str, Any]) -> None:
        obj["uplink_message"]["rx_metadata"][0].pop("snr")

    receiver(state, publisher, letters).handle(edited("uplink.json", zero))
    kit = publisher.messages[0].link.kit
    assert kit is not None and kit.snr_db == 0.0


def test_samples_parse_as_documented() -> None:
    for path in sorted(DATA.glob("*.json")):
        up = ApplicationUp.model_validate_json(path.read_bytes())
        assert up.uplink_message is not None, path.name
    up = ApplicationUp.model_validate_json(sample("uplink.json"))
    assert up.end_device_ids.application_ids.application_id == "fijnstof-wijk"
    assert up.uplink_message is not None and up.uplink_message.version_ids is not None


def test_flatten() -> None:
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": None}}, "f": [1, 2], "g": {}}) == {
        "a": 1,
        "b.c": 2,
        "b.d.e": None,
        "f": [1, 2],
        "g": {},
    }


# --- configuration ------------------------------------------------------------------------
def test_the_application_config_knows_its_topic_and_user_name(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("NNSXS.ABCDEF.GHIJKL\n")
    app = application(server="eu1.cloud.thethings.network", api_key_file=key)
    assert app.username == "fijnstof-wijk@ttn"
    assert app.uplink_topic == "v3/fijnstof-wijk@ttn/devices/+/up"
    assert (app.application_id, app.tenant) == ("fijnstof-wijk", "ttn")
    assert app.api_key() == "NNSXS.ABCDEF.GHIJKL"
    assert (app.port, app.tls) == (8883, True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fields": {"x": {"quantity": "pm25", "sensor": "sds011"}}}, "unknown quantity 'pm25'"),
        (
            {
                "fields": {
                    "a": {"quantity": "pm10", "sensor": "sds011"},
                    "b": {"quantity": "pm10", "sensor": "sds011"},
                }
            },
            "'a' and 'b' both map to pm10 of sds011",
        ),
        ({"ignore_fields": ["pm25"]}, "both mapped and ignored: pm25"),
        ({"server": "eu1.cloud.thethings.network"}, "needs api_key_file"),
        ({"webhook_token_hashes": ["abc"]}, "expected 'sha256:'"),
        ({"webhook_token_hashes": []}, "neither an MQTT server nor a webhook token"),
        ({"storage_url": "eu1.cloud.thethings.network"}, "expected the server's address"),
        ({"fields": {"x": {"quantity": "pm10", "sensor": "sds011", "scale": 0}}}, "scale"),
        ({"application": "fijnstof-wijk"}, "application"),
    ],
)
def test_config_mistakes_are_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        application(**overrides)


def test_the_example_gateway_config_has_a_valid_ttn_section() -> None:
    """The commented [[ttn]] section of `sensorpipe config example gateway`, uncommented."""
    import tomllib

    from sensorpipe.resources import example_config

    text = example_config("gateway").read_text()
    block = text[text.index("# [[ttn]]") :]
    lines = [ln.removeprefix("# ") for ln in block.splitlines() if not ln.startswith("# # ")]
    config = tomllib.loads("\n".join(lines))
    (section,) = config["ttn"]
    app = TtnApplication.model_validate(section)
    assert app.server == "eu1.cloud.thethings.network" and app.storage_url is not None
    assert app.fields["pressure"].convert(101320) == pytest.approx(1013.2)
