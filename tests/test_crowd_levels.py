"""Crowding levels per interval (sensorpipe.crowd.levels and the answer-to-intervals step of
crowd.observed): partial running fractions scale the flow up, too little gives no level with
its reason, occupancy never drifts below zero, the quiet-hour reset, and the reset on the
23- and 25-hour days of Europe/Amsterdam and Pacific/Auckland."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sensorpipe.crowd.levels import (
    AreaInterval,
    area_running_fraction,
    enclosed_levels,
    previous_reset,
    quiet_hour_instant,
    reached,
    reset_instants,
    street_levels,
)
from sensorpipe.crowd.observed import area_intervals
from sensorpipe.protocol.registry import AreaLine

H = 3_600_000
AMS = ZoneInfo("Europe/Amsterdam")
AKL = ZoneInfo("Pacific/Auckland")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_partial_running_fractions_scale_the_flow_up() -> None:
    t = _ms("2026-06-01T12:00:00+00:00")
    intervals = [
        AreaInterval(t, flow=700, running_fraction=1.0),
        AreaInterval(t + H, flow=350, running_fraction=0.5),  # half ran: as busy, not half
        AreaInterval(t + 2 * H, flow=90, running_fraction=0.1),  # too little to scale up
        AreaInterval(t + 3 * H, flow=0, running_fraction=0.0),
    ]
    levels = street_levels(intervals, capacity=1000, thresholds=[0.7, 0.9])
    assert [lv.flow for lv in levels] == [700, 700, None, None]
    assert [lv.level for lv in levels] == [0.7, 0.7, None, None]
    assert [lv.reached for lv in levels] == [0.7, 0.7, None, None]
    assert levels[0].reason is None
    assert levels[2].reason == "the counters ran 10% of the interval, below 25%"
    assert levels[3].reason == "no counter reported"
    # a device alone: the scaled flow, no level
    alone = street_levels(intervals[:2], capacity=None)
    assert [(lv.flow, lv.level) for lv in alone] == [(700, None), (700, None)]


def test_area_running_fraction_counts_a_silent_counter_as_zero() -> None:
    assert area_running_fraction([1.0, None]) == 0.5
    assert area_running_fraction([1.0, 0.5, 0.0, None]) == 0.375
    assert area_running_fraction([]) == 0.0
    assert reached(0.95, [0.7, 0.9]) == 0.9 and reached(0.69, [0.7, 0.9]) is None


def test_answer_to_intervals_with_partial_missing_and_flagged_counters() -> None:
    t = "2026-06-01T12:00:00Z"
    t2 = "2026-06-01T13:00:00Z"
    answer = {
        "series": [
            {
                "device_id": "gate-a",
                "time": [t, t2],
                "running_fraction": [1.0, 0.5],
                "counts": [
                    {"direction": "left_to_right", "values": [30, 10]},
                    {"direction": "right_to_left", "values": [5, 4]},
                ],
            },
            {
                "device_id": "gate-b",
                "time": [t, t2],
                "running_fraction": [1.0, 1.0],
                # its second hour's every count was flagged (stuck) and left out
                "counts": [{"direction": "left_to_right", "values": [20, None]}],
            },
        ]
    }
    lines = [
        AreaLine(device="gate-a", inward=["left_to_right"], outward=["right_to_left"]),
        AreaLine(device="gate-b", inward=["left_to_right"]),
        AreaLine(device="gate-c", inward=["left_to_right"]),  # never reported
    ]
    start = _ms("2026-06-01T12:00:00+00:00")
    got = area_intervals(answer, lines, start, start + 2 * H, 3600)
    assert got == [
        AreaInterval(start, flow=55, inward=50, outward=5, running_fraction=2 / 3),
        AreaInterval(start + H, flow=14, inward=10, outward=4, running_fraction=0.5 / 3, flagged=1),
    ]
    # a sixth of the interval ran: no level, and the reason names the flagged counter
    (_, second) = street_levels(got, capacity=100)
    assert second.level is None
    assert second.reason == (
        "the counters ran 17% of the interval, below 25% (1 left out: every count flagged)"
    )


def _hourly(start: int, ins: list[int], outs: list[int]) -> list[AreaInterval]:
    return [
        AreaInterval(start + i * H, flow=a + b, inward=a, outward=b)
        for i, (a, b) in enumerate(zip(ins, outs, strict=True))
    ]


def test_occupancy_never_drifts_below_zero() -> None:
    # Midday, far from the quiet hour: more go out than the counters saw come in.
    start = _ms("2026-06-01T10:00:00+00:00")
    levels = enclosed_levels(
        _hourly(start, [10, 0, 5, 40], [3, 30, 0, 0]), 100, 3600, AMS, 4, [0.4]
    )
    assert [lv.occupancy for lv in levels] == [7, 0, 5, 45]  # not 7, -23, -18, 22
    assert [lv.corrected for lv in levels] == [0, 23, 0, 0]
    assert [lv.level for lv in levels] == [0.07, 0, 0.05, 0.45]
    assert [lv.reached for lv in levels] == [None, None, None, 0.4]


def test_partial_fraction_scales_ins_and_outs_and_a_gap_keeps_the_occupancy() -> None:
    start = _ms("2026-06-01T10:00:00+00:00")
    intervals = [
        AreaInterval(start, flow=20, inward=20, outward=0, running_fraction=1.0),
        AreaInterval(start + H, flow=12, inward=10, outward=2, running_fraction=0.5),
        AreaInterval(start + 2 * H, flow=5, inward=5, outward=0, running_fraction=0.1),
        AreaInterval(start + 3 * H, flow=1, inward=0, outward=1, running_fraction=1.0),
    ]
    levels = enclosed_levels(intervals, 100, 3600, AMS, 4)
    assert [lv.occupancy for lv in levels] == [20, 36, None, 35]
    assert levels[2].level is None and "10%" in (levels[2].reason or "")


def test_the_quiet_hour_resets_the_occupancy() -> None:
    # Amsterdam in June is UTC+2: the quiet hour 04:00 is 02:00 UTC.
    start = _ms("2026-06-01T22:00:00+00:00")
    levels = enclosed_levels(_hourly(start, [5] * 6, [1] * 6), 100, 3600, AMS, 4)
    assert [lv.occupancy for lv in levels] == [4, 8, 12, 16, 4, 8]
    assert [lv.reset_from for lv in levels] == [None, None, None, None, 16, None]
    assert datetime.fromtimestamp(levels[4].start_ms / 1000, UTC).hour == 2
    assert previous_reset(_ms("2026-06-02T01:59:00+00:00"), AMS, 4) == _ms(
        "2026-06-01T02:00:00+00:00"
    )
    assert previous_reset(_ms("2026-06-02T02:00:00+00:00"), AMS, 4) == _ms(
        "2026-06-02T02:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (AMS, "2026-03-29", 23),  # summer time begins: 02:00 -> 03:00
        (AMS, "2026-10-25", 25),  # ends: 03:00 -> 02:00
        (AKL, "2026-09-27", 23),  # NZ daylight time begins: 02:00 -> 03:00
        (AKL, "2026-04-05", 25),  # ends: 03:00 -> 02:00
    ],
)
def test_the_reset_on_a_23_and_a_25_hour_day(zone: ZoneInfo, day: str, hours: int) -> None:
    """One person comes in every hour: the occupancy dropped at the quiet hour is the
    number of hours since the last one, 23 or 25 on the day the clocks change."""
    reset = quiet_hour_instant(datetime.fromisoformat(day).date(), zone, 4)
    local = datetime.fromtimestamp(reset / 1000, UTC).astimezone(zone)
    assert (local.hour, local.minute) == (4, 0)
    start = reset - 30 * H
    levels = enclosed_levels(_hourly(start, [1] * 40, [0] * 40), 1000, 3600, zone, 4)
    by_start = {lv.start_ms: lv for lv in levels}
    assert by_start[reset].reset_from == hours
    assert by_start[reset].occupancy == 1
    resets = reset_instants(start, start + 40 * H, zone, 4)
    assert resets[-1] == reset and resets[-1] - resets[-2] == hours * H


def test_a_quiet_hour_the_clock_skips_or_repeats() -> None:
    # 02:00 does not happen in Amsterdam on 2026-03-29: the reset is when the clock jumps,
    # 03:00 CEST (01:00 UTC); 02:00 happens twice on 2026-10-25: the first (00:00 UTC).
    spring = quiet_hour_instant(datetime(2026, 3, 29).date(), AMS, 2)
    autumn = quiet_hour_instant(datetime(2026, 10, 25).date(), AMS, 2)
    assert spring == _ms("2026-03-29T01:00:00+00:00")
    assert autumn == _ms("2026-10-25T00:00:00+00:00")
    resets = reset_instants(spring - 2 * H, autumn + 1, AMS, 2)
    assert len(resets) == 211  # one a day, no day skipped or doubled
    gaps = [b - a for a, b in itertools.pairwise(resets)]
    # the day after the skipped hour is 23 hours from the jump; every other one 24
    assert gaps[0] == 23 * H and set(gaps[1:]) == {24 * H}
    assert timedelta(milliseconds=resets[-1] - resets[0]) == timedelta(days=210, hours=-1)
