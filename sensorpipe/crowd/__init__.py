"""Crowding: areas, their levels per interval (and, later, forecasts and alerts).

`areas.py`: which devices and directions make an area (its lines, or the devices inside its
polygon); `levels.py`: levels per interval as pure functions over count series (a street's flow
÷ capacity, an enclosed area's occupancy from ins minus outs, never below zero and reset at its
quiet hour, each scaled by the counters' running fraction); `observed.py`: the observed levels of
an area or a device read from InfluxDB through `sensorpipe.query.series.count_series`.
`alerts.py`: alert rules (a level, observed or forecast, crossing a threshold going up, with
hysteresis); `alertstore.py`: the alerts and their dead letters kept (SQLite); `delivery.py`:
each alert logged, published on MQTT and posted to webhooks with retries; `alertjob.py`: the
ingest's scheduled job and the evaluation of a past window.
"""
