"""The public sensor register as files a municipality publishes on its website: JSON, GeoJSON,
CSV, and one self-contained HTML page in English or Dutch.

The page follows the idea of the Dutch *Communicatierichtlijn Sensoren*: for each sensor, what
it measures, who is responsible for it, why it is there, whether it processes personal data
(and what happens to it), on what legal basis, how long data is kept, under what licence the
data is published, and whom to ask. The page has inline CSS only: no scripts, no fonts, images
or style sheets from elsewhere, and a Content-Security-Policy that forbids loading any. Every
value from the registry is HTML-escaped.

Statistics from InfluxDB (first and last seen, uptime, missing messages, latency) are added
when they are available; without them the register part is exported alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sensorpipe.calibration.status import describe
from sensorpipe.protocol.register import (
    RegisterEntry,
    build_register,
    register_entry,
    register_geojson,
)
from sensorpipe.protocol.registry import NetworkInfo, Registry
from sensorpipe.query.health import not_ok_notes
from sensorpipe.query.register import RegisterStats
from sensorpipe.query.register_page import to_html
from sensorpipe.query.register_quality import (
    calibration_csv,
)
from sensorpipe.query.spreadsheet import to_csv_text

if TYPE_CHECKING:
    from sensorpipe.calibration.status import Applied

# Per device and quantity, the calibration that applies now (calibration.status).
Calibrations = Mapping[str, Mapping[str, "Applied"]]

FORMATS = ("json", "geojson", "csv", "html")
# What InfluxDB adds to each entry, when it answers.
STATS_FIELDS = (
    "first_seen",
    "last_seen",
    "uptime_24h",
    "uptime_7d",
    "messages_7d",
    "missing_7d",
    "median_latency_ms_7d",
    "flagged_7d",
    "sensors_not_ok",
)
LIST_SEPARATOR = ";"
_ENTRY_FIELDS = [f for f in RegisterEntry.model_fields if f != "location"]
CSV_COLUMNS = [*_ENTRY_FIELDS, "lat", "lon", "location_precision_decimals"]


def register_records(
    registry: Registry, stats: RegisterStats | None, calibration: Calibrations | None = None
) -> list[dict[str, Any]]:
    """Each device's public register entry as a dict; with `stats`, the sensors seen reporting
    are in it and STATS_FIELDS are added; with `calibration` (calibration.status), per quantity
    it measures how it is calibrated (`calibration`)."""
    records = _records(registry, stats)
    if calibration is not None:
        for record in records:
            record["calibration"] = describe(
                record["quantities"], record["source"], calibration.get(record["device_id"])
            )
    return records


def _records(registry: Registry, stats: RegisterStats | None) -> list[dict[str, Any]]:
    if stats is None:
        return [e.model_dump() for e in build_register(registry)]
    records = []
    for device_id, entry in sorted(registry.devices.items()):
        s = stats.of(device_id)
        public = register_entry(
            device_id, entry, registry.network, seen_sensors=s.sensors, seen_counting=s.counting
        )
        record = public.model_dump()
        record.update(
            s.activity(),
            # Per sensor: ok, last error, since when, uptime (sensorpipe.query.health); and
            # one line per sensor that is not ok, e.g. "bme280 not ok since ...: no answer".
            sensor_health=[h.as_json() for _, h in sorted(s.health.items())],
            sensors_not_ok=not_ok_notes(s.health),
        )
        records.append(record)
    return records


def network_dict(network: NetworkInfo) -> dict[str, str]:
    return network.model_dump()


def to_json(records: Sequence[dict[str, Any]]) -> str:
    """A JSON list, one object per device (the keys `devices export` always printed, device_id,
    site, owner, purpose, sensors and location with lat and lon, plus the rest of the entry)."""
    return json.dumps(list(records), indent=2)


def to_geojson(records: Sequence[dict[str, Any]], network: NetworkInfo) -> str:
    collection = register_geojson(records, network.name, foreign={"network": network_dict(network)})
    return json.dumps(collection, indent=2)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return LIST_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
        return calibration_csv(value)  # calibration: pm2_5=cal-1;temperature=not_calibrated
    if isinstance(value, dict):  # flagged_7d: fog=3;humidity=12
        return LIST_SEPARATOR.join(f"{k}={v}" for k, v in value.items())
    return value


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    """One row per device; lists joined with ';', no location: empty lat and lon. Text that a
    spreadsheet would run as a formula is written as text (query.spreadsheet)."""
    with_stats = any("first_seen" in r for r in records)
    columns = CSV_COLUMNS + (list(STATS_FIELDS) if with_stats else [])
    if any("calibration" in r for r in records):
        columns.append("calibration")
    rows = []
    for r in records:
        location = r.get("location") or {}
        flat = {
            **r,
            "lat": location.get("lat"),
            "lon": location.get("lon"),
            "location_precision_decimals": location.get("precision_decimals"),
        }
        rows.append([_csv_value(flat.get(c)) for c in columns])
    return to_csv_text(columns, rows)


def export(
    registry: Registry,
    stats: RegisterStats | None,
    fmt: str,
    *,
    lang: str = "en",
    generated_at: datetime | None = None,
    calibration: Calibrations | None = None,
) -> str:
    """The register in `fmt` (json, geojson, csv or html); with `calibration`, how each
    device's quantities are calibrated."""
    records = register_records(registry, stats, calibration)
    if fmt == "json":
        return to_json(records)
    if fmt == "geojson":
        return to_geojson(records, registry.network)
    if fmt == "csv":
        return to_csv(records)
    if fmt == "html":
        return to_html(records, registry.network, lang=lang, generated_at=generated_at)
    raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
