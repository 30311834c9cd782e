"""Configuration files: the samples in config/ load, and errors name file, key and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sensorpipe.edge.config import load_edge_config
from sensorpipe.edge.counting.config import build_pipeline
from sensorpipe.edge.counting.errors import ModelError
from sensorpipe.edge.drivers.registry import Bme280Config, Sds011Config
from sensorpipe.gateway.mosquitto import BrokerFiles, acl_file, broker_config, password_file
from sensorpipe.ingest.config import load_ingest_config
from sensorpipe.protocol.configfile import ConfigError
from sensorpipe.protocol.registry import Registry, load_registry, save_registry
from sensorpipe.resources import EXAMPLE_CONFIG_DIR
from tests.helpers import one_line_config_error, throwaway_ca

CONFIG = EXAMPLE_CONFIG_DIR


def test_sample_edge_config_loads() -> None:
    config = load_edge_config(CONFIG / "edge.example.toml")
    assert config.device_id == "balcony-01"
    assert isinstance(config.sensors[0], Sds011Config) and config.sensors[0].port == "/dev/ttyUSB0"
    assert isinstance(config.sensors[1], Bme280Config) and config.sensors[1].address == 0x76
    assert config.location is not None and config.location.precision_decimals == 3


def test_sample_camera_config_loads_and_builds_its_pipeline() -> None:
    config = load_edge_config(CONFIG / "edge-camera.example.toml")
    assert config.sensors == [] and config.counting is not None
    assert config.counting.source.kind == "picamera2"
    pipeline = build_pipeline(config.counting, CONFIG)
    assert pipeline.detector.layout == "yolov8"
    assert pipeline.intervals.interval_s == 60


def test_counting_config_errors_are_named(tmp_path: Path) -> None:
    text = (CONFIG / "edge-camera.example.toml").read_text()
    path = tmp_path / "cam.toml"
    path.write_text(text.replace('car = "car"', 'car = "automobile"'))
    with pytest.raises(ConfigError, match="not count classes"):
        load_edge_config(path)
    path.write_text(text.replace('kind = "picamera2"', 'kind = "video"'))
    with pytest.raises(ConfigError, match="video source needs `path`"):
        load_edge_config(path)


def test_a_device_must_measure_something(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    key = "MKlQRRKv0efglPgRHbPORe6w7I2H1wO0SJ/+KeAlSYk="
    path.write_text(
        f'device_id = "d"\nprivate_key = "{key}"\n[mqtt]\nusername = "d"\npassword = "p"\n'
    )
    with pytest.raises(ConfigError, match="at least one"):
        load_edge_config(path)


def test_sample_ingest_config_loads_with_paths_relative_to_the_file() -> None:
    config = load_ingest_config(CONFIG / "ingest.example.toml")
    assert Path(config.registry_path) == CONFIG / "registry.example.toml"
    assert config.gateway_id == "utrecht-gw-1"


def test_sample_registry_loads_and_its_public_view_rounds_the_location() -> None:
    registry = load_registry(CONFIG / "registry.example.toml")
    (device,) = registry.public_view()
    assert device["device_id"] == "balcony-01"
    assert device["location"] == {"lat": 52.091, "lon": 5.106}
    assert "public_key" not in device and "password_hash" not in device


def test_misspelt_key_names_file_line_and_suggestion(tmp_path: Path) -> None:
    text = (
        (CONFIG / "edge.example.toml").read_text().replace("interval_s = 60", "intervall_s = 60", 1)
    )
    path = tmp_path / "edge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_edge_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "sensors.sds011.intervall_s" in message
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "intervall_s" in t)
    assert f"line {line}" in message
    assert "did you mean 'interval_s'" in message


def test_unknown_driver_and_bad_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        'device_id = "Bad Id"\nprivate_key = "x"\n[mqtt]\nusername = "u"\npassword = "p"\n'
        '[[sensors]]\ndriver = "sds012"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_edge_config(path)
    message = str(err.value)
    assert "device_id (line 1)" in message
    assert "sds012" in message and "sds011" in message


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("device_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_edge_config(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_edge_config(tmp_path / "missing.toml")


def test_registry_round_trip(tmp_path: Path) -> None:
    registry = load_registry(CONFIG / "registry.example.toml")
    save_registry(registry, tmp_path / "r.toml")
    assert load_registry(tmp_path / "r.toml") == registry
    assert load_registry(tmp_path / "absent.toml") == Registry()  # for those who create one
    with pytest.raises(ConfigError, match=r"absent\.toml: file not found"):
        load_registry(tmp_path / "absent.toml", must_exist=True)  # for those who only read it


def test_generated_mosquitto_files_lock_devices_to_their_topic(tmp_path: Path) -> None:
    registry = load_registry(CONFIG / "registry.example.toml")
    files = BrokerFiles(tmp_path / "m.conf", tmp_path / "passwd", tmp_path / "acl", tmp_path / "d")
    conf = broker_config(files, port=18830, dynsec_plugin=None)  # the acl_file fallback
    for line in (
        "allow_anonymous false",
        "persistence true",
        "max_queued_messages 100000",
        "max_queued_bytes 104857600",
        "listener 18830 127.0.0.1",
        f"acl_file {files.acl}",
    ):
        assert line in conf.splitlines()
    acl = acl_file(registry).splitlines()
    assert "pattern write sensorpipe/v1/%u/+" in acl
    assert acl[acl.index("user ingest") + 1 : acl.index("user ingest") + 3] == [
        "topic read sensorpipe/v1/#",
        "topic write sensorpipe/ack/v1/+",  # confirmations to devices
    ]
    # Devices read only their own confirmations.
    assert [line for line in acl if line.startswith("pattern read")] == [
        "pattern read sensorpipe/ack/v1/%u"
    ]
    assert password_file(registry).splitlines()[0].startswith("balcony-01:$7$")


def test_a_camera_config_without_a_model_counts_with_the_real_street_detector(
    tmp_path: Path,
) -> None:
    text = (CONFIG / "edge-camera.example.toml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith(("model =", "class_map ="))]
    path = tmp_path / "cam.toml"
    path.write_text("\n".join(lines) + "\n")
    config = load_edge_config(path)
    assert config.counting is not None and config.counting.classes is None
    pipeline = build_pipeline(config.counting, tmp_path)
    assert pipeline.detector.model_id.startswith("coco-nanodet-m-416@")
    assert len(pipeline.detector.class_names) == 80
    assert pipeline.class_map["bus"] == "heavy_vehicle"
    assert pipeline.detector.conf_threshold == 0.3  # the model's own, from its JSON file
    # A class map naming a class the model does not have is refused when the model is known.
    path.write_text(text.replace('bus = "heavy_vehicle"', 'tram = "heavy_vehicle"'))
    config = load_edge_config(path)
    assert config.counting is not None
    with pytest.raises(ModelError, match=r"class_map names \['tram'\]"):
        build_pipeline(config.counting, CONFIG)


def test_every_example_the_command_prints_loads_from_where_a_user_saves_it(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from sensorpipe.api.config import load_serve_config
    from sensorpipe.cli.main import main
    from sensorpipe.gateway.kits.config import load_gateway_config
    from sensorpipe.resources import EXAMPLE_CONFIGS

    # The registry before the ingest's configuration, which names it.
    loaders: dict[str, Callable[[Path], object]] = {
        "edge": load_edge_config,
        "edge-camera": load_edge_config,
        "registry": load_registry,
        "ingest": load_ingest_config,
        "serve": load_serve_config,
        "gateway": load_gateway_config,
    }
    assert set(loaders) == set(EXAMPLE_CONFIGS)
    for name, load in loaders.items():
        result = CliRunner().invoke(main, ["config", "example", name])
        assert result.exit_code == 0, result.output
        path = tmp_path / EXAMPLE_CONFIGS[name]  # the ingest example names the registry's
        path.write_text(result.output)
        assert load(path)
    camera = load_edge_config(tmp_path / EXAMPLE_CONFIGS["edge-camera"])
    assert camera.counting is not None
    # Saved anywhere, the camera example counts with the detector installed with the package.
    pipeline = build_pipeline(camera.counting, tmp_path)
    assert pipeline.detector.model_id.startswith("coco-nanodet-m-416@")


# --- the ingest's configuration: the files it names, and where a misplaced key belongs -------

INGEST = """registry_path = "registry.toml"
deadletter_path = "dl.sqlite"
metrics_bind = "127.0.0.1"

