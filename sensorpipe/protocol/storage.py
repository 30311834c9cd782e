"""Names of what the ingest stores in InfluxDB; the query side reads the same names.

- `air`: one point per (device, sensor, observation time); a field per quantity, named as in
  protocol.quantities and in its canonical unit; tags device_id, site, sensor. A mobile
  reading (a message with a location, a row of an imported track) has fields `lat`/`lon`.
  Quality flags (sensorpipe.quality), beside the raw values, which they never change: the
  integer field `qc`, the version of the check set applied (absent: never checked), and a
  string field `qc_<quantity>` per flagged quantity, its flag names sorted and joined by ","
  (`fog,humidity`), present only where a flag is raised.
- `link`: one point per message: what the device reported about its link and what the
  pipeline observed (gateway, receive time, latency, redelivery, sequence gap); tags
  device_id, site, kind, gateway.
- `sensor_status`: per-sensor health from status messages; tags device_id, site, sensor;
  fields ok, reads_ok, reads_failed, frames_bad, values_rejected, last_error, backoff_s (when
  backed off), and one integer field per kind of fault the agent counted, `errors_<kind>`
  (ERRORS_PREFIX: errors_checksum, errors_timeout, errors_io, ...).
- `traffic`: passers-by per interval; tags device_id, site, class, direction; field `count`
  (zeros included) and `interval_s`; timestamped at the interval start. Imported Telraam
  counts add `count_extrapolated` (Telraam's figure, scaled up to the whole interval).
  Quality flags as on `air`: `qc`, and `qc_count` where a flag is raised.
- `counter`: per interval, how much of it the counter ran (`running_fraction`), frames
  processed and the model id; tags device_id, site. Telraam imports add `v85_kmh`.
- `imports`: one point per imported history file and device (`sensorpipe import`): who imported
  it (`user`), the file's name and sha256, its rows, how many were stored and rejected; tags
  device_id, source, vouch; timestamped when the file was first imported.
- `crowd_forecast`: the crowding forecasts as they were made (crowd.forecaststore): one point
  per series, horizon and hour forecast; tags `area` (or `device_id`) and `horizon` (`1h`);
  fields forecast, low, high (its 80 % interval as given), interval (which one: "from
  training" or "rolling 28 days (n=...)"), made_at and trained_until (ms since 1970 UTC);
  timestamped at the start of the hour forecast, so the same origin hour stored again is the
  same point.
Points are keyed by the device's observation time, so a redelivered message overwrites itself.
"""

AIR = "air"
LINK = "link"
SENSOR_STATUS = "sensor_status"
ERRORS_PREFIX = "errors_"  # sensor_status: faults of one kind since the agent started
TRAFFIC = "traffic"
COUNTER = "counter"
IMPORTS = "imports"
CROWD_FORECAST = "crowd_forecast"
MEASUREMENTS = (AIR, LINK, SENSOR_STATUS, TRAFFIC, COUNTER, IMPORTS, CROWD_FORECAST)
