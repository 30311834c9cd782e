"""bench.calreport runs end to end on a real stack, small: the three-day slice of the shared
co-location data (tests/data/colocation, MIT) under the shared files' names; the report it times
holds a point per hourly pair in each scatter."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.calreport import measure
from tests.helpers import require_binaries

DATA = Path(__file__).parent.parent / "data" / "colocation"


def test_the_report_bench_reports_what_it_imported(tmp_path: Path) -> None:
    require_binaries("mosquitto", "mosquitto_passwd", "influxd")
    shutil.copyfile(
        DATA / "toco_toucan_RT01_2019-08-18_20.csv", tmp_path / "toco_toucan_RT01_raw.csv"
    )
    shutil.copyfile(
        DATA / "airnowtech_2019-08-18_20.csv", tmp_path / "airnowtech_example_reference_data.csv"
    )
    result = measure(tmp_path, tmp_path / "kept.html")
    assert 50 < result["pairs"] <= 72  # three days of hours, the complete ones with a reference
    assert (tmp_path / "kept.html").stat().st_size == result["bytes"]
