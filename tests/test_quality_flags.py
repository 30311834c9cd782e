"""Quality flags on constructed cases at each threshold (just below, at, above), their state
per series (stuck, spike, warm-up, bounded memory), their configuration, and the fields the
ingest's points and the importer's lines carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sensorpipe.importer.base import ImportContext, ImportOptions, Target, value_column
from sensorpipe.importer.files import inspect
from sensorpipe.importer.lines import series_prefix
from sensorpipe.ingest.config import load_ingest_config
from sensorpipe.ingest.lineprotocol import Point, to_line
from sensorpipe.ingest.points import Receipt, message_points
from sensorpipe.protocol import storage
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.messages import AirMessage, KitLink, Link, Reading
from sensorpipe.quality import flags as F
from sensorpipe.quality.checker import QualityChecker
from sensorpipe.quality.config import QualityConfig, Thresholds, load_quality_config

MIN = 60_000  # one reading a minute, in ms
T0 = 1_700_000_000_000


def one(checker: QualityChecker, value: float, t: int = T0, **kw: object) -> str:
    """The flags of one pm2_5 reading of an sds011 on device d1 ("" for none)."""
    sensor = str(kw.pop("sensor", "sds011"))
    quantity = str(kw.pop("quantity", "pm2_5"))
    out = checker.flag("d1", sensor, t, [(quantity, value)], **kw)  # type: ignore[arg-type]
    return out.get(quantity, "")


# --- stateless: range, humidity, fog, clock, warm-up by uptime ------------------------------


@pytest.mark.parametrize(
    ("sensor", "quantity", "value", "expected"),
    [
        ("sds011", "pm2_5", 999.8, ""),  # SDS011 data sheet: 0.0-999.9 µg/m³
        ("sds011", "pm2_5", 999.9, ""),
        ("sds011", "pm2_5", 1000.0, "range"),
        ("pms5003", "pm2_5", 499.9, ""),  # Plantower: effective range 0-500
        ("pms5003", "pm2_5", 500.0, ""),
        ("pms5003", "pm2_5", 500.1, "range"),
        ("sps30", "pm2_5", 1000.0, ""),  # no model range: the PM default, 1000
        ("sps30", "pm2_5", 1000.1, "range"),
        ("bme280", "temperature", -39.9, ""),  # BME280 operating range from -40 °C
        ("bme280", "temperature", -40.0, ""),
        ("bme280", "temperature", -40.1, "range"),
        ("dht22", "temperature", 80.0, ""),
        ("dht22", "temperature", 80.1, "range"),
    ],
)
def test_range_at_the_data_sheets_limits(
    sensor: str, quantity: str, value: float, expected: str
) -> None:
    assert one(QualityChecker(), value, sensor=sensor, quantity=quantity) == expected


@pytest.mark.parametrize(
    ("rh", "expected"),
    [
        (69.9, ""),
        (70.0, "humidity"),
        (70.1, "humidity"),
        (97.9, "humidity"),
        (98.0, "fog,humidity"),
        (98.1, "fog,humidity"),
        (None, ""),
    ],
)
def test_humidity_and_fog_flag_pm_at_70_and_98_percent(rh: float | None, expected: str) -> None:
    assert one(QualityChecker(), 12.0, humidity=rh) == expected


def test_humidity_does_not_flag_what_is_not_particulate() -> None:
    checker = QualityChecker()
    out = checker.flag(
        "d1", "bme280", T0, [("temperature", 11.0), ("relative_humidity", 99.0)], humidity=99.0
    )
    assert out == {}


def test_thresholds_come_from_the_config() -> None:
    checker = QualityChecker(QualityConfig(humidity_rh=80.0, fog_rh=95.0))
    assert one(checker, 12.0, humidity=79.9) == ""
    assert one(checker, 12.0, humidity=80.0, t=T0 + MIN) == "humidity"
    assert one(checker, 12.0, humidity=95.0, t=T0 + 2 * MIN) == "fog,humidity"


@pytest.mark.parametrize(("synced", "expected"), [(False, "clock"), (True, ""), (None, "")])
def test_clock_flags_a_reading_whose_clock_was_not_synchronised(
    synced: bool | None, expected: str
) -> None:
    assert one(QualityChecker(), 12.0, clock_synced=synced) == expected


@pytest.mark.parametrize(
    ("uptime", "expected"), [(0.0, "warmup"), (119.9, "warmup"), (120.0, ""), (None, "")]
)
def test_warmup_for_the_first_120_s_of_uptime(uptime: float | None, expected: str) -> None:
    assert one(QualityChecker(), 12.0, uptime_s=uptime) == expected


# --- stateful: stuck, spike, warm-up after a gap --------------------------------------------


def run(checker: QualityChecker, values: list[float], **kw: object) -> list[str]:
    return [one(checker, v, t=T0 + i * MIN, **kw) for i, v in enumerate(values)]


def test_stuck_from_the_30th_equal_value_on_and_reset_by_a_change() -> None:
    flags = run(QualityChecker(), [7.3] * 31 + [7.4] + [7.3] * 29)
    assert flags[:29] == [""] * 29  # 29 equal: not yet
    assert flags[29] == "stuck"  # the 30th
    assert flags[30] == "stuck"  # the 31st
    assert flags[31:] == [""] * 30  # a change starts a new run, 30 long only at its end


def test_a_run_at_the_limit_needs_the_longer_run() -> None:
    # 0 µg/m³ in clean air: 360 readings, not 30
    flags = run(QualityChecker(), [0.0] * 361)
    assert flags[358] == "" and flags[359] == "stuck" and flags[360] == "stuck"
    assert "stuck" not in flags[:359]


def test_a_saturated_humidity_sensor_is_judged_by_a_day() -> None:
    checker = QualityChecker()
    rh = [
        one(checker, 99.9, t=T0 + i * MIN, sensor="bme280", quantity="relative_humidity")
        for i in range(1441)
    ]
    assert rh[1438] == "" and rh[1439] == "stuck" and rh[1440] == "stuck"
    below = run(QualityChecker(), [97.9] * 30, sensor="bme280", quantity="relative_humidity")
    assert below[29] == "stuck"  # 97.9 is not at the limit (band 2 below 100)


def test_stuck_length_per_sensor_model_overrides_the_quantity() -> None:
    config = QualityConfig(
        quantities={"pm2_5": Thresholds(stuck_readings=5)},
        sensors={"sds011": {"pm2_5": Thresholds(stuck_readings=3)}},
    )
    assert run(QualityChecker(config), [4.0] * 3) == ["", "", "stuck"]
    assert run(QualityChecker(config), [4.0] * 5, sensor="sps30")[3:] == ["", "stuck"]
    off = QualityConfig(quantities={"pm2_5": Thresholds(stuck_readings=0)})
    assert "stuck" not in run(QualityChecker(off), [4.0] * 100)


@pytest.mark.parametrize(
    ("level", "value", "expected"),
    [
        (5.0, 105.0, ""),  # 21x the level, but a step of exactly 100
        (5.0, 105.1, "spike"),  # and of more than 100
        (20.0, 200.0, ""),  # a step of 180, but exactly 10x the level
        (20.0, 200.1, "spike"),
        (20.0, 150.0, ""),  # 7.5x
    ],
)
def test_spike_is_10x_the_recent_level_and_a_step_of_100(
    level: float, value: float, expected: str
) -> None:
    checker = QualityChecker()
    assert run(checker, [level, level + 0.1, level]) == ["", "", ""]
    assert one(checker, value, t=T0 + 3 * MIN) == expected


def test_spike_needs_a_recent_level_and_one_spike_does_not_move_it() -> None:
    checker = QualityChecker()
    assert run(checker, [3.0, 300.0]) == ["", ""]  # two readings: no level yet
    checker = QualityChecker()
    flags = run(checker, [3.0, 3.1, 3.0, 300.0, 3.2, 310.0])
    assert flags == ["", "", "", "spike", "", "spike"]  # the median ignores the first spike
    # a lasting rise becomes the level once it is most of the last five readings
    flags = run(QualityChecker(), [3.0, 3.1, 3.0, 300.0, 305.0, 310.0, 301.0])
    assert flags[3:] == ["spike", "spike", "spike", ""]


def test_spike_is_off_for_weather() -> None:
    flags = run(QualityChecker(), [1.0, 1.0, 1.1, 40.0], sensor="bme280", quantity="temperature")
    assert flags == ["", "", "", ""]


def test_warmup_after_a_gap_of_more_than_30_minutes() -> None:
    gap = 1800 * 1000
    checker = QualityChecker()
    assert one(checker, 5.0, t=T0) == ""  # first sight: no gap known
    assert one(checker, 5.1, t=T0 + gap) == ""  # exactly 30 min: no gap
    t = T0 + 2 * gap + 1  # 30 min and 1 ms
    assert one(checker, 5.2, t=t) == "warmup"
    assert one(checker, 5.3, t=t + 119_999) == "warmup"
    assert one(checker, 5.4, t=t + 120_000) == ""  # 120 s after: settled


def test_a_reading_older_than_the_last_gets_stateless_flags_and_changes_nothing() -> None:
    checker = QualityChecker(QualityConfig(quantities={"pm2_5": Thresholds(stuck_readings=3)}))
    assert run(checker, [4.0, 4.0]) == ["", ""]
    assert one(checker, 4.0, t=T0 - MIN, humidity=75.0) == "humidity"  # replayed: no run
    assert one(checker, 4.0, t=T0 + 2 * MIN) == "stuck"  # the run is still 3 here


def test_a_redelivered_reading_gets_the_flags_it_got() -> None:
    checker = QualityChecker(QualityConfig(quantities={"pm2_5": Thresholds(stuck_readings=2)}))
    assert run(checker, [4.0, 4.0]) == ["", "stuck"]
    assert one(checker, 4.0, t=T0 + MIN) == "stuck"  # again, at the same time
    assert one(checker, 4.0, t=T0 + MIN, clock_synced=False) == "clock,stuck"


def test_series_are_kept_apart() -> None:
    config = QualityConfig(quantities={"pm2_5": Thresholds(stuck_readings=2)})
    checker = QualityChecker(config)
    assert checker.flag("d1", "sds011", T0, [("pm2_5", 4.0)]) == {}
    assert checker.flag("d2", "sds011", T0 + MIN, [("pm2_5", 4.0)]) == {}
    assert checker.flag("d1", "sps30", T0 + MIN, [("pm2_5", 4.0)]) == {}
    assert checker.flag("d1", "sds011", T0 + MIN, [("pm2_5", 4.0)]) == {"pm2_5": "stuck"}


def test_memory_is_bounded_by_count_and_by_age() -> None:
    checker = QualityChecker(QualityConfig(max_series=3))
    for i in range(10):
        checker.flag(f"d{i}", "sds011", T0 + i, [("pm2_5", 1.0)])
    assert len(checker) == 3
    aged = QualityChecker(QualityConfig(forget_after_s=3600))
    aged.flag("old", "sds011", T0, [("pm2_5", 1.0)])
    aged.flag("new", "sds011", T0 + 3600 * 1000, [("pm2_5", 1.0)])
    assert len(aged) == 2  # exactly forget_after_s later: kept
    aged.flag("new", "sds011", T0 + 3600 * 1000 + 1, [("pm2_5", 1.0)])
    assert len(aged) == 1


# --- configuration ---------------------------------------------------------------------------


def test_every_flag_has_its_reason() -> None:
    assert set(F.ALL_FLAGS) == {
        *("range", "stuck", "spike", "humidity", "fog", "warmup", "clock", "neighbour")
    }
    assert all(len(reason) > 40 for reason in F.FLAGS.values())
    assert F.parse("fog,humidity") == ("fog", "humidity") and F.parse(None) == ()


def _ingest_toml(tmp_path: Path, quality: str) -> Path:
    (tmp_path / "registry.toml").write_text("")
    path = tmp_path / "ingest.toml"
    path.write_text(
        f'registry_path = "registry.toml"\n[broker]\npassword = "x"\n{quality}', encoding="utf-8"
    )
    return path


def test_the_quality_section_of_ingest_toml(tmp_path: Path) -> None:
    path = _ingest_toml(
        tmp_path,
        "[quality]\nfog_rh = 97.0\n[quality.sensors.sds011.pm2_5]\nstuck_readings = 4\n",
    )
    config = load_ingest_config(path).quality
    assert config.fog_rh == 97.0 and config.enabled
    assert config.rules("sds011", "pm2_5").stuck_readings == 4
    assert config.rules("sds011", "pm10").stuck_readings == 30
    assert load_quality_config(path) == config
    assert load_ingest_config(_ingest_toml(tmp_path, "")).quality == QualityConfig()


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ("[quality.quantities.pm25]\nstuck_readings = 3\n", "unknown quantity 'pm25'"),
        ("[quality]\nfog_rh = 120\n", "fog_rh"),
        ("[quality.quantities.pm2_5]\nstuck_reading = 3\n", "stuck_reading"),
        ("[quality.sensors.sds011.pm10]\nstuck_readings = 1\n", "give 2 or more, or 0"),
    ],
)
def test_a_bad_quality_section_is_one_line_naming_the_key(
    tmp_path: Path, section: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_ingest_config(_ingest_toml(tmp_path, section))
    message = str(caught.value)
    assert words in message and "ingest.toml" in message and "\n" not in message


# --- stored: the ingest's points, the importer's lines ---------------------------------------

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _message(rh: float, *, kit: bool = False, synced: bool = True, seq: int = 1) -> AirMessage:
    return AirMessage(
        device_id="d1",
        seq=seq,
        observed_at=NOW + timedelta(minutes=seq),
        clock_synced=synced,
        sent_at=NOW + timedelta(minutes=seq, seconds=1),
        link=Link(
            uptime_s=3600.0,
            firmware="t",
            kit=KitLink(time_source="receive") if kit else None,
        ),
        readings=[
            Reading(quantity="pm2_5", value=14.0, unit="ug/m3", sensor="sds011"),
            Reading(quantity="pm10", value=21.5, unit="ug/m3", sensor="sds011"),
            Reading(quantity="temperature", value=9.5, unit="degC", sensor="bme280"),
            Reading(quantity="relative_humidity", value=rh, unit="%", sensor="bme280"),
        ],
    )


RECEIPT = Receipt(gateway="local", received_at_ms=0, redelivered=False, seq_gap=0)


def _air(points: list[Point]) -> dict[str, dict[str, object]]:
    return {p.tags["sensor"]: dict(p.fields) for p in points if p.measurement == storage.AIR}


def test_air_points_carry_qc_and_the_flags_beside_unchanged_raw_values() -> None:
    air = _air(message_points(_message(99.0), "s", RECEIPT, quality=QualityChecker()))
    assert air["sds011"] == {
        "pm2_5": 14.0,
        "pm10": 21.5,
        "qc_pm2_5": "fog,humidity",
        "qc_pm10": "fog,humidity",
        "qc": F.QC_VERSION,
    }
    assert air["bme280"] == {"temperature": 9.5, "relative_humidity": 99.0, "qc": F.QC_VERSION}
    unflagged = _air(message_points(_message(99.0), "s", RECEIPT))
    assert unflagged["sds011"] == {"pm2_5": 14.0, "pm10": 21.5}  # no checker: not checked


def test_a_message_from_a_clock_not_synchronised_or_just_started() -> None:
    air = _air(message_points(_message(50.0, synced=False), "s", RECEIPT, quality=QualityChecker()))
    assert air["bme280"]["qc_temperature"] == "clock"
    started = _message(50.0).model_copy(update={"link": Link(uptime_s=30.0, firmware="t")})
    air = _air(message_points(started, "s", RECEIPT, quality=QualityChecker()))
    assert air["sds011"]["qc_pm2_5"] == "warmup"
    # sent 40 s after it was observed with 30 s uptime: taken before the restart, unknown
    late = started.model_copy(update={"sent_at": started.observed_at + timedelta(seconds=40)})
    assert (
        "qc_pm2_5"
        not in _air(message_points(late, "s", RECEIPT, quality=QualityChecker()))["sds011"]
    )


def test_a_kit_has_no_clock_and_no_uptime_to_flag() -> None:
    kit = _message(50.0, kit=True, synced=False).model_copy(
        update={"link": Link(uptime_s=0.0, firmware="t", kit=KitLink(time_source="receive"))}
    )
    air = _air(message_points(kit, "s", RECEIPT, quality=QualityChecker()))
    assert air["sds011"] == {"pm2_5": 14.0, "pm10": 21.5, "qc": F.QC_VERSION}


def test_a_stuck_run_through_message_points() -> None:
    checker = QualityChecker(QualityConfig(quantities={"pm2_5": Thresholds(stuck_readings=3)}))
    stored = [
        _air(message_points(_message(50.0, seq=i), "s", RECEIPT, quality=checker))["sds011"]
        for i in range(1, 4)
    ]
    assert [s.get("qc_pm2_5") for s in stored] == [None, None, "stuck"]
    assert [s["pm2_5"] for s in stored] == [14.0, 14.0, 14.0]


def test_imported_rows_carry_the_same_fields_as_to_line_writes(tmp_path: Path) -> None:
    path = tmp_path / "ride.csv"
    path.write_text("x\n", encoding="utf-8")
    lines: list[str] = []
    ctx = ImportContext(
        "track",
        inspect(path),
        ImportOptions(user="t"),
        resolve=lambda spec: Target(spec.device_id, "s", frozenset(), frozenset(), True),
        declare=lambda *_: True,
        flush=lambda c: lines.extend(c.lines),
        now_ms=T0 * 2,
        quality=QualityChecker(),
    )
    target = Target("track-1", "s", frozenset({"snuffelfiets"}), frozenset(), False)
    columns = [
        value_column(0, "pm2_5", "pm2_5"),
        value_column(1, "humidity", "relative_humidity"),
    ]
    fields = ctx.air_fields(1, "", ["14.0", "98.5"], columns, target, sensor="snuffelfiets", t=T0)
    prefix = series_prefix(storage.AIR, {"device_id": "track-1", "site": "s"})
    point = Point(
        storage.AIR,
        {"device_id": "track-1", "site": "s"},
        {"pm2_5": 14.0, "relative_humidity": 98.5, "qc_pm2_5": "fog,humidity", "qc": F.QC_VERSION},
        T0,
    )
    assert f"{prefix}{fields} {T0}" == to_line(point)
    unchecked = ImportContext(
        "track",
        inspect(path),
        ImportOptions(user="t"),
        resolve=lambda spec: target,
        declare=lambda *_: True,
        flush=lambda c: None,
        now_ms=T0 * 2,
    )
    assert unchecked.air_fields(1, "", ["14.0", "98.5"], columns, target, sensor="x", t=T0) == (
        "pm2_5=14.0,relative_humidity=98.5"
    )


# --- counts ----------------------------------------------------------------------------------

HOUR = 3_600_000


def counts(checker: QualityChecker, values: list[float], **kw: object) -> list[str]:
    return [
        checker.flag_count("cam", "pedestrian", "in", T0 + i * HOUR, 3600.0, v, **kw)  # type: ignore[arg-type]
        for i, v in enumerate(values)
    ]


def test_counts_stuck_at_zero_for_a_day_and_at_another_count_for_6_hours() -> None:
    zeros = counts(QualityChecker(), [5.0] + [0.0] * 25)
    assert zeros[23] == "" and zeros[24] == "stuck" and zeros[25] == "stuck"  # 23 h, 24 h, 25 h
    twos = counts(QualityChecker(), [2.0] * 7)
    assert twos == ["", "", "", "", "", "stuck", "stuck"]  # 5 h, then 6 h of the same 2
    off = QualityChecker(QualityConfig(count_stuck_s=0, count_stuck_nonzero_s=0))
    assert "stuck" not in counts(off, [0.0] * 30 + [2.0] * 10)


def test_a_count_of_an_interval_not_counted_neither_continues_nor_ends_a_run() -> None:
    checker = QualityChecker(QualityConfig(count_stuck_nonzero_s=3 * 3600))
    assert counts(checker, [4.0, 4.0]) == ["", ""]
    idle = checker.flag_count(
        "cam", "pedestrian", "in", T0 + 2 * HOUR, 3600.0, 0.0, running_fraction=0.0
    )
    assert idle == ""
    assert checker.flag_count("cam", "pedestrian", "in", T0 + 3 * HOUR, 3600.0, 4.0) == "stuck"


def test_count_points_carry_the_flags() -> None:
    from sensorpipe.protocol.messages import ClassCount, CountMessage

    checker = QualityChecker(QualityConfig(count_stuck_s=2 * 60))
    stored = []
    for seq in (1, 2):
        start = NOW + timedelta(minutes=seq)
        message = CountMessage(
            device_id="cam1",
            seq=seq,
            observed_at=start,
            clock_synced=seq == 1,
            sent_at=start + timedelta(minutes=1),
            link=Link(uptime_s=3600.0, firmware="t"),
            interval_end=start + timedelta(minutes=1),
            model_id="m",
            running_fraction=1.0,
            frames=100,
            counts=[ClassCount(count_class="pedestrian", direction="in", count=0)],
        )
        points = message_points(message, "s", RECEIPT, quality=checker)
        stored += [dict(p.fields) for p in points if p.measurement == storage.TRAFFIC]
    assert stored == [
        {"count": 0, "interval_s": 60.0, "qc": F.QC_VERSION},
        {"count": 0, "interval_s": 60.0, "qc_count": "clock,stuck", "qc": F.QC_VERSION},
    ]


def test_stack_up_keeps_the_quality_section_of_ingest_toml(tmp_path: Path) -> None:
    import tomllib

    from sensorpipe.stack.configs import write_ingest_config
    from sensorpipe.stack.errors import StackError

    def write() -> dict[str, object]:
        path = write_ingest_config(
            tmp_path,
            registry_path=tmp_path / "r.toml",
            quarantine_path=tmp_path / "q.sqlite",
            keys_path=tmp_path / "k.sqlite",
            broker_port=1883,
            influx_url="http://127.0.0.1:8086",
            password="pw",
            metrics_port=0,
        )
        return tomllib.loads(path.read_text())

    assert "quality" not in write()
    ingest_toml = tmp_path / "ingest.toml"
    ingest_toml.write_text(ingest_toml.read_text() + "[quality]\nfog_rh = 97.5\n")
    assert write()["quality"] == {"fog_rh": 97.5}
    assert write()["quality"] == {"fog_rh": 97.5}  # and again, at the next `stack up`
    ingest_toml.write_text("[quality\n")
    with pytest.raises(StackError, match=r"ingest\.toml: cannot read it"):
        write()
