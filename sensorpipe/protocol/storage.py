"""Names of what the ingest stores in InfluxDB; the query side reads the same names.

- `air`: one point per (device, sensor, observation time); a field per quantity, named as in
  protocol.quantities and in its canonical unit; tags device_id, site, sensor.
- `link`: one point per message: what the device reported about its link and what the
  pipeline observed (gateway, receive time, latency, redelivery, sequence gap); tags
  device_id, site, kind, gateway.
- `sensor_status`: per-sensor health from status messages; tags device_id, site, sensor.
- `traffic`: passers-by per interval; tags device_id, site, class, direction; field `count`
  (zeros included) and `interval_s`; timestamped at the interval start.
- `counter`: per interval, how much of it the counter ran (`running_fraction`), frames
  processed and the model id; tags device_id, site.
Points are keyed by the device's observation time, so a redelivered message overwrites itself.
"""

AIR = "air"
LINK = "link"
SENSOR_STATUS = "sensor_status"
TRAFFIC = "traffic"
COUNTER = "counter"
MEASUREMENTS = (AIR, LINK, SENSOR_STATUS, TRAFFIC, COUNTER)
