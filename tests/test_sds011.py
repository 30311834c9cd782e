"""SDS011: the frame codec, and the real driver against the byte-level simulator on a pty."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorpipe.edge.drivers.sds011 import DATA, FrameReader, Sds011, command, pm_from_frame
from sensorpipe.edge.errors import SensorConfigError, SensorError
from sensorpipe.firmware_sim.sds011 import Sds011Device, Sds011Simulator

# Data frame from the datasheet's example: PM2.5 = 0x04D4 / 10, PM10 = 0x0A3A / 10, id A160.
DATASHEET_FRAME = bytes.fromhex("AAC0D4043A0AA1601DAB")


def test_datasheet_frame_decodes() -> None:
    reader = FrameReader()
    (frame,) = reader.feed(DATASHEET_FRAME)
    assert frame.kind == DATA
    assert pm_from_frame(frame) == (123.6, 261.8)
    assert reader.frames_bad == 0


def test_commands_match_the_datasheet_bytes() -> None:
    assert command(2, 1, 1) == bytes.fromhex("AAB4020101" + "00" * 10 + "FFFF02AB")
    assert command(4) == bytes.fromhex("AAB404" + "00" * 12 + "FFFF02AB")
    assert command(6, 1, 0) == bytes.fromhex("AAB40601" + "00" * 11 + "FFFF05AB")
    assert len(command(7)) == 19


def test_bad_checksum_is_counted_and_skipped() -> None:
    corrupt = bytearray(DATASHEET_FRAME)
    corrupt[2] ^= 0x01
    reader = FrameReader()
    frames = reader.feed(bytes(corrupt) + DATASHEET_FRAME)
    assert [pm_from_frame(f) for f in frames] == [(123.6, 261.8)]
    assert reader.frames_bad == 1


def test_truncated_frame_then_good_frame() -> None:
    reader = FrameReader()
    assert reader.feed(DATASHEET_FRAME[:5]) == []  # incomplete: wait for more bytes
    frames = reader.feed(DATASHEET_FRAME)
    assert len(frames) == 1 and reader.frames_bad == 1


def test_garbage_and_split_delivery() -> None:
    reader = FrameReader()
    stream = b"\x00\x13\xab" + DATASHEET_FRAME + b"\xaa" + DATASHEET_FRAME
    frames = [f for i in range(len(stream)) for f in reader.feed(stream[i : i + 1])]
    assert len(frames) == 2


def test_simulator_answers_like_the_datasheet() -> None:
    dev = Sds011Device(read_pm=lambda: (123.6, 261.8), device_id=0xA160)
    assert dev.receive(command(4)) == DATASHEET_FRAME
    reply = dev.receive(command(6, 1, 0))  # sleep
    assert reply == bytes.fromhex("AAC5060100" + "00A16008AB")
    assert dev.sleeping
    assert dev.receive(command(4)) == b""  # asleep: queries are ignored
    assert dev.receive(command(6, 1, 1))[3:5] == b"\x01\x01"
    bad = bytearray(command(4))
    bad[17] ^= 0xFF
    assert dev.receive(bytes(bad)) == b""  # corrupt command ignored


def test_driver_reads_through_a_real_serial_port() -> None:
    dev = Sds011Device(read_pm=lambda: (12.3, 45.6))
    with Sds011Simulator(dev) as sim:
        driver = Sds011.open(sim.port, timeout_s=2.0)
        assert dev.query_mode  # the driver switched the sensor to query mode
        assert driver.read() == {"pm2_5": 12.3, "pm10": 45.6}
        assert driver.firmware_version() == "2018-11-16"
        driver.close()
        assert dev.sleeping  # closing puts the fan and laser to rest


def test_driver_counts_malformed_frames_and_keeps_reading() -> None:
    dev = Sds011Device(read_pm=lambda: (5.0, 7.0), bad_frame_rate=0.4, seed=3)
    with Sds011Simulator(dev) as sim:
        driver = Sds011.open(sim.port, timeout_s=0.3)
        ok = failed = 0
        for _ in range(30):
            try:
                assert driver.read() == {"pm2_5": 5.0, "pm10": 7.0}
                ok += 1
            except SensorError:
                failed += 1
        driver.close()
    assert dev.bad_frames_sent > 0
    assert ok > 0 and failed > 0
    assert driver.frames_bad > 0


def test_missing_port_is_a_config_error() -> None:
    with pytest.raises(SensorConfigError, match="/dev/ttyNOPE"):
        Sds011.open("/dev/ttyNOPE")


def test_an_unplugged_adapter_is_a_read_error_and_the_sensor_is_found_again(
    tmp_path: Path,
) -> None:
    # The port path is a link, like /dev/serial/by-id/...: it points at the adapter when present.
    link = tmp_path / "usb-sds011"
    first = Sds011Simulator(Sds011Device(read_pm=lambda: (1.0, 2.0)))
    first.start()
    link.symlink_to(first.port)
    driver = Sds011.open(str(link), timeout_s=0.5)
    assert driver.read() == {"pm2_5": 1.0, "pm10": 2.0}
    first.stop()  # unplugged: the pty's other end is gone
    link.unlink()
    with pytest.raises(SensorError, match=r"serial port lost|no answer"):
        driver.read()
    with pytest.raises(SensorError, match=r"not back yet|serial port lost"):
        driver.read()  # still away: a read error each time, never a crash
    second_device = Sds011Device(read_pm=lambda: (3.0, 4.0))
    with Sds011Simulator(second_device) as second:  # plugged in again
        link.symlink_to(second.port)
        assert driver.read() == {"pm2_5": 3.0, "pm10": 4.0}
        assert second_device.query_mode  # set up again after the power loss
        driver.close()
