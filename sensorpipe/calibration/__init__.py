"""Calibration of low-cost sensors against a reference station, versioned and explainable.

`pairing` makes the hourly pairs a fit needs (hours >= 75 % complete, from the device's median
reading interval, against the reference's hour-start values, with the hour's humidity);
`methods` fits and applies `linear`, `linear_rh` and `kohler` (κ-Köhler growth) with numpy;
`fitting` chooses the method by cross-validation over blocks of contiguous days; `stats` gives
n, slope, intercept, R², RMSE, NRMSE and the US EPA's PM2.5 targets; `data` reads what a fit
needs from InfluxDB; `store` is the calibration book (calibrations.sqlite: calibrations, never
overwritten, and their assignments to devices); `readtime` calibrates values as they are read
(`query air`'s rows and, through `query.calibrated`, the HTTP API's answers;
`calibrate_rows_grouped` also applies group calibrations); `group` is the Samen-Meten-style
group calibration (hourly factors reference ÷ group mean, leave-one-device-out statistics);
`report` writes `calibrate report`'s self-contained HTML page (inline SVG). `status` says which
calibration applies to each device's quantities now (the register, the API, SensorThings'
calibrated Datastreams) and the uncertainty of a calibration's values. `updating` extends group
calibrations' hourly factors (`calibrate update`, and the ingest's periodic job).
"""
