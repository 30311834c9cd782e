"""Line protocol serialisation, including hostile names and values."""

from __future__ import annotations

import pytest

from sensorpipe.ingest.lineprotocol import LineProtocolError, Point, to_line


def test_plain_point() -> None:
    p = Point(
        "air", {"sensor": "sds011", "device_id": "d1"}, {"pm2_5": 12.5, "seq": 3, "ok": True}, 1000
    )
    assert to_line(p) == "air,device_id=d1,sensor=sds011 pm2_5=12.5,seq=3i,ok=true 1000"


def test_hostile_characters_are_escaped() -> None:
    p = Point(
        "air quality,v2",
        {"site": "Oude Gracht, Utrecht=centrum", "we ird": "x"},
        {"note": 'say "hi" \\ bye', "field,with=space s": 1.0},
        5,
    )
    assert to_line(p) == (
        "air\\ quality\\,v2,site=Oude\\ Gracht\\,\\ Utrecht\\=centrum,we\\ ird=x "
        'note="say \\"hi\\" \\\\ bye",field\\,with\\=space\\ s=1.0 5'
    )


def test_unicode_passes_through() -> None:
    p = Point("air", {"site": "Zuidoost-Bijlmer ✓"}, {"owner": "Één"}, 1)
    assert to_line(p) == 'air,site=Zuidoost-Bijlmer\\ ✓ owner="Één" 1'


def test_empty_tag_values_are_left_out() -> None:
    assert to_line(Point("m", {"site": ""}, {"v": 1.0}, 1)) == "m v=1.0 1"


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (Point("m", {"t": "a\nb"}, {"v": 1.0}, 1), "control character"),
        (Point("m", {"t": "ends\\"}, {"v": 1.0}, 1), "backslash"),
        (Point("m", {}, {"v": float("inf")}, 1), "finite"),
        (Point("m", {}, {"v": float("nan")}, 1), "finite"),
        (Point("m", {}, {"s": "line\nbreak"}, 1), "newline"),
        (Point("m", {}, {}, 1), "no fields"),
        (Point("", {}, {"v": 1.0}, 1), "empty measurement"),
        (Point("m", {}, {"time": 1.0}, 1), "'time'"),
        (Point("m", {}, {"v": [1]}, 1), "unsupported type"),  # type: ignore[dict-item]
    ],
)
def test_unwritable_points_are_refused_not_mangled(point: Point, message: str) -> None:
    with pytest.raises(LineProtocolError, match=message):
        to_line(point)


def test_floats_keep_full_precision() -> None:
    assert to_line(Point("m", {}, {"v": 0.1 + 0.2}, 1)) == "m v=0.30000000000000004 1"
    assert to_line(Point("m", {}, {"v": 1e-7}, 1)) == "m v=1e-07 1"


def test_names_are_checked_every_time_though_escapes_are_cached() -> None:
    # The escaped forms of names are cached; a refusal is not, so a bad name that comes again
    # (or comes after a good one with the same key) is refused again.
    good = Point("m", {"t": "a b"}, {"v": 1.0}, 1)
    bad = Point("m", {"t": "a\tb"}, {"v": 1.0}, 1)
    for _ in range(2):
        assert to_line(good) == r"m,t=a\ b v=1.0 1"
        with pytest.raises(LineProtocolError, match="control character"):
            to_line(bad)
