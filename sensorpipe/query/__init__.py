"""What municipalities ask of the time series, read from InfluxDB.

`influxql` builds InfluxQL from user filters safely (numbers through `literals`, areas through
`bbox`); `series` aggregates air readings and counts; `output` prints rows as a table, CSV or
JSON, and `spreadsheet` makes CSV a spreadsheet opens as data, never as formulas. `flagged`
reads the quality flags back: per interval how many readings were flagged and which flags, and
aggregates without the flagged readings or of them alone; `flagged_hours` says which intervals
of a counting device carry a flag (a stuck counter's zeros, for forecasts not to learn).
`calibrated` calibrates `query air`'s rows and `/api/v1/air`'s series when read and labels each
value with its calibration, its `uncertainty` (a calibration's RMSE, RIVM Samen Meten's
defaults, a data sheet) and whether it is indicative. `register` and `health` tell what
InfluxDB knows of each device and its sensors (first and last seen, uptime, gaps, latency,
health); `export` writes the public register as JSON, GeoJSON, CSV and, by `register_page`, an
HTML page, with `register_quality`'s words (in English and Dutch) for how each quantity is
calibrated and the quality flags of the last 7 days. `algorithms` describes the algorithms
sensorpipe uses (the counting model, from its model card, and the calibration methods, whose
public descriptions are `calibration_texts`) in the Dutch algorithm register's publication
standard, as JSON, and `algorithm_page` as a page like the register's.
"""
