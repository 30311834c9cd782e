"""DS18B20 probes on a simulated 1-Wire bus, as the Linux w1_therm driver shows them in sysfs.

`W1Bus(root)` makes a folder laid out like /sys/bus/w1/devices: `w1_bus_master1/` with
`w1_master_slaves` (one id a line, as the kernel lists them, "not found." when none) and
`w1_master_slave_count`, and one `28-xxxxxxxxxxxx/w1_slave` per probe present. On a Pi each read
of w1_slave runs a conversion; a plain file cannot, so the bus `convert()`s: every present
probe's w1_slave is rewritten with one new conversion, byte for byte as w1_therm writes it
(9 scratchpad bytes, `: crc=XX YES|NO`, then the same bytes and `t=<milli °C>`), replaced
atomically so a reader never sees half a file. Tests call `convert()` before each read;
`start(period_s)` converts on a thread for an agent that reads on its own clock.

`Ds18b20Probe` holds one probe's scratchpad (12-bit by default, TH/TL 4B 46, reserved FF ?? 10,
CRC-8) and its faults, each switched by an attribute or method:
- `crc_burst(n)`: the next n conversions arrive with a flipped bit, so the kernel's CRC check
  says NO (bursts: a disturbance on a long cable); `burst_rate` with `seed` starts bursts of
  `burst_length` at random.
- `torn(n)`: the next n files carry altered bytes while the kernel line still says YES (a read
  torn between two conversions): only the reader's own CRC catches it.
- `power_up()`: the next conversion reads the power-on reset value 85.000 °C (50 05, byte 6
  0C), as after power is applied (`W1Bus.reconnect` does it).
- `W1Bus.disconnect(probe)`: the kernel removes the folder (and the id from the master's list);
  `reconnect(probe)` brings it back, powered up again.
- `all_ff = True`: the data line reads high (data wire broken): all FF, `t=` as the kernel
  computes it (`t_of_ff`: -62 on current kernels, 127937 on older ones).
- `stuck = True`: the value freezes at the last conversion (a probe whose conversion no longer
  runs): only the central quality checks see it.
- `out_of_range = True`: reads 127.9375 °C (FF 07), w1_therm's insufficient-power value.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sensorpipe.edge.drivers.ds18b20 import crc8

MASTER = "w1_bus_master1"
CONFIG_BY_BITS = {9: 0x1F, 10: 0x3F, 11: 0x5F, 12: 0x7F}


def temperature_bytes(degc: float, resolution: int = 12) -> bytes:
    """Bytes 0-1 of the scratchpad for `degc`: the signed 1/16 °C count, little-endian, with
    the bits a lower resolution leaves undefined cleared."""
    raw = round(degc * 16.0)
    raw &= ~((1 << (12 - resolution)) - 1)
    return (raw & 0xFFFF).to_bytes(2, "little")


def w1_slave_text(scratchpad: bytes, *, kernel_crc_ok: bool, t_milli: int) -> str:
    """The two lines w1_therm writes (drivers/w1/slaves/w1_therm.c, w1_slave_show)."""
    hexed = "".join(f"{b:02x} " for b in scratchpad)
    crc = crc8(scratchpad[:8])
    return f"{hexed}: crc={crc:02x} {'YES' if kernel_crc_ok else 'NO'}\n{hexed}t={t_milli}\n"


def kernel_t(scratchpad: bytes | bytearray) -> int:
    """t= as w1_therm computes it: the signed count x 1000 / 16, truncated toward zero."""
    raw = int.from_bytes(scratchpad[:2], "little", signed=True)
    return int(raw * 1000 / 16)


@dataclass
class Ds18b20Probe:
    """One probe: its folder name, the temperature it measures, and its faults (above)."""

    sensor_id: str = "28-0000072a4b1c"
    temperature: Callable[[], float] = lambda: 12.5
    resolution: int = 12  # 9..12 bits, in the config byte
    burst_rate: float = 0.0
    burst_length: int = 3
    seed: int = 0
    t_of_ff: int = -62  # t= of an all-FF scratchpad: -62 (current kernels) or 127937
    all_ff: bool = False
    stuck: bool = False
    out_of_range: bool = False
    present: bool = True
    conversions: int = 0
    # conversions still to come with a bad CRC, torn, or at the power-on value
    _faults: dict[str, int] = field(
        init=False, repr=False, default_factory=lambda: {"crc": 0, "torn": 0, "85": 0}
    )
    _last: bytes | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def crc_burst(self, n: int) -> None:
        self._faults["crc"] += n

    def torn(self, n: int) -> None:
        self._faults["torn"] += n

    def power_up(self) -> None:
        self._faults["85"] = 1

    def scratchpad(self) -> bytes:
        """One conversion's 9 bytes, before any line fault."""
        if self.stuck and self._last is not None:
            return self._last
        if self._faults["85"]:
            self._faults["85"] = 0
            data = bytes(
                [0x50, 0x05, 0x4B, 0x46, CONFIG_BY_BITS[self.resolution], 0xFF, 0x0C, 0x10]
            )
        else:
            lsb_msb = (
                b"\xff\x07"
                if self.out_of_range
                else temperature_bytes(self.temperature(), self.resolution)
            )
            remain = 0x10 - (lsb_msb[0] & 0x0F)  # COUNT_REMAIN as genuine parts leave it
            data = lsb_msb + bytes(
                [0x4B, 0x46, CONFIG_BY_BITS[self.resolution], 0xFF, remain, 0x10]
            )
        self._last = data + bytes([crc8(data)])
        return self._last

    def w1_slave(self) -> str:
        """What reading w1_slave gives after one conversion."""
        self.conversions += 1
        if self.all_ff:
            ff = b"\xff" * 9
            return w1_slave_text(ff, kernel_crc_ok=crc8(ff[:8]) == 0xFF, t_milli=self.t_of_ff)
        data = bytearray(self.scratchpad())
        t_milli = kernel_t(data)
        faults = self._faults
        if not faults["crc"] and self.burst_rate and self._random.random() < self.burst_rate:
            faults["crc"] = self.burst_length
        if faults["crc"]:
            faults["crc"] -= 1
            data[0] ^= 0x04  # one bit flipped on the wire
            return w1_slave_text(bytes(data), kernel_crc_ok=False, t_milli=kernel_t(data))
        if faults["torn"]:
            faults["torn"] -= 1
            data[1] ^= 0x01  # 16 °C off, and the kernel line still says YES
            return w1_slave_text(bytes(data), kernel_crc_ok=True, t_milli=t_milli)
        return w1_slave_text(bytes(data), kernel_crc_ok=True, t_milli=t_milli)


