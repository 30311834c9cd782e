"""Sensirion's I2C CRC-8 (SHT3x, SHT4x, SPS30, SCD30, SCD4x all use it) and the word framing.

CRC-8: polynomial 0x31 (x^8 + x^5 + x^4 + 1), initial value 0xFF, no reflection, no final XOR,
computed over each 16-bit data word; on the wire every word is followed by its CRC byte, in both
directions (command words themselves carry none). The data sheets' worked example:
CRC(0xBE 0xEF) = 0x92 (SHT3x DS Table 20, SCD4x DS Table 32). Some sample code writes the
polynomial as 0x131 (its 9-bit form); the result is the same once masked to 8 bits, which this
does.

Shared on purpose: every Sensirion driver frames its words with `pack_words` and checks them with
`unpack_words`, and the simulators in `firmware_sim` build their answers with the same two.
"""

from __future__ import annotations

from sensorpipe.edge.errors import SensorChecksumError, SensorError


def _table() -> bytes:
    out = bytearray(256)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        out[byte] = crc
    return bytes(out)


_TABLE = _table()


def crc8(data: bytes | bytearray | memoryview) -> int:
    """Sensirion CRC-8 of `data` (normally one 2-byte word)."""
    crc = 0xFF
    for byte in data:
        crc = _TABLE[crc ^ byte]
    return crc


class CrcError(SensorChecksumError):
    """A word read from the sensor failed its CRC: a disturbed bus or loose wiring (counted
    as "checksum")."""


def pack_words(*words: int) -> bytes:
    """Words as they go on the wire: MSB, LSB, CRC for each."""
    out = bytearray()
    for word in words:
        pair = ((word >> 8) & 0xFF, word & 0xFF)
        out += bytes(pair)
        out.append(crc8(bytes(pair)))
    return bytes(out)


def unpack_words(data: bytes | bytearray, model: str) -> list[int]:
    """The words of a read (3 bytes each), every CRC checked; `CrcError` names the bad word."""
    if len(data) % 3:
        raise SensorError(f"{model}: {len(data)} bytes read, not whole words with their CRC")
    words = []
    for i in range(0, len(data), 3):
        if crc8(data[i : i + 2]) != data[i + 2]:
            raise CrcError(
                f"{model}: bad CRC in word {i // 3} ({data[i : i + 3].hex(' ')}, expected CRC "
                f"{crc8(data[i : i + 2]):02x}): a disturbed bus or loose wiring"
            )
        words.append((data[i] << 8) | data[i + 1])
    return words
