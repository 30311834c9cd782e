"""Every command, given bad input, ends with one readable line, a non-zero exit, no traceback.

The table below has bad input for every command of `sensorpipe` (missing files, bad TOML, wrong
types, unknown names, reversed ranges); a test checks that no command is left out of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.ingest.deadletter import DeadLetter, DeadLetterStore

Case = tuple[Callable[[Path], list[str]], str]


def _file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _bad_toml(tmp: Path) -> str:
    return _file(tmp, "bad.toml", 'device_id = "x"\n[mqtt\n')


def _bad_ledger(tmp: Path) -> str:
    (tmp / "st" / "imports").mkdir(parents=True)
    (tmp / "st" / "imports" / "ledger.sqlite").write_text("not a database, " * 100)
    return str(tmp / "st")


def _empty_ledger(tmp: Path) -> str:
    from sensorpipe.importer.ledger import Ledger

    (tmp / "st" / "imports").mkdir(parents=True)
    Ledger(tmp / "st" / "imports" / "ledger.sqlite").close()
    return str(tmp / "st")


def _stack_with_bad_registry(tmp: Path) -> str:
    (tmp / "st").mkdir()
    (tmp / "st" / "registry.toml").write_text("devices = [\n")
    return str(tmp / "st")


def _ingest_config(tmp: Path, **extra: str) -> str:
    store = DeadLetterStore(tmp / "dl.sqlite")
    store.close()
    _file(tmp, "registry.toml", "")
    lines = ['registry_path = "registry.toml"', 'deadletter_path = "dl.sqlite"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return _file(tmp, "ingest.toml", "\n".join(lines) + '\n[broker]\npassword = "x"\n')


def _edge_config(tmp: Path, line: str) -> str:
    from sensorpipe.resources import example_config

    text = example_config("edge").read_text()
    key = line.split(" = ")[0]
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(key + " "))
    first, rest = text.split("\n", 1)
    return _file(tmp, "edge.toml", f"{first}\n{line}\n{rest}\n")


def _area_stack(tmp: Path, areas: str = "") -> str:
    """A stack directory whose registry holds the counting device gate-1 (and `areas`)."""
    (tmp / "st").mkdir(exist_ok=True)
    registry = '[devices.gate-1]\nsite = "x"\npassword_hash = "x"\n' + areas
    (tmp / "st" / "registry.toml").write_text(registry)
    return str(tmp / "st")


_AREA = ["hall", "--name", "Hall", "--kind", "enclosed", "--capacity", "100"]
_GATE = "gate-1:in=left_to_right:out=right_to_left"
_STREET_ARGS = ["street", "--name", "S", "--kind", "street", "--capacity", "9"]
_EMPTY_POLYGON = (  # a street area whose polygon holds no device
    '[areas.empty]\nname = "E"\nkind = "street"\ncapacity = 9\n'
    "polygon = [[4.0, 52.0], [4.1, 52.0], [4.1, 52.1], [4.0, 52.0]]\n"
)
_STREET = (
    '[areas.street]\nname = "S"\nkind = "street"\ncapacity = 9\nlines = [{device = "gate-1"}]\n'
)

# Midnight in Amsterdam is 23:00Z the day before: after 22:30Z.
_DAY_BEFORE = ["--from", "2026-01-15", "--to", "2026-01-14T22:30Z"]

_SUBSCRIBER = '[[alert_subscribers]]\nusername = "control-room"\npassword_hash = "x"\n'

# The example's SPS30 section uncommented, with an `address` line after its `driver` line.
_SPS30 = '#[[sensors]]\n#driver = "sps30"'
_SPS30_AT = '[[sensors]]\ndriver = "sps30"\naddress = '
# The example's SPS30 section uncommented with a `port` beside its `bus`, or with neither.
_SPS30_I2C = _SPS30 + "\n#bus = 1"
_SPS30_BOTH = '[[sensors]]\ndriver = "sps30"\nbus = 1\nport = "/dev/serial0"'
_SPS30_NEITHER = '[[sensors]]\ndriver = "sps30"\n#'


# The example's PMS5003 section (commented out there), and uncommented with its duty cycle.
_PMS5003 = '#[[sensors]]\n#driver = "pms5003"\n#port = "/dev/ttyAMA0"\n#interval_s = 300\n#duty'
_PMS5003_ON = '[[sensors]]\ndriver = "pms5003"\nport = "/dev/ttyAMA0"\ninterval_s = '


# The example's DS18B20 section (commented out there), and uncommented with an upper-case id.
_DS18B20 = '#[[sensors]]\n#driver = "ds18b20"\n#sensor_id = "28-0000072a4b1c"'
_DS18B20_UPPER = '[[sensors]]\ndriver = "ds18b20"\nsensor_id = "28-0000072A4B1C"'


def _edge_config_with(tmp: Path, old: str, new: str) -> str:
    """The example edge configuration with the line `old` replaced by `new`."""
    from sensorpipe.resources import example_config

    text = example_config("edge").read_text()
    assert old in text
    return _file(tmp, "edge.toml", text.replace(old, new, 1))


def _stack_with_device(tmp: Path, *, quarantined: bool = False) -> str:
    """A stack directory (never started) with device d1 registered, quarantined or not."""
    from sensorpipe.protocol.quarantine import QuarantineBook
    from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry

    directory = tmp / "st"
    registry = Registry(devices={"d1": DeviceEntry(site="s", source="import")})
    save_registry(registry, directory / "registry.toml")
    if quarantined:
        book = QuarantineBook(directory / "quarantine.sqlite")
        book.quarantine("d1", reason="manual", detail="test", by="a test")
        book.close()
    return str(directory)


def _stack_with_calibration(tmp: Path, sensors: tuple[str, ...] = ("sds011",)) -> str:
    """A stack directory (never started) with devices d1 (of `sensors`) and r1 and calibration
    cal-1 of sensor model logger in its calibration book."""
    from sensorpipe.calibration.store import CalibrationBook
    from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry

    directory = tmp / "cs"
    entry = DeviceEntry(site="s", source="import", sensors=list(sensors))
    save_registry(Registry(devices={"d1": entry, "r1": entry}), directory / "registry.toml")
    book = CalibrationBook(directory / "calibrations.sqlite")
    book.add({"method": "linear", "quantity": "pm2_5", "sensor_model": "logger"})
    book.close()
    return str(directory)


def _stack_with_bad_calibration_book(tmp: Path) -> str:
    (tmp / "cb").mkdir()
    (tmp / "cb" / "calibrations.sqlite").write_bytes(b"not a database at all" * 100)
    return str(tmp / "cb")


def _stack_with_edge_device(tmp: Path) -> str:
    """A stack directory with edge device e1 registered to make its own key (none enrolled)."""
    from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry

    directory = tmp / "st"
    registry = Registry(devices={"e1": DeviceEntry(site="s", password_hash="x")})
    save_registry(registry, directory / "registry.toml")
    return str(directory)


def _join_code(tmp: Path, port: int) -> str:
    """A file with a join code for a broker on 127.0.0.1:`port`."""
    from sensorpipe.protocol.enrollment import JoinCode

    code = JoinCode(
        device_id="e1", host="127.0.0.1", port=port, tls=False, username="e1", password="pw"
    )
    return _file(tmp, "code", code.encode())


def _stopped_stack_with_bad_registry(tmp: Path) -> str:
    directory = Path(_stack_with_bad_registry(tmp))
    state = {
        "directory": str(directory),
        "mqtt": {"host": "127.0.0.1", "port": 9},
        "influx": {"url": "http://127.0.0.1:9", "database": "sensorpipe"},
        "pids": {"mosquitto": 0, "influxd": 0, "ingest": 0},
    }
    (directory / "stack.json").write_text(json.dumps(state))
    return str(directory)


def _stopped_stack(tmp: Path) -> str:
    directory = Path(_stopped_stack_with_bad_registry(tmp))
    (directory / "registry.toml").unlink()
    return str(directory)


def _ttn_node(tmp: Path) -> list[str]:
    return ["--application", "a1@ttn", "--device-id", "n1", "--dir", str(tmp)]


def _gateway(tmp: Path) -> list[str]:
    return ["--registry", _file(tmp, "r.toml", ""), "--out", str(tmp / "out")]


def _kit_gateway_config(tmp: Path, *lines: str, key_mode: int = 0o600, tail: str = "") -> list[str]:
    """A gateway.toml with its registry and secret files, `lines` at the top, `tail` last."""
    import os

    from sensorpipe.protocol.signing import generate_keypair

    _file(tmp, "registry.toml", "")
    key = tmp / "gw.key"
    key.write_text(generate_keypair()[0] + "\n")
    os.chmod(key, key_mode)
    (tmp / "gw.password").write_text("secret\n")
    os.chmod(tmp / "gw.password", 0o600)
    text = "\n".join(
        [
            *lines,
            'gateway_id = "gw"',
            'private_key_file = "gw.key"',
            'deadletter_path = "dl.sqlite"',
            "[broker]",
            'password_file = "gw.password"',
            tail,
        ]
    )
    return ["--config", _file(tmp, "gateway.toml", text + "\n")]


def _stack_with_bad_state(tmp: Path) -> str:
    (tmp / "st").mkdir()
    (tmp / "st" / "stack.json").write_text('{"mqtt": {}}')
    return str(tmp / "st")


def _logger(tmp: Path) -> list[str]:
    """`import csv` of a logger file with a preamble, all options right but the stack."""
    text = "Serial: 1\n\nTime,PM2.5\n8/1/2019 7:11,5.4\n"
    return [
        _file(tmp, "rt.csv", text), "--device", "rt01", "--time", "Time", "--column",
        "PM2.5=pm2_5", "--time-format", "%m/%d/%Y %H:%M",
    ]  # fmt: skip


def _counts_with_sites(tmp: Path, sites: str) -> list[str]:
    """`import csv` of a long counts file by site, all options right but the stack, and
    --locations of a sites file holding `sites` (the last two arguments)."""
    counts = _file(tmp, "k.csv", "time,site,count\n2024-01-01T00:00:00Z,a,5\n")
    return [
        counts, "--time", "time", "--column", "count=count:pedestrian", "--device-column",
        "site", "--dir", str(tmp / "st"), "--locations", _file(tmp, "sites.csv", sites),
    ]  # fmt: skip


def _sample(name: str) -> str:
    """A history file of tests/data/import (for `sensorpipe import`)."""
    return str(Path(__file__).parent / "data" / "import" / name)


SC = "2024-03-01_sds011_sensor_12345.csv"
RIDE = _sample("ride-2024-05-04.csv")


def _backtest(tmp: Path, *extra: str, counts: str | None = "") -> list[str]:
    """`crowd backtest` arguments: a small counts file (unless counts is None), then extra."""
    args = ["--train-until", "2024-01-02", "--from", "2024-01-02", "--to", "2024-01-03"]
    args += ["--horizon", "1h", "--timezone", "Pacific/Auckland", "--country", "NZ"]
    if counts is not None:
        lines = counts or "2024-01-01T00:00:00Z,a,5"
        args += ["--counts-csv", _file(tmp, "c.csv", f"time_utc,site,count\n{lines}\n")]
    return [*args, *extra]


def _train(*extra: str) -> list[str]:
    """`crowd train` arguments, then extra."""
    args = ["--train-until", "2024-01-02", "--timezone", "Pacific/Auckland", "--country", "NZ"]
    return [*args, *extra]


def _alerts(tmp: Path) -> str:
    """An empty alert store."""
    from sensorpipe.crowd.alertstore import AlertStore

    AlertStore(tmp / "alerts.sqlite").close()
    return str(tmp / "alerts.sqlite")


def _bad_model(tmp: Path) -> str:
    """A models folder with a device model whose model.json is not one."""
    (tmp / "models" / "device-x").mkdir(parents=True)
    (tmp / "models" / "device-x" / "model.json").write_text("{")
    return str(tmp / "models")


CASES: dict[str, list[Case]] = {
    "stack up": [
        (lambda t: ["--dir", _file(t, "f", "")], "is a file"),
        (lambda t: ["--dir", _file(t, "f", "") + "/st"], "f/st: cannot create the stack directory"),
    ],
    "stack status": [
        (lambda t: ["--dir", ""], "give a directory (`--dir .` for this one)"),
        (lambda t: ["--dir", str(t)], "no stack in"),
        (lambda t: ["--dir", _stack_with_bad_state(t)], "stack.json: not a stack state file"),
        (lambda t: ["--dir", _stopped_stack_with_bad_registry(t)], "registry.toml: not valid"),
    ],
    "stack down": [
        (lambda t: ["--dir", _file(t, "f", "")], "is a file"),
        (lambda t: ["--dir", _stack_with_bad_state(t)], "remove it and run `sensorpipe stack up`"),
    ],
    "devices add": [
        (lambda t: ["d1", "--dir", str(t), "--site", "a;b"], "--site 'a;b': use letters"),
        (lambda t: ["ingest", "--dir", str(t)], "'ingest' is the name of a reading account"),
        (lambda t: ["d1", "--dir", str(t), "--lat", "52"], "give both --lat and --lon"),
        (lambda t: ["d1", "--dir", str(t), "--lat", "x", "--lon", "5"], "'x' is not a valid float"),
        (lambda t: ["d1", "--dir", _stack_with_bad_registry(t)], "registry.toml: not valid TOML"),
        (lambda t: ["d1", "--dir", str(t), "--direction", "a b"], "--direction 'a b': use"),
        (lambda t: ["d1", "--dir", str(t), "--sensor", "SDS011"], "did you mean 'sds011'?"),
        (lambda t: ["d1", "--dir", str(t), "--sensor", "sds012"], "did you mean 'sds011'?"),
        (lambda t: ["d1", "--dir", str(t), "--sensor", "xyz9"], "add --allow-unknown-sensor"),
        # `<model>.<name>` only for a model a device may have several of (soil_probe.bed2)
        (lambda t: ["d1", "--dir", str(t), "--sensor", "bme280.b"], "e.g. soil_probe.bed2"),
        (lambda t: ["d1", "--dir", str(t), "--sensor", "Soil_probe.b2"], "'soil_probe.b2'?"),
        (lambda t: ["d1", "--dir", str(t), "--count-class", "bicycle"], "--count-class bicycle"),
        (lambda t: ["d1", "--dir", str(t), "--count-class", "Car"], "did you mean 'car'?"),
        (lambda t: ["d1", "--dir", str(t), "--contact", "x" * 201], "--contact 'xxx"),
        (lambda t: ["d1", "--dir", str(t), "--licence", "x" * 101], "--licence 'xxx"),
        (lambda t: ["d1", "--dir", str(t), "--legal-basis", "x" * 301], "--legal-basis 'xxx"),
        (lambda t: ["d1", "--dir", str(t), "--retention", "x" * 201], "at most 200 characters"),
    ],
    "devices list": [
        (lambda t: ["--dir", _stack_with_bad_registry(t)], "not valid TOML"),
        (lambda t: ["--dir", str(t / "nowhere")], "nowhere/registry.toml: no device is registered"),
    ],
    "devices edit": [
        (lambda t: ["d1", "--dir", _stack_with_calibration(t)], "nothing to change"),
        (lambda t: ["d1", "--lat", "52.1", "--dir", _stack_with_calibration(t)], "give both"),
        (
            lambda t: ["d1", "--lat", "95", "--lon", "5", "--dir", _stack_with_calibration(t)],
            "--lat",
        ),
        (lambda t: ["d9", "--owner", "x", "--dir", _stack_with_calibration(t)], "d9: not in"),
        (lambda t: ["d1", "--owner", "x", "--dir", _stack_with_bad_registry(t)], "not valid TOML"),
        (
            lambda t: ["d1", "--contact", "x" * 201, "--dir", _stack_with_calibration(t)],
            "--contact",
        ),
    ],
    "devices quarantine": [
        (lambda t: ["d2", "--dir", _stack_with_device(t)], "d2: no such device in the registry"),
        (lambda t: ["d", "--dir", _stack_with_device(t)], "(did you mean d1?)"),
        (lambda t: ["d1", "--dir", _stack_with_bad_registry(t)], "not valid TOML"),
        (lambda t: ["d1", "--dir", str(t), "--reason-text", "x" * 2001], "at most 2000"),
        (
            lambda t: ["d1", "--dir", _stack_with_device(t, quarantined=True)],
            "d1 is already quarantined (since",
        ),
    ],
    "devices reset-key": [
        (lambda t: ["d2", "--dir", _stack_with_device(t)], "d2: no such device in the registry"),
        (lambda t: ["d", "--dir", _stack_with_device(t)], "(did you mean d1?)"),
        (lambda t: ["d1", "--dir", _stack_with_device(t)], "source 'import' has no key"),
        (lambda t: ["e1", "--dir", _stack_with_edge_device(t)], "e1: it has not enrolled a key"),
        (lambda t: ["d1", "--dir", _stack_with_bad_registry(t)], "not valid TOML"),
    ],
    "devices lift": [
        (lambda t: ["d2", "--dir", _stack_with_device(t)], "d2: no such device in the registry"),
        (lambda t: ["d1", "--dir", _stack_with_device(t)], "d1 is not quarantined"),
        (lambda t: ["d1", "--dir", _stack_with_bad_registry(t)], "not valid TOML"),
    ],
    "devices export": [
        (lambda t: ["--dir", _stack_with_bad_registry(t)], "not valid TOML"),
        (lambda t: ["--dir", str(t), "--format", "pdf"], "'pdf' is not one of 'json'"),
        (lambda t: ["--dir", str(t), "--lang", "de"], "'de' is not one of 'en', 'nl'"),
        (lambda t: ["--dir", str(t), "--lang", "nl"], "--lang nl: only the html pages are"),
        (lambda t: ["--dir", str(t), "--format", "algorithm"], "'algorithm' is not one of"),
        (
            lambda t: ["--dir", str(t), "--format", "algorithms", "--lang", "en"],
            "--lang en: only the html pages are translated",
        ),
        (
            lambda t: ["--dir", str(t), "--format", "algorithms-html", "--lang", "de"],
            "'de' is not one of 'en', 'nl'",
        ),
        (
            lambda t: ["--dir", _stack_with_bad_registry(t), "--format", "algorithms"],
            "not valid TOML",
        ),
        (
            lambda t: ["--dir", str(t), "--format", "algorithms-html", "--out", str(t)],
            "is a directory",
        ),
        (lambda t: ["--dir", str(t), "--out", str(t)], "is a directory"),
        (
            lambda t: ["--dir", str(t), "--out", str(t / "none" / "r.html")],
            "--out {t}/none/r.html: no directory {t}/none",
        ),
        (  # the register says how each device is calibrated: it reads the book
            lambda t: ["--dir", _stack_with_bad_calibration_book(t), "--format", "html"],
            "calibrations.sqlite: cannot open the calibration book",
        ),
    ],
    "devices network": [
        (lambda t: ["--dir", _stack_with_bad_registry(t)], "not valid TOML"),
        (lambda t: ["--dir", str(t), "--name", " "], "--name '': give the network a name"),
        (
            lambda t: ["--dir", str(t), "--privacy-url", "javascript:alert(1)"],
            "--privacy-url 'javascript:alert(1)': give a web address like https://",
        ),
        (lambda t: ["--dir", str(t), "--privacy-url", "https://a b"], "give a web address"),
        (lambda t: ["--dir", str(t), "--contact", "x" * 201], "--contact 'xxx"),
        (lambda t: ["--dir", str(t), "--operator", "x" * 201], "--operator 'xxx"),
        (lambda t: ["--dir", str(t), "--licence", "x" * 101], "at most 100 characters"),
    ],
    "edge run": [
        (lambda t: ["--config", str(t / "missing.toml")], "missing.toml: file not found"),
        (lambda t: ["--config", _bad_toml(t)], "bad.toml: not valid TOML"),
        (lambda t: ["--config", _edge_config(t, 'private_key = "abc"')], "private_key (line 2)"),
        (lambda t: ["--config", _edge_config(t, "status_interval_s = -5")], "status_interval_s"),
        (
            lambda t: ["--config", _edge_config_with(t, 'name = "balcony-01"', 'name = "b"')],
            "mqtt (line 8): username 'b' is not the device_id 'balcony-01'",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, "address = 0x76", "address = 0x99")],
            "sensors.bme280.address (line 36): 0x99: a BME280 answers only at 0x76",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, _SPS30, _SPS30_AT + "0x70")],
            "sensors.sps30.address (line 72): 0x70: an sps30 answers only at 0x69",
        ),
        (
            lambda t: [
                "--config",
                _edge_config_with(t, 'port = "/dev/ttyUSB0"', f'port = "{_file(t, "tty", "x")}"'),
            ],
            "tty is a regular file, not a serial device",
        ),
        (
            lambda t: [
                "--config",
                _edge_config_with(
                    t, _PMS5003 + " = { wake_s = 30 }", _PMS5003_ON + "300\nduty = { wake_s = 10 }"
                ),
            ],
            "sensors.pms5003 (line 98): duty.wake_s = 10.0 is shorter than warmup_s = 30.0",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, _PMS5003, _PMS5003_ON + "20\nduty")],
            "duty.wake_s = 30.0 is not shorter than interval_s = 20.0: the laser would never sleep",
        ),
    ],
    "edge check": [
        (lambda t: ["--config", str(t / "missing.toml")], "missing.toml: file not found"),
        (lambda t: ["--config", _bad_toml(t)], "bad.toml: not valid TOML"),
        (
            lambda t: ["--config", _edge_config_with(t, "address = 0x76", "address = 0x99")],
            "sensors.bme280.address (line 36): 0x99: a BME280 answers only at 0x76",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, _SPS30, _SPS30_AT + "0x70")],
            "sensors.sps30.address (line 72): 0x70: an sps30 answers only at 0x69",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, _SPS30_I2C, _SPS30_BOTH)],
            "sensors.sps30 (line 70): both `bus` and `port`: an SPS30 talks I2C (`bus = 1`",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, _SPS30, _SPS30_NEITHER)],
            "sensors.sps30 (line 70): neither `bus` nor `port`: an SPS30 talks I2C",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, "address = 0x44", "address = 0x47")],
            "sensors.sht4x.address (line 44): 0x47: an SHT4X answers only at 0x44 or 0x45",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, 'driver = "sht4x"', 'driver = "sht31"')],
            "sensors.driver (line 42): 'sht31' is not one sensorpipe knows; did you mean 'sht3x'?",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, "v_wet = 1.20", "v_wet = 2.80")],
            "sensors.soil_ads1115.v_wet (line 59): v_dry (2.6 V) must be above v_wet (2.8 V)",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, "fsr_v = 4.096", "fsr_v = 5")],
            "sensors.soil_ads1115.fsr_v (line 60): 5.0: the ADS1115 ranges are 6.144, 4.096",
        ),
        (
            lambda t: [
                "--config",
                _edge_config_with(
                    t, 'driver = "bme280"', 'driver = "bme280"\nport = "/dev/ttyUSB1"'
                ),
            ],
            "sensors.bme280.port (line 35): unknown key; `port` belongs to pms5003, sds011, "
            "sps30 sections, not a bme280's",
        ),
        (
            lambda t: ["--config", _edge_config_with(t, _DS18B20, _DS18B20_UPPER)],
            "sensors.ds18b20.sensor_id (line 111): 28-0000072A4B1C: a DS18B20's folder is 28-",
        ),
    ],
    "edge join": [
        (lambda t: ["--code-file", str(t / "none")], "none: cannot read it"),
        (lambda t: ["--code-file", _file(t, "c", "hello")], "not a join code (it starts with"),
        (lambda t: ["--code-file", _file(t, "c", "spj1.AAAA")], "incomplete or mistyped"),
        (
            lambda t: ["--code-file", _join_code(t, 1), "--root", str(t / "pi")],
            "e1: broker 127.0.0.1:1 (plain text): connection refused: nothing listens on port 1",
        ),
        (
            lambda t: ["--code-file", _join_code(t, 1), "--root", str(t), "--port", "sps30"],
            "--port sps30: give SENSOR=PORT, e.g. --port sps30=/dev/serial0",
        ),
        (
            lambda t: ["--code-file", _join_code(t, 1), "--root", str(t), "--port", "sps30=/dev/x"],
            "e1: --port sps30=/dev/x: the join code declares no sensor sps30 for this device",
        ),
        (
            lambda t: ["--code-file", _join_code(t, 1), "--root", str(t), "--port", "bme280=/dev/"],
            "e1: --port bme280=/dev/: bme280 has no serial port",
        ),
        (
            lambda t: [
                "--code-file",
                _join_code(t, 1),
                "--root",
                str(t),
                "--port",
                "SDS011=/dev/x",
            ],
            "declares no sensor SDS011 for this device (declared: sds011, bme280) (sensor names "
            "are lower case: sds011)",
        ),
        (
            lambda t: [
                "--code-file",
                _join_code(t, 1),
                "--root",
                str(t),
                "--port",
                "sds011=/dev/i2c-1",
            ],
            "e1: --port sds011=/dev/i2c-1: /dev/i2c-1 is a bus, not a serial port: name the UART",
        ),
    ],
    "ingest run": [
        (lambda t: ["--config", str(t / "missing.toml")], "missing.toml: file not found"),
        (lambda t: ["--config", _bad_toml(t)], "bad.toml: not valid TOML"),
        (lambda t: ["--config", _ingest_config(t, batch_max='"many"')], "batch_max (line 3)"),
    ],
    "ingest rejects": [
        (lambda t: ["--db", str(t / "none.sqlite")], "no dead-letter store at"),
        (lambda t: ["--db", _file(t, "notes.txt", "x")], "not a dead-letter store"),
        (lambda t: ["--reason", "bad_sig", "--dir", str(t)], "did you mean 'bad_signature'?"),
        (
            lambda t: ["--since", "last week", "--dir", str(t)],
            "--since: time 'last week': use 'now', a relative time like 1h, 30m or 2d",
        ),
        (lambda t: ["--limit", "0", "--dir", str(t)], "0 is not in the range 1<=x<=1000000"),
        (lambda t: ["--limit", "9" * 23, "--dir", str(t)], "is not in the range 1<=x<=1000000"),
        (lambda t: ["--since", "99999999999d", "--dir", str(t)], "too far back"),
    ],
    "ingest purge": [
        (lambda t: ["--db", str(t / "none.sqlite"), "--all"], "no dead-letter store at"),
        (lambda t: ["--db", _file(t, "notes.txt", "x"), "--all"], "not a dead-letter store"),
        (lambda t: ["--dir", str(t)], "give --reason, --device or --older-than"),
        (lambda t: ["--reason", "bad_sig", "--dir", str(t)], "did you mean 'bad_signature'?"),
        (
            lambda t: ["--older-than", "last week", "--dir", str(t)],
            "--older-than: time 'last week'",
        ),
    ],
    "ingest replay": [
        (lambda t: ["--config", str(t / "missing.toml")], "missing.toml: file not found"),
        (lambda t: ["--reason", "schemas", "--config", _ingest_config(t)], "did you mean 'schema'"),
        (lambda t: ["--id", "7", "--config", _ingest_config(t)], "--id 7: no such dead letter"),
        (lambda t: ["--id", "seven", "--config", _ingest_config(t)], "'seven' is not a valid"),
        (lambda t: ["--id", "9" * 23, "--config", _ingest_config(t)], "is not in the range"),
    ],
    "gateway run": [
        (lambda t: ["--config", str(t / "missing.toml")], "missing.toml: file not found"),
        (lambda t: ["--config", _bad_toml(t)], "not valid TOML"),
        (
            lambda t: _kit_gateway_config(t, "gateway = 'gw'"),
            "gateway (line 1): unknown key; did you mean 'gateway_id'?",
        ),
        (
            lambda t: [*_kit_gateway_config(t), "--allow-plaintext", "x"],
            "Got unexpected extra argument (x)",
        ),
        (
            lambda t: _kit_gateway_config(t, "registry_path = 'none.toml'"),
            "registry_path (line 1): {t}/none.toml: no such file",
        ),
        (
            lambda t: _kit_gateway_config(t, tail="[http]\nbind = '0.0.0.0'"),
            "[http] bind '0.0.0.0' is not loopback",
        ),
        (lambda t: _kit_gateway_config(t, key_mode=0o644), "readable by others (mode 644)"),
        (lambda t: _kit_gateway_config(t), "gateway_id 'gw' is not registered in"),
    ],
    "devices add-kit airrohr": [
        (lambda t: ["--dir", str(t)], "Missing option '--chip-id'"),
        (lambda t: ["--chip-id", "abc", "--dir", str(t)], "give it as esp32-abc"),
        (lambda t: ["--chip-id", "esp8266-4a", "--dir", str(t)], "--chip-id 'esp8266-4a'"),
        (lambda t: ["--chip-id", "42", "--dir", str(t), "--sensor", "sds012"], "'sds011'?"),
        (lambda t: ["--chip-id", "42", "--dir", str(t), "--sensor", "pms7003"], "--sensor pms5003"),
        (lambda t: ["--chip-id", "42", "--dir", str(t), "--sensor", "scd4x"], "not a sensor the"),
        (lambda t: ["--chip-id", "0", "--dir", str(t)], "--chip-id '0': not a chip id"),
        (lambda t: ["--chip-id", "42", "--dir", str(t), "--site", "a;b"], "--site 'a;b': use"),
        (lambda t: ["--chip-id", "42", "--dir", str(t), "--id", "Kit 1"], "invalid device id"),
        (lambda t: ["--chip-id", "42", "--dir", str(t), "--id", "ingest"], "the ingest"),
        (lambda t: ["--chip-id", "42", "--dir", str(t), "--lat", "52"], "give both --lat"),
        (lambda t: ["--chip-id", "42", "--dir", str(t), "--sensor", "SDS011"], "did you mean"),
        (lambda t: ["--chip-id", "4", "--dir", _stack_with_bad_registry(t)], "not valid TOML"),
    ],
    "devices add-kit ttn": [
        (lambda t: ["--device-id", "n1", "--dir", str(t)], "Missing option '--application'"),
        (
            lambda t: ["--application", "my-app", "--device-id", "n1", "--dir", str(t)],
            "application 'my-app': expected <application id>@<tenant id>",
        ),
        (
            lambda t: ["--application", "a1@ttn", "--device-id", "EUI-01", "--dir", str(t)],
            "TTN device id 'EUI-01'",
        ),
        (
            lambda t: [*_ttn_node(t), "--id", "Node 1"],
            "invalid device id",
        ),
        (
            lambda t: [*_ttn_node(t), "--lat", "52"],
            "give both --lat",
        ),
        (
            lambda t: [*_ttn_node(t)[:4], "--dir", _stack_with_bad_registry(t)],
            "not valid TOML",
        ),
    ],
    "devices add-gateway": [
        (lambda t: ["Gw 1", "--dir", str(t)], "invalid gateway id 'Gw 1'"),
        (lambda t: ["ingest", "--dir", str(t)], "'ingest' is the name of a reading account"),
        (lambda t: ["gw", "--dir", str(t), "--out", _file(t, "f", "")], "is a file"),
        (lambda t: ["gw", "--dir", _stack_with_bad_registry(t)], "not valid TOML"),
    ],
    "gateway config": [
        (
            lambda t: [
                "--registry",
                _file(t, "r.toml", ""),
                "--out",
                str(t / "o"),
                "--quarantine",
                str(t / "none.sqlite"),
            ],
            "--quarantine " + "{t}/none.sqlite: no such file",
        ),
        (
            lambda t: [
                "--registry",
                _file(t, "r.toml", ""),
                "--out",
                str(t / "o"),
                "--quarantine",
                _file(t, "notes.txt", "not a database"),
            ],
            "not a quarantine book",
        ),
        (
            lambda t: ["--registry", str(t / "none.toml"), "--out", str(t / "o")],
            "--registry " + "{t}/none.toml: no such file",
        ),
        (lambda t: ["--registry", _bad_toml(t), "--out", str(t / "o")], "not valid TOML"),
        (
            lambda t: ["--registry", _file(t, "r.toml", ""), "--out", _file(t, "f", "")],
            "is a file; give a directory",
        ),
        (
            lambda t: ["--registry", _file(t, "r.toml", ""), "--out", _file(t, "f", "") + "/o"],
            "Not a directory",
        ),
        (
            lambda t: ["--registry", _file(t, "r.toml", ""), "--out", str(t), "--port", "99999"],
            "99999 is not in the range 1<=x<=65535",
        ),
        (lambda t: ["--registry", str(t), "--out", str(t / "o")], "is a directory"),
        (
            lambda t: [*_gateway(t), "--user", "mosquitto\nallow_anonymous true"],
            "not a system user name",
        ),
        (lambda t: [*_gateway(t), "--bind", "not an address"], "not an IP address or host name"),
        (lambda t: [*_gateway(t), "--bind", "999.1.1.1"], "not an IP address or host name"),
        (
            lambda t: [*_gateway(t), "--tls-cert", "/etc/passwd", "--tls-key", "/etc/passwd"],
            "--tls-cert /etc/passwd: not a PEM file with a certificate",
        ),
    ],
    "sim fleet": [
        (lambda t: ["--devices", "0"], "0 is not in the range 1<=x<=500"),
        (lambda t: ["--dir", str(t)], "no stack in"),
        (lambda t: ["--dir", _stopped_stack_with_bad_registry(t)], "registry.toml: not valid"),
        (lambda t: ["--dir", _stopped_stack(t)], "(127.0.0.1:9) does not run or answer"),
    ],
    "sim history": [
        (lambda t: ["--devices", "0", "--counting", "0"], "nothing to simulate"),
        (lambda t: ["--days", "0"], "0 is not in the range 1<=x<=31"),
        (lambda t: ["--dir", str(t)], "no stack in"),
        (lambda t: ["--dir", _stopped_stack(t)], "does not answer: is the stack up?"),
    ],
    "query air": [
        (lambda t: ["--from", "2026-11-02", "--to", "2026-11-01"], "swap them"),
        (lambda t: ["--from", "now", "--to", "-1h"], "is not before"),
        (lambda t: ["--limit", "0"], "0 is not in the range x>=1"),
        (lambda t: ["--from", "-99999999h"], "too far back"),
        (lambda t: ["--from", "-1h", "--to", "-1h"], "are the same time"),
        (lambda t: ["--every", "0m"], "use a duration like"),
        (lambda t: ["--agg", "max"], "--agg max needs --every"),
        (lambda t: ["--quantity", "pm25"], "unknown quantity 'pm25'; did you mean 'pm2_5'?"),
        (lambda t: ["--from", "2026-11-01T00:00:00"], "has no UTC offset"),
        (lambda t: ["--every", "5 minutes"], "use a duration like"),
        (lambda t: ["--dir", str(t)], "no stack in"),
        (lambda t: ["--format", "xml"], "'xml' is not one of 'table', 'csv', 'json'"),
        (lambda t: ["--source", "import:excel"], "unknown source 'import:excel': use one of edge"),
        (lambda t: ["--bbox", "5.0,52.0,5.2"], "--bbox: bbox '5.0,52.0,5.2': give minlon,minlat"),
        (lambda t: ["--bbox", "5.2,52.0,5.0,52.2"], "need -180 <= minlon <= maxlon <= 180"),
        (lambda t: ["--flag", "foggy"], "--flag: unknown flag 'foggy'; did you mean 'fog'?"),
        (lambda t: ["--flags", "drop"], "'drop' is not one of 'include', 'exclude', 'only'"),
    ],
    "calibrate fit": [
        (lambda t: ["--device", "d", "--reference", "r", "--quantity", "pm25"], "'pm25': unknown"),
        (lambda t: ["--device", "r", "--reference", "r"], "a device is not its own reference"),
        (
            lambda t: [
                "--device",
                "d",
                "--reference",
                "r",
                "--from",
                "2019-08-02",
                "--to",
                "2019-08-01",
            ],
            "--from 2019-08-02 is not before --to 2019-08-01",
        ),
        (lambda t: ["--device", "d", "--reference", "r", "--from", "yesterday"], "--from: time"),
        (
            lambda t: ["--device", "d", "--reference", "r", "--method", "cubic"],
            "'cubic' is not one",
        ),
        (lambda t: ["--reference", "r"], "Missing option '--device'"),
        (lambda t: ["--device", "d", "--reference", "r", "--dir", str(t)], "no stack in"),
        (
            lambda t: [
                *("--device", "d9", "--reference", "r1", "--dir", _stack_with_calibration(t)),
                *("--influx-url", "http://127.0.0.1:9"),
            ],
            "--device d9: not in the register",
        ),
        (
            lambda t: [
                *("--device", "d1", "--reference", "r9", "--dir", _stack_with_calibration(t)),
                *("--influx-url", "http://127.0.0.1:9"),
            ],
            "--reference r9: not in the register",
        ),
        (
            lambda t: [
                "--device",
                "d1",
                "--reference",
                "r1",
                "--dir",
                _stack_with_calibration(t),
                "--influx-url",
                "http://127.0.0.1:9",
            ],
            "InfluxDB at http://127.0.0.1:9 unreachable",
        ),
    ],
    "calibrate apply": [
        (lambda t: ["cal-1"], "Missing option '--device'"),
        (lambda t: ["cal-1", "--device", "d1", "--dir", str(t)], "the stack has none yet"),
        (
            lambda t: ["cal-7", "--device", "d1", "--dir", _stack_with_calibration(t)],
            "calibration 'cal-7': no such calibration (the stack has: cal-1)",
        ),
        (
            lambda t: ["cal-1", "--device", "d9", "--dir", _stack_with_calibration(t)],
            "--device d9: not in the register",
        ),
        (
            lambda t: ["cal-1", "--device", "d1", "--dir", _stack_with_calibration(t)],
            "--device d1: sensor model sds011; cal-1 was fitted on logger and applies only",
        ),
        (lambda t: ["cal-1", "--device", "d1", "--to", "soon"], "--to: time 'soon'"),
        (
            lambda t: ["cal-1", "--device", "d1", "--dir", _stack_with_bad_calibration_book(t)],
            "calibrations.sqlite: cannot open the calibration book",
        ),
    ],
    "calibrate list": [
        (lambda t: ["--dir", ""], "give a directory (`--dir .` for this one)"),
        (
            lambda t: ["--dir", _stack_with_bad_calibration_book(t)],
            "calibrations.sqlite: cannot open the calibration book",
        ),
    ],
    "calibrate show": [
        (lambda t: [], "Missing argument 'CALIBRATION_ID'"),
        (lambda t: ["cal-1", "--dir", str(t)], "the stack has none yet"),
        (
            lambda t: ["cal-2", "--dir", _stack_with_calibration(t)],
            "calibration 'cal-2': no such calibration (the stack has: cal-1)",
        ),
    ],
    "calibrate report": [
        (lambda t: [], "Missing argument 'CALIBRATION_ID'"),
        (lambda t: ["cal-1"], "Missing option '--out'"),
        (lambda t: ["cal-1", "--out", str(t / "r.png")], "only an HTML report is written"),
        (lambda t: ["cal-1", "--out", str(t / "r.html"), "--dir", str(t)], "the stack has none"),
        (
            lambda t: ["cal-7", "--out", str(t / "r.html"), "--dir", _stack_with_calibration(t)],
            "calibration 'cal-7': no such calibration (the stack has: cal-1)",
        ),
        (
            lambda t: [
                "cal-1",
                "--out",
                str(t / "r.html"),
                "--from",
                "2019-08-02",
                "--to",
                "2019-08-01",
            ],
            "--from 2019-08-02 is not before --to 2019-08-01",
        ),
    ],
    "calibrate group": [
        (lambda t: [], "Missing option '--reference'"),
        (
            lambda t: ["--reference", "r1", "--device", "d1", "--dir", _stack_with_calibration(t)],
            "1 device in the group (d1), and an hour needs 3 (--min-members)",
        ),
        (lambda t: ["--reference", "r1", "--device", "r1"], "a device is not its own reference"),
        (
            lambda t: ["--reference", "r1", "--device", "d1", "--within", "5"],
            "--within and --sensor choose the group near the station; with --device, leave out",
        ),
        (lambda t: ["--reference", "r1", "--within", "0"], "0.0 is not in the range x>0"),
        (lambda t: ["--reference", "r1", "--min-members", "0"], "0 is not in the range x>=1"),
        (
            lambda t: ["--reference", "r9", "--dir", _stack_with_calibration(t)],
            "--reference r9: not in the register",
        ),
        (
            lambda t: ["--reference", "r1", "--device", "d9", "--dir", _stack_with_calibration(t)],
            "--device d9: not in the register",
        ),
        (
            lambda t: ["--reference", "r1", "--dir", _stack_with_calibration(t)],
            "--reference r1: the register has no location for it",
        ),
        (lambda t: ["--reference", "r1", "--quantity", "pm25"], "'pm25': unknown"),
    ],
    "calibrate update": [
        (lambda t: [], "give the group calibrations to update (CALIBRATION_ID ...) or --all"),
        (lambda t: ["cal-1", "--all"], "give ids or --all, not both"),
        (
            lambda t: ["--all", "--dir", _stack_with_bad_calibration_book(t)],
            "cannot open the calibration book",
        ),
        (
            lambda t: ["cal-9", "--dir", _stack_with_calibration(t)],
            "calibration 'cal-9': no such calibration (the stack has: cal-1)",
        ),
        (lambda t: ["--all", "--from", "soon"], "--from: time 'soon'"),
        (lambda t: ["cal-1", "--dir", str(t)], "the stack has none yet"),
        (
            lambda t: ["cal-1", "--dir", _stack_with_calibration(t)],
            "cal-1: a linear calibration has fixed coefficients, nothing to update",
        ),
        (lambda t: ["cal-1", "--to", "soon"], "--to: time 'soon'"),
    ],
    "areas add": [
        (
            lambda t: [*_AREA, "--dir", _area_stack(t), "--line", "gate-9:in=a:out=b"],
            "area 'hall': device 'gate-9' is not registered (registered: gate-1)",
        ),
        (
            lambda t: [*_AREA, "--dir", _area_stack(t), "--line", "gate-1:in=up:out=left_to_right"],
            "device 'gate-1' has no direction up",
        ),
        (lambda t: [*_AREA, "--line", "gate-1:inn=x"], "--line 'gate-1:inn=x': give DEVICE"),
        (
            lambda t: [*_AREA, "--polygon", "4.8,52.3 4.9,52.3 4.9,52.4"],
            "area hall: an enclosed area needs counting lines",
        ),
        (lambda t: [*_AREA, "--polygon", "4.8,52.3 4.9"], "--polygon '4.9': give lon,lat pairs"),
        (lambda t: [*_AREA, "--line", _GATE, "--threshold", "lots"], "--threshold 'lots'"),
        (
            lambda t: [*_AREA, "--line", _GATE, "--threshold", "90", "--threshold", "70"],
            "--threshold ['90', '70']: give rising percentages of the capacity",
        ),
        (
            lambda t: [*_AREA, "--line", _GATE, "--threshold", "0.7"],
            "--threshold '0.7': give a percentage, e.g. --threshold 70 for 70 %",
        ),
        (
            lambda t: [*_AREA, "--line", _GATE, "--min-running", "0.5"],
            "--min-running '0.5': give a percentage, e.g. --min-running 50 for 50 %",
        ),
        (
            lambda t: [*_AREA, "--line", _GATE, "--min-running", "120"],
            "--min-running '120': give a percentage from 0 to 100",
        ),
        (lambda t: [*_AREA, "--line", _GATE, "--interval", "2d"], "e.g. 15m or 1h"),
        (lambda t: [*_AREA, "--line", _GATE, "--timezone", "Mars/Olympus"], "unknown time zone"),
        (lambda t: [*_AREA, "--line", _GATE, "--country", "XX"], "area hall: --country XX: "),
        (
            lambda t: [*_AREA, "--line", _GATE, "--country", "NZ", "--subdivision", "ZZZ"],
            "area hall: --country NZ --subdivision ZZZ: ",
        ),
        (lambda t: [*_AREA, "--line", _GATE, "--interval", "7m"], "divides an hour or a day"),
        (lambda t: [*_AREA, "--line", _GATE, "--class", "horse"], "unknown classes ['horse']"),
        (lambda t: ["Hall!", "--name", "x", "--kind", "street", "--capacity", "1"], "area id"),
        (
            lambda t: [*_AREA, "--dir", _stack_with_bad_registry(t), "--line", _GATE],
            "cannot read the device register",
        ),
        (
            lambda t: [*_STREET_ARGS, "--dir", _area_stack(t, _STREET), "--line", "gate-1"],
            "street: already an area",
        ),
    ],
    "areas list": [
        (lambda t: ["--dir", _stack_with_bad_registry(t)], "cannot read the device register")
    ],
    "areas show": [
        (lambda t: ["plein", "--dir", _area_stack(t, _STREET)], "plein: no such area in"),
    ],
    "areas remove": [
        (lambda t: ["plein", "--dir", _area_stack(t, _STREET)], "(areas: street)"),
    ],
    "crowd now": [
        (lambda t: ["--dir", _area_stack(t, _STREET), "--area", "plein"], "--area plein: no such"),
        (lambda t: ["--dir", _area_stack(t)], "no areas in"),
        (lambda t: ["--at", "yesterday"], "--at: time 'yesterday'"),
        (lambda t: ["--at", "2099-01-01"], "--at 2099-01-01: in the future; give now or a time"),
        (lambda t: ["--dir", str(t)], "no registry at {t}/registry.toml: no area is defined"),
        (
            lambda t: ["--at", "2026-03-29T02:30", "--dir", _area_stack(t, _STREET)],
            "--at 2026-03-29T02:30: no such time in Europe/Amsterdam (the clocks skipped it)",
        ),
        (
            lambda t: ["--at", "2026-10-25T02:30", "--dir", _area_stack(t, _STREET)],
            "--at 2026-10-25T02:30: happens twice in Europe/Amsterdam (the clocks went back): "
            "add which, 2026-10-25T02:30+02:00 or 2026-10-25T02:30+01:00",
        ),
    ],
    "crowd alerts": [
        (
            lambda t: ["--area", "plein", "--dir", _area_stack(t, _STREET), "--store", _alerts(t)],
            "--area plein: no such area in",
        ),
        (lambda t: ["--store", str(t / "none.sqlite")], "none.sqlite: no alert store there"),
        (
            lambda t: ["--store", _file(t, "a.sqlite", "not a database " * 100)],
            "a.sqlite: not an alert store",
        ),
        (lambda t: ["--store", str(t / "x"), "--from", "yesterday"], "--from: time 'yesterday'"),
        (lambda t: ["--dead-letters", "--pending"], "give --dead-letters or --pending, not both"),
    ],
    "crowd alerts check": [
        (lambda t: ["--from", "yesterday"], "--from: time 'yesterday': use 'now'"),
        (lambda t: ["--from", "now", "--to", "-1h"], "--from now is not before --to -1h"),
        (
            lambda t: [*_DAY_BEFORE, "--dir", _area_stack(t, _STREET)],
            "--from 2026-01-15 is not before --to 2026-01-14T22:30Z in area street's time zone "
            "(Europe/Amsterdam): give an earlier --from",
        ),
        (lambda t: ["--from", "-1d", "--dir", _area_stack(t)], "no areas in"),
        (
            lambda t: ["--from", "-1d", "--dir", _area_stack(t, _STREET), "--area", "plein"],
            "--area plein: no such area in",
        ),
    ],
    "crowd alerts subscriber add": [
        (
            lambda t: ["no/slash", "--dir", str(t / "st")],
            "invalid account name 'no/slash': use lower-case letters a-z, digits",
        ),
        (lambda t: ["ingest", "--dir", str(t / "st")], "'ingest' is the name of a reading account"),
        (lambda t: ["gate-1", "--dir", _area_stack(t)], "'gate-1' is already a device"),
        (
            lambda t: ["control-room", "--dir", _area_stack(t, _SUBSCRIBER)],
            "alert subscriber 'control-room' already exists (--rotate gives it a new password",
        ),
        (
            lambda t: ["cr", "--dir", str(t / "st"), "--password-file", str(t)],
            "'--password-file': File '{t}' is a directory",
        ),
        (lambda t: ["cr", "--dir", _stack_with_bad_registry(t)], "registry.toml: not valid TOML"),
        (
            lambda t: ["cr", "--dir", str(t / "st"), "--password-file", _file(t, "f", "") + "/pw"],
            "--password-file {t}/f/pw: cannot write it",
        ),
        (
            lambda t: ["cr", "--dir", _area_stack(t), "--password-file", _file(t, "pw", "old\n")],
            "--password-file {t}/pw: exists (another account's password?); give a new file",
        ),
    ],
    "crowd alerts subscriber list": [
        (lambda t: ["--dir", str(t / "st")], "no registry at {t}/st/registry.toml: give --dir"),
        (lambda t: ["--dir", _stack_with_bad_registry(t)], "registry.toml: not valid TOML"),
    ],
    "crowd alerts subscriber remove": [
        (
            lambda t: ["pager", "--dir", _area_stack(t, _SUBSCRIBER)],
            "pager: no such alert subscriber in {t}/st/registry.toml (subscribers: control-room)",
        ),
        (lambda t: ["pager", "--dir", str(t / "st")], "no registry at {t}/st/registry.toml"),
    ],
    "quality neighbours": [
        (lambda t: ["--from", "yesterday"], "--from: time 'yesterday': use 'now', a relative"),
        (lambda t: ["--from", "now", "--to", "-1h"], "--from now is not before --to -1h"),
        (
            lambda t: [
                "--quality-config",
                _file(t, "q.toml", "[quality.neighbours]\nradius = 3000\n"),
            ],
            "quality.neighbours.radius (line 2): unknown key; did you mean 'radius_m'?",
        ),
        (
            lambda t: ["--dir", str(t / "st")],
            "no device in the register",
        ),
    ],
    "query counts": [
        (lambda t: ["--source", "telraam"], "--source: unknown source 'telraam': use one of"),
        (lambda t: ["--flag", "stuk"], "--flag: unknown flag 'stuk'; did you mean 'stuck'?"),
        (lambda t: ["--flags", "some"], "Invalid value for '--flags'"),
        (lambda t: ["--every", "5 minutes"], "--every 5 minutes: use an interval from 1m to 1d"),
        (lambda t: ["--every", "2d"], "--every 2d: use an interval from 1m to 1d"),
        (lambda t: ["--every", "30s"], "--every 30s: use an interval from 1m to 1d"),
        (lambda t: ["--from", "now", "--to", "-1h"], "--from now is not before --to -1h"),
        (lambda t: ["--from", "-1h", "--to", "-1h"], "are the same time: give a later --to"),
        (lambda t: ["--from", "yesterday"], "--from: time 'yesterday': use 'now'"),
        (lambda t: ["--to", "2026-11-01T00:00:00"], "--to: time '2026-11-01T00:00:00' has no UTC"),
        (lambda t: ["--from", "-99999999999d"], "too far back"),
        (lambda t: ["--from", "1500-01-01"], "between 1677 and 2262"),
        (lambda t: ["--class", "cyclists"], "--class cyclists: not a class sensorpipe counts; did"),
        (lambda t: ["--direction", "Left to right"], "--direction 'Left to right': direction"),
        (lambda t: ["--max-points", "0"], "0 is not in the range x>=1"),
        (lambda t: ["--format", "xml"], "'xml' is not one of 'table', 'csv', 'json'"),
        (lambda t: ["--dir", str(t)], "no stack in"),
        (
            lambda t: ["--influx-url", "http://127.0.0.1:9"],
            "InfluxDB at http://127.0.0.1:9 unreachable",
        ),
    ],
    "import sensor-community": [
        (lambda t: [], "Missing argument 'FILES...'"),
        (lambda t: [str(t / "none.csv")], "{t}/none.csv: no such file"),
        (lambda t: [str(t)], "is a directory, not a file"),
        (lambda t: [_file(t, "e.csv", "")], "e.csv: is empty"),
        (
            lambda t: [_file(t, "o.csv", "createdAt,value\n2024-01-01T00:00:00Z,1\n")],
            "o.csv: not a Sensor.Community archive CSV: expected a header starting "
            "sensor_id;sensor_type;location;lat;lon;timestamp;P1",
        ),
        (lambda t: [_sample(SC), "--dir", str(t)], "no stack in"),
        (lambda t: [_sample(SC), "--site", "a;b"], "--site 'a;b': use letters"),
        (lambda t: [_sample(SC), "--site", "a", "--device", "d1"], "give --site or --device"),
        (lambda t: [_sample(SC), "--device", "D 1"], "--device 'D 1': not a device id"),
        (lambda t: [_sample(SC), "--user", "a\nb"], "--user 'a\\nb': give a name of 1 to 100"),
        (lambda t: [_sample(SC), "--batch-size", "5"], "5 is not in the range 100<=x<=100000"),
        (
            lambda t: [_sample(SC), "--device", "kit-9", "--dir", str(t), "--influx-url", "x"],
            "--device kit-9: no such device in",
        ),
        (
            lambda t: [_sample(SC), "--dir", str(t), "--influx-url", "http://127.0.0.1:9"],
            "InfluxDB at http://127.0.0.1:9 does not answer: nothing imported",
        ),
    ],
    "import opensensemap": [
        (lambda t: [_sample("5f0a1b2c3d4e5f6a7b8c9d0e.csv")], "give --quantity, one of pm1"),
        (lambda t: [_sample(SC), "--quantity", "pm2_5"], "expected a CSV header with createdAt"),
        (lambda t: [_sample(SC), "--quantity", "pm25"], "'pm25' is not one of 'pm1'"),
        (lambda t: [_sample(SC), "--box", "a/b"], "--box 'a/b': an openSenseMap box id"),
        (lambda t: [_sample(SC), "--sensor", "SDS 011"], "--sensor 'SDS 011': use letters"),
        (
            lambda t: [_file(t, "b.json", "[1, 2]"), "--quantity", "pm2_5"],
            "b.json: not an openSenseMap measurement download: expected a JSON array",
        ),
    ],
    "import telraam": [
        (lambda t: [_sample(SC)], "not a Telraam traffic export: it lacks"),
        (lambda t: [_file(t, "t.json", "{")], "t.json: not valid JSON"),
        (lambda t: [_sample(SC), "--direction-names", "lft"], "give two different direction"),
        (lambda t: [_sample(SC), "--direction-names", "a,a"], "give two different direction"),
        (lambda t: [_sample(SC), "--segment", "abc"], "--segment 'abc': a Telraam segment id"),
    ],
    "import track": [
        (lambda t: [_sample("ride-2024-05-04.csv")], "give --track-id NAME"),
        (
            lambda t: [RIDE, "--track-id", "b", "--quality-config", str(t / "q.toml")],
            "--quality-config {t}/q.toml: file not found",
        ),
        (
            lambda t: [
                RIDE,
                "--track-id",
                "b",
                "--quality-config",
                _file(t, "q.toml", "[quality]\nfog_rh = 101\n"),
            ],
            "q.toml: quality.fog_rh (line 2): 101: Input should be less than or equal to 100",
        ),
        (lambda t: [_sample(SC)], "not a track CSV"),
        (lambda t: [_sample(SC), "--track-id", "a b"], "--track-id 'a b': use letters"),
    ],
    "import csv": [
        (lambda t: [_sample(SC), "--time", "t", "--column", "a=pm2_5"], "give --device ID"),
        (
            lambda t: [_sample(SC), "--device", "d1", "--time", "t", "--column", "a"],
            "--column 'a': write HEADER=QUANTITY",
        ),
        (
            lambda t: [_sample(SC), "--device", "d1", "--time", "t", "--column", "a=pm25"],
            "'pm25' is no quantity; use one of pm1",
        ),
        (
            lambda t: [_sample(SC), "--device", "d1", "--time", "t", "--column", "n=pedestrian"],
            "--column 'n=pedestrian': for counts of passers-by write 'n=count:pedestrian'",
        ),
        (
            lambda t: [
                _file(t, "k.csv", "time,site,count\n2024-01-01T00:00:00Z,a,5\n"),
                "--time",
                "time",
                "--column",
                "count=count:pedestrian",
                "--device-column",
                "place",
            ],
            "holds 'place' (from --device-column); line 1 comes closest",
        ),
        (
            lambda t: [_sample(SC), "--device", "d1", "--time", "t", "--column", "a=pm2_5:mg/m3"],
            "unit 'mg/m3' cannot be converted to pm2_5's ug/m3",
        ),
        (
            lambda t: [*_logger(t), "--timezone", "Mars/Olympus"],
            "--timezone: 'Mars/Olympus' is no time zone",
        ),
        (
            lambda t: [*_logger(t), "--column", "PM2.5=pm2_5"],
            "pm2_5 given for more than one column",
        ),
        (
            lambda t: [
                _file(t, "l.csv", "time,pm\n2024-01-01T00:00:00,1\n"),
                "--device",
                "d1",
                "--time",
                "time",
                "--column",
                "PM2.5=pm2_5",
            ],
            "l.csv: no row in its first 200 lines holds 'PM2.5'",
        ),
        (
            lambda t: [*_logger(t)[:-2], "--time-format", "%Y-%m-%d"],
            "line 4: Time '8/1/2019 7:11' cannot be read as --time-format",
        ),
        (
            lambda t: [*_logger(t), "--dir", str(t), "--influx-url", "x"],
            "--device rt01: not registered in",
        ),
        # counts of passers-by (issue 29)
        (
            lambda t: [_sample(SC), "--device", "d1", "--time", "t", "--column", "n=count:walker"],
            "'walker' is no class of passers-by; use one of pedestrian",
        ),
        (
            lambda t: [
                _sample(SC),
                "--device",
                "d1",
                "--time",
                "t",
                "--column",
                "a=pm2_5",
                "--column",
                "n=count:pedestrian",
            ],
            "--column: counts (n) and quantities (a) in one import: import the file twice",
        ),
        (
            lambda t: [_sample(SC), "--device-column", "s", "--time", "t", "--column", "a=pm2_5"],
            "--device-column is for counts: give --column HEADER=count:CLASS",
        ),
        (
            lambda t: [
                _sample(SC),
                "--device",
                "d1",
                "--device-column",
                "s",
                "--time",
                "t",
                "--column",
                "n=count:pedestrian",
            ],
            "give --device or --device-column, not both",
        ),
        (
            lambda t: [
                _sample(SC),
                "--device-column",
                "s",
                "--device-prefix",
                "AKL",
                "--time",
                "t",
                "--column",
                "n=count:pedestrian",
            ],
            "--device-prefix 'AKL': use lower-case letters",
        ),
        (
            lambda t: [
                _file(t, "c.csv", "time_utc,count\n2024-01-01T00:00:00Z,3\n"),
                "--device-column",
                "site",
                "--time",
                "time_utc",
                "--column",
                "count=count:pedestrian",
            ],
            "c.csv: no row in its first 200 lines holds 'site'",
        ),
        # counts with a sites file (--locations)
        (
            lambda t: [
                _file(t, "one.csv", "time,count\n2024-01-01T00:00:00Z,5\n"),
                "--time",
                "time",
                "--column",
                "count=count:pedestrian",
                "--device",
                "d",
                "--locations",
                _file(t, "sites.csv", "Address,Lat,Lon\na,1,2\n"),
            ],
            "--locations {t}/sites.csv: it places the devices --device-column names",
        ),
        (
            lambda t: _counts_with_sites(t, "Address,X,Y\na,1,2\n"),
            "--locations {t}/sites.csv: no latitude (lat) and no longitude (lon, lng, long) "
            "column among its headers Address, X, Y",
        ),
        (
            lambda t: _counts_with_sites(t, "Address,Latitude,Longitude\na,-36.8,174.7\nb,x,1\n"),
            "--locations {t}/sites.csv line 3: Latitude 'x' is not a number",
        ),
        (
            lambda t: _counts_with_sites(t, "Address,Latitude,Longitude\na,-96.8,174.7\n"),
            "--locations {t}/sites.csv line 2: Latitude -96.8 is out of range (-90 to 90",
        ),
        (
            lambda t: _counts_with_sites(t, "site,lat,lon\na,1,2\na,1,2\n"),
            "--locations {t}/sites.csv line 3: 'a' given twice (line 2 first)",
        ),
        (
            lambda t: [*_counts_with_sites(t, "")[:-1], str(t / "none.csv")],
            "--locations {t}/none.csv: no such file",
        ),
    ],
    "import list": [(lambda t: ["--dir", _bad_ledger(t)], "not the stack's ledger of imported")],
    "import remove": [
        (lambda t: ["abc", "--dir", str(t / "st")], "no file has been imported into this stack"),
        (lambda t: ["abc", "--dir", _empty_ledger(t)], "abc: neither a file nor a sha256"),
        (lambda t: ["0123abcd", "--dir", _empty_ledger(t)], "no imported file's sha256 starts"),
        (lambda t: [_file(t, "f.csv", "a"), "--dir", _empty_ledger(t)], "was never imported"),
        (lambda t: ["--dir", _bad_ledger(t), "abcdefab"], "not the stack's ledger of imported"),
    ],
    "import reference airnowtech": [
        (lambda t: [_sample(SC)], "not an AirNow-Tech export: its header lacks Agency, Site"),
    ],
    "import reference luchtmeetnet": [
        (lambda t: [_sample(SC)], "not a Luchtmeetnet /measurements answer: expected"),
        (
            lambda t: [
                _file(
                    t,
                    "p.json",
                    '{"data": [{"formula": "NO2", "value": 1, '
                    '"timestamp_measured": "2024-01-01T00:00:00+00:00"}]}',
                )
            ],
            "p.json: its measurements name no station_number",
        ),
        (
            lambda t: [_sample(SC), "--station", _file(t, "station.json", "{}")],
            "station.json: name the file after the station number",
        ),
    ],
    "import reference eea": [
        (lambda t: [_sample(SC)], "not an EEA air-quality download CSV: expected the e-Reporting"),
    ],
    "crowd backtest": [
        (lambda t: _backtest(t, counts=None), "give --device or --area (or --counts-csv FILE)"),
        (lambda t: _backtest(t, "--device", "a", "--area", "b"), "not both"),
        (
            lambda t: _backtest(t, "--dir", str(t), "--area", "a", counts=None),
            "no registry at {t}/registry.toml: no area is defined there; give --dir",
        ),
        (lambda t: _backtest(t, "--device", "d1", counts=None), "(or pass --influx-url)"),
        (lambda t: _backtest(t, "--horizon", "90m"), "--horizon '90m': give hours ahead as 1h"),
        (lambda t: _backtest(t, "--horizon", "13h"), "--horizon '13h': give hours ahead"),
        (lambda t: _backtest(t, "--horizon", "01h"), "--horizon 01h: given twice (as 1h)"),
        (lambda t: _backtest(t, "--out", str(t / "no" / "f.csv")), "--out {t}/no/f.csv: no folder"),
        (lambda t: _backtest(t, "--out", str(t)), "File '{t}' is a directory"),
        (lambda t: _backtest(t, "--timezone", "Mars/Base"), "--timezone 'Mars/Base': not a"),
        (lambda t: _backtest(t, "--country", "XX"), "--country 'XX': public holidays: Country"),
        (lambda t: _backtest(t, "--subdiv", "ZZZ"), "--subdiv 'ZZZ': public holidays"),
        (lambda t: _backtest(t, "--from", "2023-12-01"), "--from 2023-12-01: before --train-"),
        (lambda t: _backtest(t, "--to", "2024-01-02"), "--to 2024-01-02: not after --from"),
        (lambda t: _backtest(t, "--train-from", "2024-05-01"), "--train-from 2024-05-01: not"),
        (lambda t: _backtest(t, "--train-until", "2024-01-01T10:30"), "not on the hour"),
        (lambda t: _backtest(t, "--train-until", "soon"), "--train-until 'soon': not a date"),
        (lambda t: _backtest(t, "--exclude-training", "2020-05-01"), "give FROM/TO local dates"),
        (lambda t: _backtest(t, "--counts-csv", str(t / "none.csv")), "none.csv: cannot read it"),
        (lambda t: _backtest(t, counts="2024-01-01T00:00:00Z,a,many"), "line 2: count 'many'"),
        (lambda t: _backtest(t, counts="2024-01-01,a"), "line 2: 2 columns, expected 3"),
        (lambda t: _backtest(t, "--device", "b"), "c.csv: no counts of b in it"),
        (lambda t: _backtest(t), "no counts from 2024-01-01T11:00:00Z on"),
        (
            lambda t: _backtest(t, counts="2024-01-01T00:00:00Z,a,5\n2024-01-01T12:00:00Z,a,5"),
            "only 0 hours with counts to train on for 1 h ahead (100 at least) before "
            "--train-until",
        ),
        (lambda t: _backtest(t, "--size", "huge"), "'huge' is not one of 'small', 'default'"),
        (lambda t: _backtest(t, "--leaves", "1"), "1 is not in the range x>=2"),
    ],
    "crowd train": [
        (lambda t: _train(), "give --device or --area"),
        (lambda t: _train("--device", "a", "--area", "b"), "give --device or --area, not both"),
        (
            lambda t: _train("--dir", str(t), "--area", "plein"),
            "no registry at {t}/registry.toml: no area is defined there; give --dir",
        ),
        (
            lambda t: _train("--dir", _area_stack(t, _STREET), "--area", "plein"),
            "--area plein: no such area",
        ),
        (lambda t: _train("--device", "a", "--horizon", "13h"), "--horizon '13h': give hours"),
        (lambda t: _train("--device", "a", "--timezone", "Mars/Base"), "--timezone 'Mars/Base'"),
        (lambda t: _train("--device", "a", "--country", "XX"), "--country 'XX': public holidays"),
        (lambda t: _train("--device", "a", "--train-from", "2024-05-01"), "--train-from 2024-05"),
        (lambda t: _train("--device", "a", "--train-until", "soon"), "--train-until 'soon'"),
        (lambda t: _train("--dir", str(t), "--device", "d1"), "(or pass --influx-url)"),
        (
            lambda t: ["--train-until", "2024-01-02", "--device", "a"],
            "give --timezone and --country: the counters' local time",
        ),
        (
            lambda t: _train("--dir", _area_stack(t, _STREET), "--area", "street"),
            "--timezone Pacific/Auckland: area street is set to Europe/Amsterdam in the registry; "
            "leave --timezone out to use the area's",
        ),
        (lambda t: _train("--device", "a", "--train-until", "-3x"), "not a date, ISO 8601 time"),
        (
            lambda t: _train("--device", "a", "--train-until", "2099-01-01"),
            "--train-until 2099-01-01: after the last hour that has ended",
        ),
        (
            lambda t: [
                "--train-until",
                "2024-01-02",
                "--area",
                "empty",
                "--influx-url",
                "http://127.0.0.1:9",
                "--dir",
                _area_stack(t, _EMPTY_POLYGON),
            ],
            "area empty has no counting devices: its polygon holds none with a location",
        ),
        (
            lambda t: _train("--area", "a", "--registry", str(t / "r.toml")),
            "--registry {t}/r.toml: cannot read the device register",
        ),
        (
            lambda t: _train("--area", "a", "--registry", _file(t, "r.toml", "")),
            "--area a: no such area in {t}/r.toml",
        ),
        (lambda t: _train("--device", "a", "--size", "huge"), "'huge' is not one of 'small'"),
        (lambda t: _train("--device", "a", "--trees", "0"), "0 is not in the range x>=1"),
    ],
    "crowd models": [
        (lambda t: ["--models", str(t / "none")], "{t}/none: no models folder: train a model"),
        (lambda t: ["--models", _file(t, "f", "x")], "Directory '{t}/f' is a file"),
    ],
    "crowd forecast": [
        (lambda t: [], "give --device or --area"),
        (lambda t: ["--device", "a", "--area", "b"], "give --device or --area, not both"),
        (
            lambda t: ["--device", "d1", "--models", str(t / "m")],
            "--device d1: no model trained in {t}/m: run `sensorpipe crowd train --device d1",
        ),
        (lambda t: ["--device", "d1", "--models", _bad_model(t)], "model.json: not a saved model"),
        (
            lambda t: ["--device", "nobody", "--models", str(t / "m"), "--dir", _area_stack(t)],
            "--device nobody: no such device in the registry, and no model in {t}/m",
        ),
    ],
    "count-eval": [
        (lambda t: ["--conditions", "fog"], "fog"),
        (lambda t: ["--model", str(t / "none.onnx")], "model file {t}/none.onnx not found"),
        (lambda t: ["--video", _file(t, "v.avi", "")], "--video needs --truth and --line"),
    ],
    "count-video": [
        (lambda t: [str(t / "none.avi"), "--line", "0.5,0,0.5,1"], "video file"),
        (lambda t: [_file(t, "v.avi", ""), "--line", "0.5,0"], "expected four numbers"),
        (lambda t: [_file(t, "v.avi", ""), "--line", "nan,0,0.5,1"], "expected four numbers"),
        (
            lambda t: [_file(t, "v.avi", ""), "--line", "0,0,1,1", "--model", str(t / "m.onnx")],
            "model file {t}/m.onnx not found",
        ),
    ],
    "demo": [
        (lambda t: ["--devices", "0"], "0 is not in the range 1<=x<=200"),
        (lambda t: ["--duration", "soon"], "'soon' is not a valid float"),
    ],
    "serve": [(lambda t: ["--config", str(t / "none.toml")], "none.toml: file not found")],
    "serve token": [(lambda t: ["extra"], "Got unexpected extra argument (extra)")],
    "config example": [(lambda t: ["printer"], "'printer' is not one of 'edge'")],
    "server setup": [
        (lambda t: ["--root", str(t), "--tls-cert", _file(t, "c.pem", "")], "give both"),
        (
            lambda t: [
                "--root",
                str(t),
                "--tls-cert",
                _file(t, "c.pem", "x"),
                "--tls-key",
                "c.pem",
            ],
            "--tls-cert {t}/c.pem: not a PEM file with a certificate",
        ),
        (lambda t: ["--root", str(t), "--public-host", "a b"], "--public-host 'a b': not a host"),
        (lambda t: ["--root", str(t), "--api-port", "1883"], "the ports must differ"),
        (lambda t: ["--root", str(t), "--influx-url", "localhost:8086"], "--influx-url 'local"),
    ],
}


def _leaf_commands(group: click.Group, prefix: str = "") -> set[str]:
    # list_commands/get_command, not .commands: the top-level group imports its groups lazily.
    ctx = click.Context(group)
    out: set[str] = set()
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            out |= _leaf_commands(command, path + " ")
            if command.invoke_without_command:  # runs on its own too (`crowd alerts`)
                out.add(path)
        else:
            out.add(path)
    return out


def test_every_command_has_bad_input_cases() -> None:
    assert _leaf_commands(main) == set(CASES)


def assert_one_line_error(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(main, args)
    output = result.output
    assert result.exit_code != 0, (args, output)
    assert isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, (args, output)
    # What is printed besides the error is click's usage hint, nothing else.
    others = [
        line
        for line in output.splitlines()
        if line and not line.startswith(("Error: ", "Usage: ", "Try '"))
    ]
    assert others == [], (args, output)
    assert expected in errors[0], (args, output)


@pytest.mark.parametrize(
    ("command", "index"), [(c, i) for c, cases in CASES.items() for i in range(len(cases))]
)
def test_bad_input_gets_one_readable_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, index: int
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing written into the checkout
    monkeypatch.setenv("SENSORPIPE_DIR", str(tmp_path / "no-stack"))
    build, expected = CASES[command][index]
    args = [*command.split(), *build(tmp_path)]
    assert_one_line_error(args, expected.replace("{t}", str(tmp_path)))


def test_ingest_replay_says_so_when_influxdb_does_not_answer(tmp_path: Path) -> None:
    config = _ingest_config(tmp_path)
    with (tmp_path / "ingest.toml").open("a") as f:
        f.write('[influx]\nurl = "http://127.0.0.1:9"\ntimeout_s = 1\n')
    store = DeadLetterStore(tmp_path / "dl.sqlite")
    store.add_many([DeadLetter(1.0, "sensorpipe/v1/d1/air", b"{}", "unknown_device", "x")])
    store.close()
    assert_one_line_error(
        ["ingest", "replay", "--config", config],
        "InfluxDB at http://127.0.0.1:9 does not answer: nothing replayed",
    )
    store = DeadLetterStore(tmp_path / "dl.sqlite")
    assert store.count() == 1  # still there
    store.close()


def test_ingest_run_refuses_a_metrics_port_in_use_before_connecting(
    tmp_path: Path, listening_port: int
) -> None:
    config = _ingest_config(tmp_path, metrics_port=str(listening_port))
    assert_one_line_error(
        ["ingest", "run", "--config", config],
        f"metrics_port {listening_port} on 127.0.0.1 cannot be used (Address already in use)",
    )


def test_devices_add_notes_a_sensor_no_driver_reads(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["devices", "add", "kit-1", "--dir", str(tmp_path), "--sensor", "hpma115"]
    )
    assert result.exit_code == 0, result.output
    assert "note: --sensor hpma115: the sensorpipe edge agent has no driver for it" in (
        result.output
    )
    quiet = CliRunner().invoke(
        main, ["devices", "add", "pi-1", "--dir", str(tmp_path), "--sensor", "sds011"]
    )
    assert quiet.exit_code == 0 and "note: --sensor" not in quiet.output


def test_query_with_an_option_first_is_query_air() -> None:
    """`sensorpipe query --agg max` (scripts written before `query counts`) runs `query air`."""
    assert_one_line_error(["query", "--agg", "max"], "--agg max needs --every")
    assert_one_line_error(["query", "--quantity", "pm25"], "did you mean 'pm2_5'?")
    listing = CliRunner().invoke(main, ["query", "--help"])
    assert listing.exit_code == 0
    assert "air " in listing.output and "counts " in listing.output


def test_junk_chip_ids_and_sensor_models_do_not_enter_the_register(tmp_path: Path) -> None:
    """`--chip-id abc` and `--sensor sds012` are refused and register nothing; chip ids in the
    forms kits show them (decimal, esp8266-<n>, esp32-<hex>) and a declared unknown model are
    taken."""
    from sensorpipe.protocol.registry import load_registry

    d = tmp_path / "st"
    runner = CliRunner()
    for args in (
        ["devices", "add-kit", "airrohr", "--chip-id", "abc"],
        ["devices", "add", "x", "--sensor", "sds012"],
        ["devices", "add-kit", "airrohr", "--chip-id", "77", "--sensor", "sds012"],
    ):
        result = runner.invoke(main, [*args, "--dir", str(d)])
        assert result.exit_code == 1, result.output
        assert not (d / "registry.toml").exists() or not load_registry(d / "registry.toml").devices
    for chip, stored in (
        ("esp8266-4242", "4242"),
        ("esp32-A1B2C3", "a1b2c3"),
        ("7", "7"),
        ("0042", "42"),  # the firmware sends esp8266id without leading zeros
    ):
        ok = runner.invoke(
            main, ["devices", "add-kit", "airrohr", "--chip-id", chip, "--dir", str(d)]
        )
        assert ok.exit_code == 0, ok.output
        assert load_registry(d / "registry.toml").devices[f"airrohr-{stored}"].chip_id == stored
    other = runner.invoke(
        main, ["devices", "add", "y", "--sensor", "xyz9", "--allow-unknown-sensor", "--dir", str(d)]
    )
    assert other.exit_code == 0, other.output
    assert "not a model sensorpipe knows" in other.output  # said, not refused
    assert load_registry(d / "registry.toml").devices["y"].sensors == ["xyz9"]
