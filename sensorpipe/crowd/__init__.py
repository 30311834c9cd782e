"""Crowding: areas, their levels per interval, and forecasts of counts per device or area.

`areas.py`: which devices and directions make an area (its lines, or the devices inside its
polygon); `levels.py`: levels per interval as pure functions over count series (a street's flow
÷ capacity, an enclosed area's occupancy from ins minus outs, never below zero and reset at its
quiet hour, each scaled by the counters' running fraction); `observed.py`: the observed levels of
an area or a device read from InfluxDB through `sensorpipe.query.series.count_series`.

Forecasts: `series` (hourly count series on a full UTC grid, one column per device or area,
read from a long CSV file or from InfluxDB, with stuck-at-zero and missing hours as NaN, never
0); `baselines` (seasonal naive, the same local hour last week, and the mean of the same local
hour of the week over the past four weeks); `features` (the features of a direct forecast made
at an origin from counts up to it only: horizon-relative and seasonal lags, level, public
holidays of the country); `forecast` (the direct per-horizon LightGBM model on the square root
of the counts, with split-conformal prediction intervals; needs the optional extra `forecast`);
`backtest` (rolling-origin evaluation: WAPE per horizon of the model and both baselines);
`saved` (trained forecasters kept in a models folder: LightGBM's model text and model.json,
loaded once and reused, each training written beside and put in place in one rename);
`live` (the hourly counts of devices or areas read from InfluxDB, and a saved model's forecast
made at the end of the last whole hour, in the API's shape); `forecaststore` (the forecasts
kept in InfluxDB as they are made, and the rolling interval their observed errors give);
`retrain` (the saved models
retrained on the ingest's schedule in a child process, `[forecast]` of ingest.toml, and what
each retraining did, retrain.json).

Alerts: `alerts.py` (alert rules: a level, observed or forecast, crossing a threshold going
up, with hysteresis); `alertstore.py` (the alerts and their dead letters kept, SQLite);
`delivery.py` (each alert logged, published on MQTT and posted to webhooks with retries);
`webhookworker.py` (the ingest's webhook posts on a thread of their own, pending deliveries
kept in the store across a stop); `alertjob.py` (the ingest's scheduled job and the evaluation
of a past window).
"""
