"""PMS5003/PMS7003: the frame codec against real bytes, the driver against the byte-level
simulator (in memory with a fake clock, and on a pty through pyserial), and every fault mode."""

from __future__ import annotations

import pytest

from sensorpipe.edge.drivers.pms5003 import (
    ACTIVE,
    CHANGE_MODE,
    PASSIVE,
    DataFrame,
    FrameReader,
    Pms5003,
    Reply,
    checksum,
    command,
)
from sensorpipe.edge.errors import SensorError, SensorIOError, SensorTimeout
from sensorpipe.firmware_sim.pms5003 import (
    OUT_OF_RANGE_PM,
    ChecksumBursts,
    Pms5003Device,
    Pms5003Simulator,
    frame_for,
)
from sensorpipe.protocol.messages import Reading
from sensorpipe.protocol.quantities import QUANTITIES

# A real PMSx003 frame (PyPMS docs hexdump; research28 §1.2): PM2.5 CF=1 8, atm 8, 210 particles
# > 0.3 µm per 0.1 L, word 13 = 97 00 (PMS7003), checksum 0x02C5.
REAL_FRAME = bytes.fromhex("424d001c00000008000800000008000800d20046002d001e00000000970002c5")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class LoopPort:
    """A serial port wired straight to a simulated device; time passes only on empty reads."""

    def __init__(self, device: Pms5003Device, clock: FakeClock) -> None:
        self.device = device
        self.clock = clock
        self.pending = bytearray()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.written.extend(data)
        self.pending.extend(self.device.receive(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self.pending:
            self.clock.t += 0.1
            period = self.device.active_period_s()
            if period is not None:  # active mode: the next frame comes by itself
                self.clock.t += period
                self.pending.extend(self.device.data_frame())
        out = bytes(self.pending[:size])
        del self.pending[:size]
        return out

    def reset_input_buffer(self) -> None:
        self.pending.clear()

    def close(self) -> None:
        self.closed = True


def _driver(device: Pms5003Device, clock: FakeClock, **kw: object) -> tuple[Pms5003, LoopPort]:
    port = LoopPort(device, clock)
    return Pms5003(port, clock=clock, **kw), port  # type: ignore[arg-type]


def _device(clock: FakeClock, **kw: object) -> Pms5003Device:
    return Pms5003Device(clock=clock, warmup_s=0.0, **kw)  # type: ignore[arg-type]


# --- bytes ----------------------------------------------------------------------------------
def test_real_frame_decodes_with_its_checksum() -> None:
    assert len(REAL_FRAME) == 32 and checksum(REAL_FRAME[:30]) == 0x02C5
    reader = FrameReader()
    (frame,) = reader.feed(REAL_FRAME)
    assert isinstance(frame, DataFrame)
    values = frame.values()
    assert values["pm2_5"] == 8 and values["pm1"] == 0 and values["pm10"] == 8
    assert values["particles_0_3"] == 2.10  # 210 per 0.1 L = 2.1 per cm³
    assert frame.reserved == 0x9700
    assert reader.frames_bad == 0


def test_atmospheric_values_are_read_not_cf1() -> None:
    words = [30, 60, 90, 20, 40, 50] + [0] * 6 + [0]
    (frame,) = FrameReader().feed(frame_for(words))
    assert isinstance(frame, DataFrame)
    assert (frame.values()["pm1"], frame.values()["pm2_5"], frame.values()["pm10"]) == (20, 40, 50)


def test_commands_match_the_documented_bytes() -> None:
    assert command(0xE1, 0) == bytes.fromhex("424DE100000170")  # passive
    assert command(0xE1, 1) == bytes.fromhex("424DE100010171")  # active
    assert command(0xE2) == bytes.fromhex("424DE200000171")  # read in passive mode
    assert command(0xE4, 0) == bytes.fromhex("424DE400000173")  # sleep
    assert command(0xE4, 1) == bytes.fromhex("424DE400010174")  # wake


def test_simulator_acknowledges_like_the_sensor() -> None:
    dev = _device(FakeClock())
    assert dev.receive(command(0xE1, 0)) == bytes.fromhex("424D0004E1000174")
    assert dev.receive(command(0xE1, 1)) == bytes.fromhex("424D0004E1010175")
    assert dev.receive(command(0xE4, 0)) == bytes.fromhex("424D0004E4000177")
    assert dev.receive(command(0xE4, 1)) == b""  # wake: no acknowledgement
    (ack,) = FrameReader().feed(bytes.fromhex("424D0004E1000174"))
    assert ack == Reply(CHANGE_MODE, PASSIVE)
    bad = bytearray(command(0xE1, 0))
    bad[-1] ^= 0xFF
    assert dev.receive(bytes(bad)) == b"" and dev.commands_ignored == 1


def test_bad_checksum_wrong_length_and_garbage_resync() -> None:
    corrupt = bytearray(REAL_FRAME)
    corrupt[7] ^= 0x01
    pms3003 = b"\x42\x4d\x00\x14" + bytes(22)  # a 24-byte frame this driver does not read
    stream = b"\x00\xff\x42" + bytes(corrupt) + pms3003 + b"\x13\x42" + REAL_FRAME
    reader = FrameReader()
    frames = [f for i in range(len(stream)) for f in reader.feed(stream[i : i + 1])]
    assert frames == [FrameReader().feed(REAL_FRAME)[0]]
    assert reader.frames_bad == 2


# --- driver and simulator -------------------------------------------------------------------
def test_passive_mode_reads_on_request_and_sleeps_on_close() -> None:
    clock = FakeClock()
    dev = _device(clock, read_pm=lambda: (12.0, 20.0), variant="pms7003")
    driver, port = _driver(dev, clock)
    assert dev.passive
    values = driver.read()
    assert values["pm2_5"] == 12 and values["pm10"] == 20 and values["pm1"] == 8
    assert port.written.endswith(command(0xE2))
    assert driver.reserved == 0x9700
    driver.close()
    assert dev.sleeping and port.closed


def test_active_mode_takes_the_next_frame() -> None:
    clock = FakeClock()
    dev = _device(clock, read_pm=lambda: (33.0, 40.0))
    driver, port = _driver(dev, clock, mode="active")
    assert not dev.passive
    assert driver.read()["pm2_5"] == 33
    assert command(0xE2) not in port.written


def test_sleep_and_wake() -> None:
    clock = FakeClock()
    dev = _device(clock)
    driver, _ = _driver(dev, clock)
    driver.sleep()
    assert dev.sleeping
    with pytest.raises(SensorError, match="no answer"):
        driver.read()  # asleep: a passive read is not answered
    clock.t += 100
    driver.wake()
    assert not dev.sleeping and dev.woke_at == clock.t
    assert driver.read()["pm2_5"] == 12


def test_checksum_bursts_are_counted_and_reading_goes_on() -> None:
    clock = FakeClock()
    dev = _device(clock)
    dev.checksum_bursts = ChecksumBursts(every=5, length=3)
    driver, _ = _driver(dev, clock, mode="active", timeout_s=10.0)
    for _ in range(10):
        assert driver.read()["pm2_5"] == 12
    assert dev.bad_frames_sent >= 6
    assert driver.frames_bad == dev.bad_frames_sent


def test_passive_read_in_a_checksum_burst_fails_as_one_error() -> None:
    clock = FakeClock()
    dev = _device(clock)
    dev.checksum_bursts = ChecksumBursts(every=4, length=2)
    driver, _ = _driver(dev, clock)
    results: list[float | str] = []
    for _ in range(4):
        try:
            results.append(driver.read()["pm2_5"])
        except SensorError as exc:
            # A timeout by kind: its frames are counted in frames_bad (the agent's "checksum").
            assert exc.kind == "timeout"
            results.append(str(exc))
    garbled = (
        "pms5003: 1 malformed frame (bad checksum or length) and no good one in answer to "
        "command 0xe2 within 3.0 s"
    )
    assert results == [12, 12, garbled, garbled]
    assert driver.frames_bad == 2


def test_line_noise_between_frames_is_skipped() -> None:
    clock = FakeClock()
    dev = _device(clock, seed=7)
    dev.garbage_every = 1
    driver, _ = _driver(dev, clock, mode="active")
    assert [driver.read()["pm2_5"] for _ in range(5)] == [12] * 5


def test_silent_sensor_times_out_then_comes_back() -> None:
    clock = FakeClock()
    dev = _device(clock)
    driver, _ = _driver(dev, clock, timeout_s=2.0)
    dev.go_silent(5.0)
    with pytest.raises(SensorTimeout, match=r"no answer to command 0xe2 within 2\.0 s"):
        driver.read()
    clock.t += 5.0
    assert driver.read()["pm2_5"] == 12


def test_stuck_values_repeat() -> None:
    clock = FakeClock()
    values = iter(float(v) for v in range(10, 100))
    dev = _device(clock, read_pm=lambda: (next(values), 50.0))
    driver, _ = _driver(dev, clock)
    assert driver.read()["pm2_5"] != driver.read()["pm2_5"]
    dev.stuck = True
    stuck = [driver.read() for _ in range(3)]
    assert stuck[0] == stuck[1] == stuck[2]


def test_warm_up_values_are_unstable_for_30_s_after_wake() -> None:
    clock = FakeClock()
    dev = Pms5003Device(clock=clock, read_pm=lambda: (20.0, 30.0), seed=1)
    driver, _ = _driver(dev, clock)
    driver.sleep()
    clock.t += 60
    driver.wake()
    early = {driver.read()["pm2_5"] for _ in range(5)}
    assert early != {20.0}
    clock.t += 30
    assert driver.read()["pm2_5"] == 20


def test_out_of_range_value_is_refused_as_a_reading() -> None:
    clock = FakeClock()
    dev = _device(clock)
    dev.out_of_range = True
    driver, _ = _driver(dev, clock)
    values = driver.read()
    assert values["pm2_5"] == OUT_OF_RANGE_PM
    with pytest.raises(ValueError, match="plausible range"):
        Reading(quantity="pm2_5", value=values["pm2_5"], unit="ug/m3", sensor="pms5003")


def test_every_value_is_a_known_quantity_with_its_unit() -> None:
    clock = FakeClock()
    driver, _ = _driver(_device(clock), clock)
    for quantity, value in driver.read().items():
        Reading(quantity=quantity, value=value, unit=QUANTITIES[quantity].unit, sensor="pms5003")


def test_mode_acknowledgement_must_name_the_mode() -> None:
    clock = FakeClock()
    dev = _device(clock)
    driver, _ = _driver(dev, clock)
    dev.receive = lambda data: bytes.fromhex("424D0004E1010175")  # type: ignore[method-assign]
    with pytest.raises(SensorError, match="answered with 1"):
        driver._expect_reply(CHANGE_MODE, PASSIVE)
    assert ACTIVE == 1


def test_driver_reads_through_a_real_serial_port() -> None:
    dev = Pms5003Device(read_pm=lambda: (12.0, 45.0), warmup_s=0.0)
    with Pms5003Simulator(dev) as sim:
        driver = Pms5003.open(sim.port, timeout_s=2.0)
        assert dev.passive
        assert driver.read()["pm10"] == 45
        driver.close()
        assert dev.sleeping
    dev = Pms5003Device(read_pm=lambda: (7.0, 9.0), warmup_s=0.0)
    dev.checksum_bursts = ChecksumBursts(every=2, length=1)
    with Pms5003Simulator(dev, time_scale=10.0) as sim:
        driver = Pms5003.open(sim.port, mode="active", timeout_s=2.0)
        assert [driver.read()["pm2_5"] for _ in range(2)] == [7, 7]
        assert driver.frames_bad >= 1
        driver.close()


def test_an_unplugged_adapter_is_one_error_and_the_port_is_reopened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sensorpipe.edge.drivers import sds011

    clock = FakeClock()
    dev = _device(clock)
    driver, port = _driver(dev, clock)
    driver._path = "/dev/ttyUSB9"

    def unplugged(data: bytes) -> int:
        raise OSError(5, "Input/output error")

    port.write = unplugged  # type: ignore[method-assign]
    with pytest.raises(SensorIOError, match="serial port lost"):
        driver.read()
    assert port.closed
    monkeypatch.setattr(sds011, "_open_port", lambda path: LoopPort(dev, clock))
    dev.sleeping, dev.passive = False, False  # it lost power: back in active mode
    assert driver.read()["pm2_5"] == 12
    assert dev.passive  # set up again after the reopen