[broker]
password = "x"
tls = true
ca_file = "ca.pem"
"""


def _ca_pem() -> bytes:
    """A throw-away self-signed CA certificate (PEM)."""
    from cryptography.hazmat.primitives import serialization

    _, cert = throwaway_ca()
    return cert.public_bytes(serialization.Encoding.PEM)


def _ingest_files(tmp_path: Path, text: str = INGEST, *, registry: bool = True) -> Path:
    """`text` as ingest.toml in its own folder, with the registry and CA it names there."""
    folder = tmp_path / "etc"
    folder.mkdir(parents=True)
    if registry:
        save_registry(Registry(), folder / "registry.toml")
    (folder / "ca.pem").write_bytes(_ca_pem())
    path = folder / "ingest.toml"
    path.write_text(text)
    return path


def _one_line_error(path: Path) -> str:
    return one_line_config_error(load_ingest_config, path)


def test_ingest_paths_are_relative_to_the_file_the_ca_file_too(tmp_path: Path) -> None:
    path = _ingest_files(tmp_path)
    config = load_ingest_config(path)
    assert config.registry_path == str(path.parent / "registry.toml")
    assert config.broker.ca_file == str(path.parent / "ca.pem")


def test_an_ingest_whose_registry_is_missing_does_not_load(tmp_path: Path) -> None:
    # It used to start with an empty registry and reject every message as unknown_device.
    path = _ingest_files(tmp_path, INGEST.replace('"registry.toml"', '"registy.toml"'))
    message = _one_line_error(path)
    assert "registry_path (line 1)" in message
    assert f"{path.parent / 'registy.toml'} does not exist" in message


def test_a_missing_or_unusable_ca_file_is_named_with_its_key_and_line(tmp_path: Path) -> None:
    path = _ingest_files(tmp_path, INGEST.replace('"ca.pem"', '"certs/ca.pem"'))
    message = _one_line_error(path)
    assert "broker.ca_file (line 8)" in message
    assert f"{path.parent / 'certs' / 'ca.pem'} does not exist" in message
    (path.parent / "ca.pem").write_text("not a certificate\n")
    path.write_text(INGEST)
    assert "broker.ca_file (line 8): " in _one_line_error(path)
    assert "holds no PEM certificate" in _one_line_error(path)


def test_metrics_bind_must_be_an_ip_address(tmp_path: Path) -> None:
    # It used to be reported as "metrics_port ... is an ingest already running?".
    path = _ingest_files(tmp_path, INGEST.replace('"127.0.0.1"', '"999.1.1.1"'))
    message = _one_line_error(path)
    assert "metrics_bind (line 3)" in message and "'999.1.1.1' is not an IP address" in message
    path.write_text(INGEST.replace('"127.0.0.1"', '"::1"'))
    assert load_ingest_config(path).metrics_bind == "::1"


def test_a_key_in_the_wrong_section_points_to_the_right_one(tmp_path: Path) -> None:
    group = "k3v9Qx2LmN8pR4tZ7wYb"
    text = INGEST.replace("[broker]\n", f'shared_group = "{group}"\n\n[broker]\n')
    message = _one_line_error(_ingest_files(tmp_path, text))
    assert "shared_group (line 5): unknown key; did you mean [broker] shared_group?" in message


def test_a_top_level_key_put_in_a_section_points_to_the_top_level(tmp_path: Path) -> None:
    text = INGEST.replace('password = "x"\n', 'password = "x"\ngateway_id = "gw"\n')
    message = _one_line_error(_ingest_files(tmp_path, text))
    assert "broker.gateway_id (line 7): unknown key; did you mean gateway_id at the top level" in (
        message
    )


def test_a_key_of_two_sections_names_both_and_a_misspelling_still_gets_its_spelling(
    tmp_path: Path,
) -> None:
    text = 'registry_path = "registry.toml"\npassword = "x"\n[broker]\npassword = "x"\n'
    message = _one_line_error(_ingest_files(tmp_path, text))
    assert "did you mean [broker] password or [influx] password or [broker_admin] password?" in (
        message
    )
    text = 'registry_path = "registry.toml"\n[broker]\npasword = "x"\npassword = "x"\n'
    assert "did you mean 'password'?" in _one_line_error(_ingest_files(tmp_path / "again", text))


def test_the_same_misspelling_in_two_list_entries_names_each_line(tmp_path: Path) -> None:
    text = (CONFIG / "edge.example.toml").read_text().replace("interval_s = 60", "intervall_s = 60")
    path = tmp_path / "edge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_edge_config(path)
    lines = [i for i, t in enumerate(text.splitlines(), 1) if t.startswith("intervall_s")]
    assert len(lines) == 2
    message = str(err.value)
    assert f"sensors.sds011.intervall_s (line {lines[0]})" in message
    assert f"sensors.bme280.intervall_s (line {lines[1]})" in message


def test_a_missing_key_is_not_placed_on_another_section_s_line(tmp_path: Path) -> None:
    text = 'registry_path = "registry.toml"\n[broker]\nhost = "h"\n[influx]\npassword = "p"\n'
    message = _one_line_error(_ingest_files(tmp_path, text))
    assert "broker.password: Field required" in message  # no line: the file has none for it


def test_a_list_entry_without_a_line_is_counted_from_one() -> None:
    """Where the file has no line for a key (a text that is not the one validated), the
    entry is named as a person counts `[[sensors]]` blocks: the first is #1."""
    from sensorpipe.protocol.configfile import _key_line

    assert _key_line("", ["sensors", "0", "sds011", "port"], "no such port") == (
        "sensors.#1.sds011.port: no such port"
    )
    text = "[[sensors]]\ndriver = 'sds011'\n[[sensors]]\ndriver = 'bme280'\nbus = 9\n"
    assert _key_line(text, ["sensors", "1", "bme280", "bus"], "no bus 9") == (
        "sensors.bme280.bus (line 5): no bus 9"
    )


def test_pydantics_own_checks_say_the_value_given(tmp_path: Path) -> None:
    """`Input should be ...` names no value: the line puts the file's value before it."""
    from sensorpipe.ingest.config import load_ingest_config

    (tmp_path / "r.toml").write_text("")
    path = tmp_path / "ingest.toml"
    path.write_text(
        'registry_path = "r.toml"\n[broker]\npassword = "x"\n[alerts]\nwebhook_attempts = 0\n'
    )
    with pytest.raises(ConfigError) as err:
        load_ingest_config(path)
    assert str(err.value).endswith(
        "alerts.webhook_attempts (line 5): 0: Input should be greater than or equal to 1"
    )
