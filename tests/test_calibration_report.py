"""`calibrate report`'s page on constructed pairs: each scatter point's transform puts it where
its pair belongs inside the plot, the 1:1 line runs corner to corner, fog hours are marked, and
the page is self-contained (no script, nothing fetched)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from sensorpipe.calibration.report import BOTTOM, LEFT, SIDE, TOP, ReportPairs, render

SVG = "{http://www.w3.org/2000/svg}"
HOUR = 3_600_000
T0 = 1_564_617_600_000


def record() -> dict[str, object]:
    stats = {"n": 3, "slope": 1.0, "intercept": 0.0, "r2": 1.0, "rmse": 0.0, "nrmse": 0.0}
    return {
        "id": "cal-9",
        "created": "2026-01-01T00:00:00Z",
        "method": "linear",
        "coefficients": {"a": 1.0, "b": 0.5},
        "formula": "ref = 1 + 0.5*raw",
        "quantity": "pm2_5",
        "unit": "ug/m3",
        "sensor_model": "sds011",
        "devices": ["d"],
        "reference": "r",
        "period": {"from": "2019-08-01T00:00:00Z", "to": "2019-08-02T00:00:00Z"},
        "chosen_by": "--method",
        "statistics": {"n_pairs": 3, "raw": stats, "calibrated": stats, "cv": {}},
    }


def scatter(page: str, plot: str) -> ET.Element:
    return next(
        ET.fromstring(m.group(0))
        for m in re.finditer(r"<svg .*?</svg>", page, re.S)
        if f'id="{plot}"' in m.group(0)[:200]
    )


def to_page(transform: str, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = map(float, re.findall(r"[-\d.e]+", transform))
    return a * x + c * y + e, b * x + d * y + f


def test_each_point_is_drawn_where_its_pair_belongs_and_fog_is_marked() -> None:
    pairs = ReportPairs(
        hours=[T0, T0 + HOUR, T0 + 2 * HOUR],
        devices=["d"] * 3,
        raw=[4.0, 10.0, 16.0],
        reference=[3.0, 6.0, 9.0],
        rh=[50.0, 99.0, float("nan")],
        calibrated=[3.0, 6.0, 9.0],
    )
    page = render(record(), pairs, ("2019-08-01T00:00:00Z", "2019-08-02T00:00:00Z"), [])
    assert "<script" not in page and "https://" not in page and "src=" not in page
    svg = scatter(page, "scatter-raw")
    (points,) = [g for g in svg.iter(f"{SVG}g") if g.get("id") == "scatter-raw-points"]
    circles = list(points.iter(f"{SVG}circle"))
    got = [(float(c.get("cx", "")), float(c.get("cy", ""))) for c in circles]
    assert got == [(3.0, 4.0), (6.0, 10.0), (9.0, 16.0)]
    assert [c.get("class") for c in circles] == [None, "fog", None]
    transform = points.get("transform", "")
    # The axes run 0 .. 20 here (a round step above 16): 0 at the lower left corner, 20 at the
    # upper right, and a point half way along both axes in the middle.
    assert to_page(transform, 0, 0) == pytest.approx((LEFT, BOTTOM))
    assert to_page(transform, 20, 20) == pytest.approx((LEFT + SIDE, TOP))
    x, y = to_page(transform, 6.0, 10.0)
    assert (x, y) == pytest.approx((LEFT + SIDE * 6 / 20, BOTTOM - SIDE * 10 / 20))
    one = next(e for e in svg.iter(f"{SVG}line") if e.get("class") == "one-to-one")
    assert (one.get("x1"), one.get("y1"), one.get("x2"), one.get("y2")) == ("0", "0", "20", "20")
    calibrated = scatter(page, "scatter-calibrated")
    assert len(list(calibrated.iter(f"{SVG}circle"))) == 3
    series = scatter(page, "timeseries")
    assert len([r for r in series.iter(f"{SVG}rect") if r.get("class") == "fog"]) == 1
    assert "Calibration of particulate matter sensors: linear" in page
