"""`edge check` names each PMS5003 fault in one line: the real driver against the simulator on a
pty (no answer, a checksum storm, a value beyond the data sheet's range, and a healthy one)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.edge.check import FAIL, OK, Check, Probes, check_sensor
from sensorpipe.edge.drivers.registry import Pms5003Config, open_driver, sensor_tag
from sensorpipe.firmware_sim.pms5003 import ChecksumBursts, Pms5003Device, Pms5003Simulator
from sensorpipe.process import free_port
from sensorpipe.protocol.signing import generate_keypair


def _silent(dev: Pms5003Device) -> None:
    dev.go_silent(3600)


def _storm(dev: Pms5003Device) -> None:
    dev.checksum_bursts = ChecksumBursts(every=1, length=1)


def _out_of_range(dev: Pms5003Device) -> None:
    dev.out_of_range = True


def _check(fault: Callable[[Pms5003Device], None] | None) -> Check:
    dev = Pms5003Device(read_pm=lambda: (11.0, 17.0), warmup_s=0.0)
    if fault is not None:
        fault(dev)
    with Pms5003Simulator(dev) as sim:
        config = Pms5003Config(driver="pms5003", port=sim.port, timeout_s=1.0)
        check, ok = check_sensor(config, Probes())
    assert ok == (check.status == OK)
    assert "\n" not in check.line()
    assert check.detail.startswith(f"{sim.port}: ")
    return check


def test_a_pms5003_that_answers_shows_its_values() -> None:
    check = _check(None)
    assert check.status == OK and "pm2_5 11, pm10 17" in check.detail
    assert "particles_0_3 17.5" in check.detail
    # Read as its laser started: the line says these values are not ones the agent keeps.
    assert "the first 30 s are unstable, so the agent discards them" in check.detail


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        (_silent, "no answer (no answer to command 0xe1 within 1.0 s): check the wiring"),
        # How many: 1, or 2 when an active-mode frame (the sensor's power-up mode) came before
        # the driver set passive mode; the machine's load decides.
        (_storm, " malformed frames (on a Pi, the mini-UART /dev/ttyS0 garbles them"),
        (_out_of_range, "implausible reading: pm2_5 = 4000.0 ug/m3 is outside the plausible"),
    ],
)
def test_each_pms5003_fault_is_named_in_one_line(
    fault: Callable[[Pms5003Device], None], named: str
) -> None:
    check = _check(fault)
    assert check.status == FAIL
    assert named in check.detail


def test_edge_check_names_a_silent_pms5003_in_one_line(tmp_path: Path) -> None:
    private, _ = generate_keypair()
    dev = Pms5003Device(warmup_s=0.0)
    dev.go_silent(3600)
    with Pms5003Simulator(dev) as sim:
        config = tmp_path / "edge.toml"
        config.write_text(
            f'device_id = "pi-1"\nprivate_key = "{private}"\n'
            f'outbox_path = "{tmp_path / "outbox.sqlite"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\nusername = "pi-1"\n'
            f'password = "x"\ntls = false\n'
            f'[[sensors]]\ndriver = "pms5003"\nport = "{sim.port}"\ntimeout_s = 1.0\n'
        )
        result = CliRunner().invoke(main, ["edge", "check", "--config", str(config)])
    assert result.exit_code != 0
    (line,) = [x for x in result.output.splitlines() if "pms5003" in x]
    assert line.startswith("FAIL  pms5003") and f"{sim.port}: timeout: no answer (" in line
    assert "check the wiring and the sensor's power" in line
    assert "Traceback" not in result.output


def test_a_pms7003_is_read_and_named_as_registered() -> None:
    dev = Pms5003Device(read_pm=lambda: (5.0, 6.0), variant="pms7003", warmup_s=0.0)
    dev.go_silent(3600)
    with Pms5003Simulator(dev) as sim:
        config = Pms5003Config(driver="pms5003", model="pms7003", port=sim.port, timeout_s=1.0)
        assert sensor_tag(config) == "pms7003"
        check, ok = check_sensor(config, Probes())
        assert not ok and check.name == "pms7003"
        assert check.detail == (
            f"{sim.port}: timeout: no answer (no answer to command 0xe1 within 1.0 s): "
            "check the wiring and the sensor's power"
        )
        dev.silent_until = 0.0
        driver = open_driver(config)
        try:
            assert driver.model == "pms7003" and driver.read()["pm10"] == 6
        finally:
            driver.close()


def test_two_pms5003s_on_one_device_each_have_their_own_tag_and_laser_count(
    tmp_path: Path,
) -> None:
    from sensorpipe.edge.drivers.registry import duty_cycle
    from sensorpipe.edge.duty import LaserHours

    north = Pms5003Config(driver="pms5003", port="/dev/ttyUSB0", sensor="pms5003.north")
    south = Pms5003Config(driver="pms5003", port="/dev/ttyUSB1")
    assert (sensor_tag(north), sensor_tag(south)) == ("pms5003.north", "pms5003")
    hours = LaserHours(tmp_path / "laser-hours.json")
    a, b = duty_cycle(north, hours), duty_cycle(south, hours)
    assert a is not None and b is not None
    assert a.model == b.model == "pms5003" and a.key != b.key