class W1Bus:
    """The sysfs tree of one 1-Wire master and the probes on it."""

    def __init__(self, root: str | Path, probes: list[Ds18b20Probe] | None = None) -> None:
        self.root = Path(root)
        (self.root / MASTER).mkdir(parents=True, exist_ok=True)
        self.probes: list[Ds18b20Probe] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        for probe in probes or []:
            self.attach(probe)
        self._list()

    def attach(self, probe: Ds18b20Probe) -> None:
        with self._lock:
            self.probes.append(probe)
            self._write(probe)
            self._list()

    def _list(self) -> None:
        present = [p.sensor_id for p in self.probes if p.present]
        slaves = "".join(f"{i}\n" for i in present) or "not found.\n"
        (self.root / MASTER / "w1_master_slaves").write_text(slaves)
        (self.root / MASTER / "w1_master_slave_count").write_text(f"{len(present)}\n")

    def _write(self, probe: Ds18b20Probe) -> None:
        if not probe.present:
            return
        folder = self.root / probe.sensor_id
        folder.mkdir(exist_ok=True)
        tmp = folder / ".w1_slave.tmp"
        tmp.write_text(probe.w1_slave(), encoding="ascii")
        os.replace(tmp, folder / "w1_slave")

    def convert(self) -> None:
        """One conversion of every present probe, each written to its w1_slave."""
        with self._lock:
            for probe in self.probes:
                self._write(probe)

    def disconnect(self, probe: Ds18b20Probe) -> None:
        with self._lock:
            probe.present = False
            shutil.rmtree(self.root / probe.sensor_id, ignore_errors=True)
            self._list()

    def reconnect(self, probe: Ds18b20Probe) -> None:
        with self._lock:
            probe.present = True
            probe.power_up()
            self._write(probe)
            self._list()

    def start(self, period_s: float = 0.05) -> None:
        def run() -> None:
            while not self._stop.wait(period_s):
                self.convert()

        self._thread = threading.Thread(target=run, name="w1-bus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
