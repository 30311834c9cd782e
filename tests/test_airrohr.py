"""airrohr posts as sensorpipe messages: the value-type table row by row, the firmware's exact
body, and what cannot be taken (unknown types, bad values, undeclared sensors)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sensorpipe.gateway.kits.airrohr import (
    LINK_TYPES,
    NOT_STORED,
    POSITION_TYPES,
    VALUE_TYPES,
    PostError,
    chip_of_x_sensor,
    message_for,
    parse_post,
    translate,
)
from sensorpipe.protocol.codec import decode, encode
from sensorpipe.protocol.messages import AirMessage, StatusMessage
from sensorpipe.protocol.registry import KNOWN_SENSORS
from tests.airrohr_post import SDS_BME280_VALUES, SOFTWARE_VERSION, firmware_body

ANY_SENSOR = frozenset(KNOWN_SENSORS | {"hpma115", "nextpm", "ips7100", "bmp180", "dnms"})
T = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)

# value_type -> (quantity, sensor, value as sent, value stored, unit), written from the
# firmware's fetchSensor* functions and the sensors' datasheets, not from the table under test.
EXPECTED: dict[str, tuple[str, str, str, float, str]] = {
    "SDS_P1": ("pm10", "sds011", "12.30", 12.3, "ug/m3"),
    "SDS_P2": ("pm2_5", "sds011", "5.60", 5.6, "ug/m3"),
    "PMS_P0": ("pm1", "pms5003", "3.00", 3.0, "ug/m3"),
    "PMS_P1": ("pm10", "pms5003", "9.00", 9.0, "ug/m3"),
    "PMS_P2": ("pm2_5", "pms5003", "6.00", 6.0, "ug/m3"),
    "HPM_P1": ("pm2_5", "hpma115", "7.00", 7.0, "ug/m3"),
    "HPM_P2": ("pm10", "hpma115", "11.00", 11.0, "ug/m3"),
    "NPM_P0": ("pm1", "nextpm", "2.10", 2.1, "ug/m3"),
    "NPM_P1": ("pm10", "nextpm", "8.40", 8.4, "ug/m3"),
    "NPM_P2": ("pm2_5", "nextpm", "4.20", 4.2, "ug/m3"),
    "IPS_P0": ("pm1", "ips7100", "1.50", 1.5, "ug/m3"),
    "IPS_P1": ("pm10", "ips7100", "6.50", 6.5, "ug/m3"),
    "IPS_P2": ("pm2_5", "ips7100", "3.50", 3.5, "ug/m3"),
    "SPS30_P0": ("pm1", "sps30", "4.11", 4.11, "ug/m3"),
    "SPS30_P2": ("pm2_5", "sps30", "4.35", 4.35, "ug/m3"),
    "SPS30_P4": ("pm4", "sps30", "4.36", 4.36, "ug/m3"),
    "SPS30_P1": ("pm10", "sps30", "4.37", 4.37, "ug/m3"),
    "SPS30_N05": ("number_pm0_5", "sps30", "28.30", 28.3, "1/cm3"),
    "SPS30_N1": ("number_pm1", "sps30", "32.61", 32.61, "1/cm3"),
    "SPS30_N25": ("number_pm2_5", "sps30", "32.70", 32.7, "1/cm3"),
    "SPS30_N4": ("number_pm4", "sps30", "32.71", 32.71, "1/cm3"),
    "SPS30_N10": ("number_pm10", "sps30", "32.72", 32.72, "1/cm3"),
    "SPS30_TS": ("particle_size_typical", "sps30", "0.48", 0.48, "um"),
    "BME280_temperature": ("temperature", "bme280", "21.53", 21.53, "degC"),
    "BME280_humidity": ("relative_humidity", "bme280", "54.20", 54.2, "%"),
    "BME280_pressure": ("pressure", "bme280", "101325.45", 1013.2545, "hPa"),
    "BMP280_temperature": ("temperature", "bmp280", "-3.25", -3.25, "degC"),
    "BMP280_pressure": ("pressure", "bmp280", "98710.00", 987.1, "hPa"),
    "BMP_temperature": ("temperature", "bmp180", "18.00", 18.0, "degC"),
    "BMP_pressure": ("pressure", "bmp180", "100000.00", 1000.0, "hPa"),
    "SHT3X_temperature": ("temperature", "sht3x", "20.10", 20.1, "degC"),
    "SHT3X_humidity": ("relative_humidity", "sht3x", "61.00", 61.0, "%"),
    "HTU21D_temperature": ("temperature", "htu21d", "19.90", 19.9, "degC"),
    "HTU21D_humidity": ("relative_humidity", "htu21d", "63.40", 63.4, "%"),
    "temperature": ("temperature", "dht22", "22.00", 22.0, "degC"),
    "humidity": ("relative_humidity", "dht22", "48.00", 48.0, "%"),
    "DS18B20_temperature": ("temperature", "ds18b20", "12.75", 12.75, "degC"),
    "SCD30_temperature": ("temperature", "scd30", "23.40", 23.4, "degC"),
    "SCD30_humidity": ("relative_humidity", "scd30", "40.00", 40.0, "%"),
    "SCD30_co2_ppm": ("co2", "scd30", "612.00", 612.0, "ppm"),
    "DNMS_noise_LAeq": ("noise", "dnms", "48.70", 48.7, "dBA"),
}


def _post(values: list[tuple[str, str]], chip: str = "13107491") -> bytes:
    return firmware_body(chip, values)


def test_the_table_has_a_row_for_every_value_type_and_each_stores_one_field() -> None:
    assert set(EXPECTED) == set(VALUE_TYPES)
    pairs = [(v.sensor, v.quantity) for v in VALUE_TYPES.values()]
    assert len(pairs) == len(set(pairs)) <= 64  # one AirMessage holds them all
    # No name is in two tables.
    tables = [set(VALUE_TYPES), set(LINK_TYPES), set(POSITION_TYPES), set(NOT_STORED)]
    assert sum(len(t) for t in tables) == len(set().union(*tables))


@pytest.mark.parametrize("value_type", sorted(EXPECTED))
def test_each_value_type_becomes_its_reading(value_type: str) -> None:
    quantity, sensor, sent, stored, unit = EXPECTED[value_type]
    t = translate(parse_post(_post([(value_type, sent)])), allowed_sensors=ANY_SENSOR)
    assert t.problems == {}
    (reading,) = t.readings
    assert (reading.quantity, reading.sensor, reading.unit) == (quantity, sensor, unit)
    assert reading.value == pytest.approx(stored, abs=1e-9)


@pytest.mark.parametrize(
    ("value_type", "sent", "field", "value"),
    [
        ("signal", "-67", "rssi_dbm", -67),
        ("samples", "645632", "samples", 645632),
        ("min_micro", "28", "min_micro", 28),
        ("max_micro", "20145", "max_micro", 20145),
        ("interval", "145000", "interval_ms", 145000),
    ],
)
def test_cycle_and_link_values_become_link_metadata(
    value_type: str, sent: str, field: str, value: int
) -> None:
    assert LINK_TYPES[value_type] == field
    t = translate(parse_post(_post([(value_type, sent)])), allowed_sensors=ANY_SENSOR)
    message = message_for("airrohr-1", 7, T, SOFTWARE_VERSION, t)
    link = message.link
    assert link.kit is not None
    got = link.rssi_dbm if field == "rssi_dbm" else getattr(link.kit, field)
    assert got == value
    assert t.problems == {} and t.readings == []


@pytest.mark.parametrize("value_type", sorted(NOT_STORED))
def test_known_value_types_without_a_quantity_are_listed_not_dead_lettered(
    value_type: str,
) -> None:
    t = translate(parse_post(_post([(value_type, "1.00")])), allowed_sensors=ANY_SENSOR)
    assert t.not_stored == [value_type]
    assert t.problems == {} and t.readings == []


def test_gps_values_are_the_position_and_no_fix_is_none() -> None:
    values = [("GPS_lat", "52.090737"), ("GPS_lon", "5.121420"), ("GPS_height", "12.40")]
    t = translate(parse_post(_post([*values, ("SDS_P1", "4.00")])), allowed_sensors=ANY_SENSOR)
    assert t.location is not None
    assert (t.location.lat, t.location.lon, t.location.alt_m) == (52.090737, 5.12142, 12.4)
    no_fix = [("GPS_lat", "-200.000000"), ("GPS_lon", "-200.000000"), ("GPS_height", "-1000.00")]
    t = translate(parse_post(_post(no_fix)), allowed_sensors=ANY_SENSOR)
    assert t.location is None and t.problems == {}


def test_the_firmware_body_becomes_one_signed_air_message() -> None:
    body = firmware_body("13107491", SDS_BME280_VALUES)
    assert body.startswith(b'{"esp8266id": "13107491", "software_version": "NRZ-2024-135", ')
    post = parse_post(body)
    assert post.chip_id == "13107491" and post.software_version == SOFTWARE_VERSION
    t = translate(post, allowed_sensors=KNOWN_SENSORS)
    message = message_for("airrohr-13107491", 1772366400, T, post.software_version, t)
    assert isinstance(message, AirMessage)
    got = {(r.sensor, r.quantity): r.value for r in message.readings}
    assert got == {
        ("sds011", "pm10"): 12.3,
        ("sds011", "pm2_5"): 5.6,
        ("bme280", "temperature"): 21.53,
        ("bme280", "pressure"): 1013.2545,
        ("bme280", "relative_humidity"): 54.2,
    }
    assert message.observed_at == T == message.sent_at and message.clock_synced is False
    assert message.link.firmware == SOFTWARE_VERSION and message.link.rssi_dbm == -67
    assert message.link.kit is not None
    assert message.link.kit.model_dump(exclude_none=True, exclude_defaults=True) == {
        "time_source": "receive",
        "samples": 645632,
        "min_micro": 28,
        "max_micro": 20145,
        "interval_ms": 145000,
    }
    assert decode(encode(message)) == message  # the wire form round-trips


def test_unknown_types_and_bad_values_are_problems_while_the_rest_is_taken() -> None:
    values = [
        ("SDS_P1", "12.30"),
        ("SDS_P2", "nan"),  # what String(NAN) gives
        ("BME280_temperature", "95.00"),  # beyond any working sensor
        ("BME280_humidity", "1_0"),  # Python reads it, the firmware never writes it
        ("SDS_P1", "99.00"),  # twice
        ("XYZ_noise", "3"),
        ("signal", "31"),  # no RSSI
    ]
    t = translate(parse_post(_post(values)), allowed_sensors=KNOWN_SENSORS)
    assert [(r.quantity, r.value) for r in t.readings] == [("pm10", 12.3)]
    assert t.problems["unknown_value_type"] == ["XYZ_noise = '3'"]
    bad = t.problems["bad_value"]
    assert len(bad) == 5
    assert any("SDS_P2 = 'nan': not a number" in b for b in bad)
    assert any("temperature = 95.0 degC is outside the plausible range" in b for b in bad)
    assert any("SDS_P1 sent twice" in b for b in bad)
    assert any("signal = '31'" in b for b in bad)


def test_a_sensor_not_declared_for_the_kit_is_a_problem_not_a_rejected_message() -> None:
    t = translate(
        parse_post(_post([("SDS_P1", "1.00"), ("HPM_P1", "2.00")])),
        allowed_sensors=frozenset({"sds011"}),
    )
    assert [r.sensor for r in t.readings] == ["sds011"]
    (problem,) = t.problems["undeclared_sensor"]
    assert "--sensor hpma115" in problem


def test_a_post_with_no_reading_still_records_the_link_in_a_status_message() -> None:
    t = translate(parse_post(_post([("FOO", "1"), ("signal", "-80")])), allowed_sensors=ANY_SENSOR)
    message = message_for("airrohr-1", 3, T, None, t)
    assert isinstance(message, StatusMessage) and message.sensors == []
    assert message.link.rssi_dbm == -80 and message.link.firmware == "airrohr"


def test_numbers_sent_as_json_numbers_are_taken_too() -> None:
    body = b'{"esp8266id": 42, "sensordatavalues": [{"value_type": "SDS_P1", "value": 3.5}]}'
    post = parse_post(body)
    assert post.chip_id == "42" and post.software_version is None
    assert translate(post, allowed_sensors=ANY_SENSOR).readings[0].value == 3.5


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (b"{not json", "malformed_json", "Expecting property name"),
        (b"\xff\xfe", "malformed_json", ""),
        (b"[1, 2]", "malformed_json", "expected a JSON object, got list"),
        (b'{"esp8266id": "1", "x": NaN}', "malformed_json", "NaN is not a JSON number"),
        (b'{"sensordatavalues": []}', "schema", "esp8266id None"),
        (b'{"esp8266id": "1 2", "sensordatavalues": []}', "schema", "esp8266id '1 2'"),
        (b'{"esp8266id": true, "sensordatavalues": []}', "schema", "esp8266id True"),
        (b'{"esp8266id": "1"}', "schema", "no sensordatavalues list"),
        (b'{"esp8266id": "1", "sensordatavalues": [3]}', "schema", "sensordatavalues[0]"),
        (
            b'{"esp8266id": "1", "sensordatavalues": [{"value_type": "SDS_P1"}]}',
            "schema",
            "sensordatavalues[0]",
        ),
        (
            b'{"esp8266id": "1", "software_version": 5, "sensordatavalues": []}',
            "schema",
            "software_version 5",
        ),
        (b'{"esp8266id": "1", "sensordatavalues": ' + b"[" * 5000 + b"]" * 5000 + b"}", "", ""),
    ],
)
def test_bodies_that_are_no_airrohr_post_are_refused_with_a_reason(
    body: bytes, code: str, text: str
) -> None:
    with pytest.raises(PostError) as raised:
        parse_post(body)
    if code:
        assert raised.value.code == code
        assert text in raised.value.detail


def test_too_many_values_are_refused() -> None:
    with pytest.raises(PostError, match="257 sensordatavalues, at most 256"):
        parse_post(_post([(f"T{i}", "1") for i in range(257)]))


@pytest.mark.parametrize(
    ("header", "chip"),
    [
        ("esp8266-13107491", "13107491"),
        ("esp32-a4cf12f0e1d8", "a4cf12f0e1d8"),
        (" esp8266-1 ", "1"),
        ("esp8266-", None),
        ("raspi-1", None),
        ("esp8266-1-2", None),
    ],
)
def test_the_x_sensor_header_names_the_chip(header: str, chip: str | None) -> None:
    assert chip_of_x_sensor(header) == chip
