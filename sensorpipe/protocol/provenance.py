"""Where each stored point came from and who vouches for it.

Every point the pipeline stores carries two tags:

- `source`: the way in. `edge` (a sensorpipe edge agent), `airrohr` (a Sensor.Community kit
  posting to the gateway's HTTP endpoint), `ttn` (a LoRaWAN node through The Things Stack),
  `import:<format>` (a history file read by `sensorpipe import`), or `reference:<format>` (an
  official reference station's data read by `sensorpipe import reference`).
- `vouch`: what guarantees it. `device` (signed on the device with its own key), `gateway`
  (the kit cannot sign: the sensorpipe gateway that received it signed it with its key; the
  gateway's id is the link point's `vouched_by` field), `import` (read from a file by a named
  user; the `imports` measurement records who, which file and when), `reference` (an official
  monitoring network's published values, read from a file by a named user, recorded likewise).

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
REFERENCE: Final = "reference"

# How a device is registered, and so how its messages arrive.
DeviceSource = Literal["edge", "airrohr", "ttn", "import", "reference"]
DEVICE_SOURCES: tuple[str, ...] = (EDGE, AIRROHR, TTN, IMPORT, REFERENCE)
# Devices whose readings a sensorpipe gateway receives and signs on their behalf.
KIT_SOURCES: tuple[str, ...] = (AIRROHR, TTN)

IMPORT_FORMATS: tuple[str, ...] = (
    "sensor-community",
    "opensensemap",
    "telraam",
    "track",
    "csv",
)
# Reference stations' formats (`sensorpipe import reference FORMAT`): source reference:<format>.
REFERENCE_FORMATS: tuple[str, ...] = ("airnowtech", "luchtmeetnet", "eea")

VOUCH_DEVICE = "device"
VOUCH_GATEWAY = "gateway"
VOUCH_IMPORT = "import"
VOUCH_REFERENCE = "reference"

VOUCH_TEXT = {
    VOUCH_DEVICE: "signed on the device",
    VOUCH_GATEWAY: "signed by the gateway that received it",
    VOUCH_IMPORT: "imported from a file by a named user",
    VOUCH_REFERENCE: "an official reference station's published values, imported by a named user",
}


def import_source(fmt: str) -> str:
    """The `source` tag of a format's points: `import:<fmt>`, or `reference:<fmt>` for a
    reference station's format."""
    if fmt in REFERENCE_FORMATS:
        return f"{REFERENCE}:{fmt}"
    if fmt not in IMPORT_FORMATS:
        known = ", ".join((*IMPORT_FORMATS, *REFERENCE_FORMATS))
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
    if source.startswith(REFERENCE + ":") and source[len(REFERENCE) + 1 :] in REFERENCE_FORMATS:
        return VOUCH_REFERENCE
    raise ValueError(f"unknown source {source!r}")


def provenance_tags(source: str) -> dict[str, str]:
    """The two tags every stored point of `source` carries."""
    return {SOURCE_TAG: source, VOUCH_TAG: vouch_for(source)}


def all_sources() -> list[str]:
    """Every value the `source` tag can have."""
    return [
        EDGE,
        *KIT_SOURCES,
        *(f"{IMPORT}:{fmt}" for fmt in IMPORT_FORMATS),
        *(f"{REFERENCE}:{fmt}" for fmt in REFERENCE_FORMATS),
    ]


def check_source(source: str) -> str | None:
    """None for a source the pipeline writes, else a sentence naming the ones it does."""
    if source in all_sources():
        return None
    return f"unknown source {source!r}: use one of {', '.join(all_sources())}"
