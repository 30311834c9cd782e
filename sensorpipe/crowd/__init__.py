"""Crowding: forecasts of counts per device or area and their backtest (issue 29).

- `series`: hourly count series on a full UTC grid (one column per device or area), read from
  a long CSV file or from InfluxDB, with stuck-at-zero and missing hours as NaN (never 0).
- `baselines`: seasonal naive (same local hour last week) and the mean of the same local hour
  of the week over the past four weeks.
- `features`: the features of a direct forecast made at an origin from counts up to it only
  (horizon-relative lags, seasonal lags, level, public holidays of the country).
- `forecast`: the direct per-horizon LightGBM model (sqrt target) with split-conformal
  prediction intervals; needs the optional extra `forecast`.
- `backtest`: rolling-origin evaluation: WAPE per horizon of the model and both baselines.
"""
