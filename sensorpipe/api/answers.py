"""The answers of /api/v1, as pydantic models: what each route returns, field by field, as
/openapi.json publishes it (sensorpipe.api.v1 has the routes that fill them in)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from sensorpipe.protocol.register import RegisterEntry
from sensorpipe.query.health import NO_DATA_YET


class SensorHealthOut(BaseModel):
    sensor: str
    ok: bool | None = Field(description="the sensor's newest status; null: none reported yet")
    last_error: str | None = Field(description="the newest error the device reported for it")
    last_error_at: str | None
    since: str | None = Field(description="since when it has been ok, or not ok (UTC)")
    reported_at: str | None = Field(description="its newest status (UTC)")
    uptime_24h: float | None = Field(description="share of 5-minute windows with its readings")
    uptime_7d: float | None
    laser_hours: float | None = Field(
        default=None, description="a laser PM sensor's running hours, as it last reported them"
    )
    laser_life_h: float | None = Field(
        default=None,
        description="the laser's expected life in running hours (data sheet); null where no "
        "source gives one (PMS7003)",
    )
    errors: dict[str, int] = Field(
        default_factory=dict,
        description="its newest status's faults by kind since the device's agent started "
        "(checksum, timeout, io, out_of_range, not_available, ...)",
    )
    backoff_s: float | None = Field(
        default=None, description="seconds between tries while it keeps failing; 0: on schedule"
    )


class CalibrationOut(BaseModel):
    """How one quantity of a device is calibrated now (sensorpipe.calibration.status)."""

    status: Literal["calibrated", "not_calibrated", "reference"] = Field(
        description="calibrated; not_calibrated (a low-cost sensor's values are indicative); "
        "reference (a reference station: the values others are calibrated against)"
    )
    calibration_id: str | None = Field(default=None, description="e.g. cal-1 (`calibrate show`)")
    method: str | None = Field(default=None, description="linear, linear_rh, kohler, ...")
    formula: str | None = None
    sensor_model: str | None = Field(default=None, description="the model it was fitted on")
    reference: str | None = Field(default=None, description="the reference station's device id")
    valid_from: str | None = Field(default=None, description="null: from all the past")
    valid_to: str | None = Field(default=None, description="null: open")
    n_hours: int | None = Field(default=None, description="hourly pairs it was fitted on")
    rmse: float | None = Field(default=None, description="RMSE after calibration (the fit's)")
    r2: float | None = Field(default=None, description="R² after calibration")
    uncertainty: float | None = Field(
        default=None, description="± of its values, in `unit`: see uncertainty_basis"
    )
    uncertainty_basis: str | None = Field(
        default=None,
        description="cv: the chosen method's out-of-fold RMSE; fitted: the fit's RMSE",
    )
    unit: str | None = None
    algorithm: str | None = Field(
        default=None, description="its method's entry in /api/v1/algorithms (source_id)"
    )


class DeviceInfo(RegisterEntry):
    state: str | None = Field(
        description=f"{NO_DATA_YET!r} for a registered device nothing is stored from yet"
    )
    sensor_health: list[SensorHealthOut] = Field(
        description="per sensor: ok, last error, since when, uptime"
    )
    notes: list[str] = Field(description="one line per sensor that is not ok")
    first_seen: str | None = Field(description="first message stored (UTC)")
    last_seen: str | None = Field(description="latest message stored (UTC)")
    uptime_24h: float | None = Field(description="share of 5-minute windows with a message")
    uptime_7d: float | None
    messages_7d: int
    missing_7d: int = Field(description="messages missing by sequence gaps, last 7 days")
    median_latency_ms_7d: float | None = Field(description="median delivery latency")
    flagged_7d: dict[str, int] = Field(
        description="per quality flag (/api/v1/flags), readings that carried it, last 7 days"
    )
    latest_pm2_5: float | None
    latest_pm2_5_time: str | None
    calibration: dict[str, CalibrationOut] = Field(
        default_factory=dict,
        description="per quantity it measures: the calibration that applies now, or "
        "not_calibrated (values indicative), or reference",
    )
    exact_location: dict[str, float] | None = Field(
        default=None, description="only with a bearer token"
    )


class NetworkOut(BaseModel):
    name: str
    operator: str
    contact: str
    licence: str
    privacy_url: str


class DevicesOut(BaseModel):
    network: NetworkOut
    stats_computed_at: str
    devices: list[DeviceInfo]


PARTIAL_DOC = (
    "times (as in `time`) of the intervals not over when the answer was made, or cut short by "
    "`to`, such as the current hour: their mean or sum covers only part of the interval (a "
    "sum of counts reads low), so they are drawn as unfinished, not as a drop"
)


class FlaggedOut(BaseModel):
    flagged: list[int] = Field(description="per interval: how many readings were flagged")
    flags: list[list[str]] = Field(description="per interval: the flags they carried")


class AirSeries(BaseModel):
    device_id: str | None
    site: str | None
    sensor: str | None
    time: list[str]
    values: dict[str, list[float | None]]
    flags: dict[str, FlaggedOut] = Field(
        description="per quantity with flagged readings (quality flags, /api/v1/flags)"
    )
    calibration: dict[str, list[str]] = Field(
        description="per quantity and interval: the id of the calibration that made the value "
        "(`sensorpipe calibrate show ID`), or `raw` (as stored: values=raw, no calibration "
        "assigned for that time, a group=site series, or an aggregate such as count that is "
        "never calibrated)"
    )
    uncertainty: dict[str, list[float | None]] = Field(
        description="per quantity and interval: ± in the quantity's unit (`units`); null for "
        "a reference station's value, a count, or a quantity without a known uncertainty"
    )
    uncertainty_basis: dict[str, list[str | None]] = Field(
        description="per quantity and interval: the key, in the answer's `uncertainty_basis`, "
        "of the rule the uncertainty comes from"
    )
    indicative: dict[str, list[bool | None]] = Field(
        description="per quantity and interval: true for a low-cost sensor's value that no "
        "calibration made (indicative only); false for a calibrated value and a reference "
        "station's; null where there is no value or it is a count"
    )


class AirOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    every: str
    aggregate: str
    group: str
    flags: str = Field(description="include, exclude or only the flagged readings")
    flag: list[str] = Field(description="the flags that counted as flagged (none: any)")
    units: dict[str, str]
    values: Literal["calibrated", "raw"] = Field(
        description="calibrated: values computed now with the calibration assigned to each "
        "device for that time, where one applies (raw elsewhere, labelled so); raw: as stored"
    )
    uncertainty_basis: dict[str, str] = Field(
        description="each uncertainty rule the series use, in one sentence: a calibration's "
        "RMSE (`calibration:<id>`), RIVM Samen Meten's defaults for uncalibrated PM "
        "(`rivm-default:<quantity>`) or a sensor's data sheet (`data-sheet:<model>:<quantity>`)"
    )
    series: list[AirSeries]
    partial: list[str] = Field(description=PARTIAL_DOC)


class ClassCounts(BaseModel):
    class_: str = Field(alias="class")
    direction: str
    values: list[int | None]
    flagged: list[int] | None = Field(
        default=None,
        description="per interval, how many counts carried a quality flag (only where one did)",
    )
    flags: list[list[str]] | None = Field(default=None, description="per interval, which flags")


class CountSeries(BaseModel):
    device_id: str
    site: str | None
    time: list[str]
    running_fraction: list[float | None]
    counts: list[ClassCounts]


class CountsOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    every: str
    flags: str = Field(description="include, exclude or only the flagged counts")
    flag: list[str] = Field(description="the flags that count as flagged (none: any)")
    series: list[CountSeries]
    partial: list[str] = Field(description=PARTIAL_DOC)


class Check(BaseModel):
    ok: bool | None = Field(description="null: not configured, so not checked")
    detail: str


class HealthOut(BaseModel):
    """Anonymous callers get the status only; the parts (which name InfluxDB's URL and the
    broker's address) need a bearer token."""

    status: Literal["ok", "degraded"]
    influxdb: Check | None = Field(default=None, description="only with a bearer token")
    broker: Check | None = Field(default=None, description="only with a bearer token")
    ingest: Check | None = Field(default=None, description="only with a bearer token")
    last_write: str | None = Field(default=None, description="only with a bearer token")


class FlagsOut(BaseModel):
    version: int = Field(description="the check set's version, stored as each point's `qc`")
    flags: dict[str, str] = Field(description="each quality flag and why it exists")
