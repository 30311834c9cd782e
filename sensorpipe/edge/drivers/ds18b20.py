"""Maxim (Dallas) DS18B20 temperature probe on the Pi's 1-Wire bus, read through the kernel.

The waterproof DS18B20 in a steel tube is the probe people bury for soil temperature (and hang
in a screen for air temperature). The Pi's `dtoverlay=w1-gpio` (GPIO4, a 4.7 kΩ pull-up to
3.3 V) loads the kernel's 1-Wire master; its `w1_therm` driver puts each probe at
`/sys/bus/w1/devices/28-xxxxxxxxxxxx/` (family code 28, then the 48-bit serial), and reading
its `w1_slave` runs one conversion (750 ms at 12 bits) and gives two lines:

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

the 9 scratchpad bytes in hex, the CRC the kernel computed and whether it matched byte 8; then
the same bytes and the temperature in milli-°C. Our own code, no library: reading a file and
parsing two lines needs none (the `w1thermsensor` package does the same over more layers and
trusts the kernel's YES and `t=` alone).

What this driver checks, beyond the kernel:
- Both lines parse, carry the same 9 bytes, and the kernel said YES; it ALSO recomputes the
  Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1, reflected 0x8C, initial 0; Maxim application note
  27) over bytes 0-7, so a torn or altered read is caught even where the kernel said YES.
  A mismatch is a `checksum` error.
- The temperature is decoded from the scratchpad itself: bytes 0-1 little-endian, signed, in
  1/16 °C, the bits a lower resolution leaves undefined (config byte 4, bits 6-5: 9..12 bits)
  masked off; `t=` must agree within one step of that resolution, else `checksum`.
- All bytes FF: nobody drove the data line low, the pull-up read as ones (probe disconnected,
  its data wire broken): an `io` error "probe not answering" (kernels print t=-62 or 127937).
  A config byte whose always-one bits (0-4) are not set (all zeros: the line held low) is not a
  DS18B20's scratchpad: `io` as well.
- 85.000 °C (50 05) is the power-on reset value: read before a conversion finished (power
  just applied, a brown-out), it is withheld and counted (`power_on_resets`, error kind
  `power_on_reset`); only when the previous reading was above 80 °C is it taken as real.
- 127.94 °C (FF 07) is what w1_therm reports when the probe lacked the power to convert
  (parasitic power without VDD wired): out of range, saying so.
- Outside -55..125 °C (the data sheet's range), or outside the quantity's plausible range:
  `out_of_range`.
- The probe's folder gone: the kernel removes it when the probe stops answering its search
  (unplugged, cable cut): "not found on the 1-Wire bus (found: ...)", kind `not_found`; the
  next read finds it again once it is back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sensorpipe.edge.errors import (
    SensorChecksumError,
    SensorConfigError,
    SensorError,
    SensorIOError,
    SensorOutOfRange,
)
from sensorpipe.protocol.quantities import QUANTITIES

W1_ROOT = "/sys/bus/w1/devices"
# Family code 28: a DS18B20 (a DS18S20 is 10, a DS1822 22: other scratchpads, not read here).
SENSOR_ID = re.compile(r"28-[0-9a-f]{12}")
RANGE_C = (-55.0, 125.0)  # data sheet: measuring range
POWER_ON_RAW = 0x0550  # 85.000 °C, the scratchpad's power-on reset value
NO_POWER_RAW = 0x07FF  # 127.9375 °C: w1_therm's "insufficient power" value
REAL_85_AFTER_C = 80.0  # a previous reading above this makes an exact 85.000 °C believable
_LINE1 = re.compile(r"((?:[0-9a-fA-F]{2} ){9}): crc=([0-9a-fA-F]{2}) (YES|NO)")
_LINE2 = re.compile(r"((?:[0-9a-fA-F]{2} ){9})t=(-?\d+)")


def crc8(data: bytes) -> int:
    """Dallas/Maxim 1-Wire CRC-8: x^8 + x^5 + x^4 + 1, LSB first (0x8C reflected), init 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


def resolution_bits(config: int) -> int:
    """9..12: config register bits 6-5 (R1 R0)."""
    return 9 + ((config >> 5) & 0b11)


def raw_temperature(scratchpad: bytes) -> int:
    """Bytes 0-1 as the signed 1/16 °C count, undefined low bits of a lower resolution cleared."""
    raw = scratchpad[0] | (scratchpad[1] << 8)
    if raw & 0x8000:
        raw -= 1 << 16
    undefined = 12 - resolution_bits(scratchpad[4])
    return raw & ~((1 << undefined) - 1)


def celsius(scratchpad: bytes) -> float:
    return raw_temperature(scratchpad) / 16.0


def parse_w1_slave(text: str, model: str = "ds18b20") -> tuple[bytes, bool, int]:
    """(scratchpad, the kernel's YES, t= in milli-°C); SensorChecksumError when the two lines
    are not what w1_therm writes (a torn read) or carry different bytes."""
    lines = text.splitlines()
    first = _LINE1.fullmatch(lines[0]) if lines else None
    second = _LINE2.fullmatch(lines[1]) if len(lines) >= 2 else None
    if first is None or second is None or len(lines) != 2:
        shown = text[:120].replace("\n", "\\n")
        raise SensorChecksumError(f"{model}: w1_slave is not two w1_therm lines: {shown!r}")
    if first.group(1).lower() != second.group(1).lower():
        raise SensorChecksumError(
            f"{model}: the two w1_slave lines carry different bytes (a torn read): "
            f"{first.group(1).strip()} / {second.group(1).strip()}"
        )
    scratchpad = bytes.fromhex(first.group(1))
    return scratchpad, first.group(3) == "YES", int(second.group(2))


