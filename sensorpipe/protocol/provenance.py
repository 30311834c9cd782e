"""Where each stored point came from and who vouches for it.

Every point the pipeline stores carries two tags:

- `source`: the way in. `edge` (a sensorpipe edge agent), `airrohr` (a Sensor.Community kit
  posting to the gateway's HTTP endpoint), `ttn` (a LoRaWAN node through The Things Stack), or
  `import:<format>` (a history file read by `sensorpipe import`).
- `vouch`: what guarantees it. `device` (signed on the device with its own key), `gateway`
  (the kit cannot sign: the sensorpipe gateway that received it signed it with its key; the
  gateway's id is the link point's `vouched_by` field), `import` (read from a file by a named
  user; the `imports` measurement records who, which file and when).

Both are ordinary InfluxDB tags: `WHERE "source" = 'airrohr'` selects a kit's readings.
"""

from __future__ import annotations

from typing import Final, Literal

SOURCE_TAG = "source"
VOUCH_TAG = "vouch"

EDGE: Final = "edge"
AIRROHR: Final = "airrohr"
TTN: Final = "ttn"
IMPORT: Final = "import"

# How a device is registered, and so how its messages arrive.
DeviceSource = Literal["edge", "airrohr", "ttn", "import"]
DEVICE_SOURCES: tuple[str, ...] = (EDGE, AIRROHR, TTN, IMPORT)
# Devices whose readings a sensorpipe gateway receives and signs on their behalf.
KIT_SOURCES: tuple[str, ...] = (AIRROHR, TTN)

IMPORT_FORMATS: tuple[str, ...] = ("sensor-community", "opensensemap", "telraam", "track")

VOUCH_DEVICE = "device"
VOUCH_GATEWAY = "gateway"
VOUCH_IMPORT = "import"

VOUCH_TEXT = {
    VOUCH_DEVICE: "signed on the device",
    VOUCH_GATEWAY: "signed by the gateway that received it",
    VOUCH_IMPORT: "imported from a file by a named user",
}


def import_source(fmt: str) -> str:
    if fmt not in IMPORT_FORMATS:
        known = ", ".join(IMPORT_FORMATS)
        raise ValueError(f"unknown import format {fmt!r}: expected one of {known}")
    return f"{IMPORT}:{fmt}"


def vouch_for(source: str) -> str:
    """How points from `source` are vouched for."""
    if source == EDGE:
        return VOUCH_DEVICE
    if source in KIT_SOURCES:
        return VOUCH_GATEWAY
    if source.startswith(IMPORT + ":") and source[len(IMPORT) + 1 :] in IMPORT_FORMATS:
        return VOUCH_IMPORT
    raise ValueError(f"unknown source {source!r}")


def provenance_tags(source: str) -> dict[str, str]:
    """The two tags every stored point of `source` carries."""
    return {SOURCE_TAG: source, VOUCH_TAG: vouch_for(source)}


def all_sources() -> list[str]:
    """Every value the `source` tag can have."""
    return [EDGE, *KIT_SOURCES, *(f"{IMPORT}:{fmt}" for fmt in IMPORT_FORMATS)]


def check_source(source: str) -> str | None:
    """None for a source the pipeline writes, else a sentence naming the ones it does."""
    if source in all_sources():
        return None
    return f"unknown source {source!r}: use one of {', '.join(all_sources())}"
