"""bench.calibrate runs end to end on a real influxd, small: its data set is what it says (every
device's hours paired with the reference's) and the fit it times is a real one."""

from __future__ import annotations

from bench.calibrate import measure
from tests.helpers import require_binaries


def test_the_calibration_bench_fits_what_it_wrote() -> None:
    require_binaries("influxd")
    result = measure(devices=2, days=3)
    assert result["pairs"] == 2 * 3 * 24  # every hour of both devices is complete enough
    assert result["points_written"] > 2 * 3 * 24 * 55  # ~59 of 60 minutes
    assert result["rmse_calibrated"] < result["rmse_raw"] / 2