def probes_on(root: Path) -> list[str]:
    """The DS18B20 folders on the bus (28-...), sorted."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return sorted(n for n in names if SENSOR_ID.fullmatch(n))


def _found(root: Path) -> str:
    return ", ".join(probes_on(root)) or "none"


class Ds18b20:
    """One probe: `sensor_id` its folder (None: the one DS18B20 on the bus), `quantity` what
    it measures (soil_temperature, or temperature for an air probe)."""

    def __init__(
        self,
        w1_root: str | Path = W1_ROOT,
        sensor_id: str | None = None,
        *,
        quantity: str = "soil_temperature",
        model: str = "ds18b20",
    ) -> None:
        self.root = Path(w1_root)
        self.model = model
        self.quantity = quantity
        q = QUANTITIES[quantity]
        self.range_c = (max(RANGE_C[0], q.minimum), min(RANGE_C[1], q.maximum))
        self.frames_bad = 0  # a bad CRC raises SensorChecksumError: counted there, not here
        self.power_on_resets = 0  # 85 °C power-on values withheld
        self.note: str | None = None
        self._last_c: float | None = None
        if not self.root.is_dir():
            raise SensorConfigError(
                f"{model}: no 1-Wire bus at {self.root}: add `dtoverlay=w1-gpio` to "
                "/boot/firmware/config.txt (GPIO4, 4.7 kΩ pull-up to 3.3 V) and reboot"
            )
        found = probes_on(self.root)
        if sensor_id is None:
            if len(found) != 1:
                several = f"{len(found)} DS18B20 probes ({', '.join(found)})"
                raise SensorConfigError(
                    f"{model}: {several if found else 'no DS18B20'} on the 1-Wire bus at "
                    f"{self.root}: "
                    + (
                        "set sensor_id to the one this sensor is"
                        if found
                        else "check its wiring (data to GPIO4, the 4.7 kΩ pull-up, 3.3 V)"
                    )
                )
            sensor_id = found[0]
        elif sensor_id not in found:
            raise SensorConfigError(self._not_found(sensor_id), kind="not_found")
        self.sensor_id = sensor_id
        self.path = self.root / sensor_id / "w1_slave"

    def _not_found(self, sensor_id: str) -> str:
        return (
            f"{self.model}: {sensor_id} not found on the 1-Wire bus at {self.root} "
            f"(found: {_found(self.root)}): unplugged, or its cable is cut"
        )

    def read(self) -> dict[str, float]:
        try:
            with open(self.path, encoding="ascii", errors="replace") as f:
                text = f.read()
        except FileNotFoundError as exc:
            raise SensorError(self._not_found(self.sensor_id), kind="not_found") from exc
        except OSError as exc:  # w1_therm answers EIO when the bus does not answer at all
            raise SensorIOError(
                f"{self.model}: cannot read {self.path} ({exc}): probe not answering"
            ) from exc
        scratchpad, kernel_ok, t_milli = parse_w1_slave(text, self.model)
        if scratchpad == b"\xff" * 9:
            raise SensorIOError(
                f"{self.model}: {self.sensor_id} probe not answering (scratchpad all FF, "
                f"t={t_milli}): its data wire is broken or loose"
            )
        if scratchpad[4] & 0x1F != 0x1F:
            raise SensorIOError(
                f"{self.model}: {self.sensor_id} probe not answering (scratchpad "
                f"{scratchpad.hex(' ')}: not a DS18B20's): the data line is held low"
            )
        crc = crc8(scratchpad[:8])
        if crc != scratchpad[8] or not kernel_ok:
            raise SensorChecksumError(
                f"{self.model}: {self.sensor_id} CRC mismatch (bytes {scratchpad.hex(' ')}, "
                f"computed {crc:02x}, kernel {'YES' if kernel_ok else 'NO'}): a disturbed "
                "read; a long cable wants a stronger pull-up"
            )
        raw = raw_temperature(scratchpad)
        degc = raw / 16.0
        step = 2.0 ** (12 - resolution_bits(scratchpad[4])) / 16.0
        if abs(t_milli / 1000.0 - degc) > step + 0.001:
            raise SensorChecksumError(
                f"{self.model}: {self.sensor_id} t={t_milli} disagrees with its scratchpad "
                f"({degc:g} °C)"
            )
        if raw == POWER_ON_RAW and not (
            self._last_c is not None and self._last_c > REAL_85_AFTER_C
        ):
            self.power_on_resets += 1
            raise SensorError(
                f"{self.model}: {self.sensor_id} reads 85.000 °C, its power-on value: read "
                "before a conversion (just powered, or a brown-out); withheld",
                kind="power_on_reset",
            )
        low, high = self.range_c
        if not low <= degc <= high:
            why = (
                "the probe lacked power to convert (parasitic power? wire VDD to 3.3 V)"
                if raw == NO_POWER_RAW
                else "a broken probe"
            )
            raise SensorOutOfRange(
                f"{self.model}: {self.sensor_id} {self.quantity} {degc:g} °C is outside "
                f"{low:g}..{high:g} °C: {why}"
            )
        self._last_c = degc
        return {self.quantity: degc}

    def close(self) -> None:
        """Nothing to release: each read opens and closes the file."""
