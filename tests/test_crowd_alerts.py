"""Alert rules (sensorpipe.crowd.alerts): hysteresis on hovering levels, jumps over two
thresholds, gaps, the hold time, forecasts as their own kind, and the state kept between runs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.crowd.alerts import (
    Alert,
    AlertRules,
    AlertsConfig,
    AreaAlerts,
    LevelPoint,
    evaluate,
)
from sensorpipe.protocol.registry import AreaEntry, AreaLine

H = 3600_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def observed(*levels: float | None) -> list[LevelPoint]:
    return [LevelPoint(T0 + i * H, lv) for i, lv in enumerate(levels)]


def raised(levels: list[LevelPoint], rules: AlertRules | None = None) -> list[tuple[int, float]]:
    alerts = evaluate("hall", levels, rules or AlertRules())
    return [((a.time_ms - T0) // H, a.threshold) for a in alerts]


def test_a_level_hovering_at_the_line_alerts_once() -> None:
    assert raised(observed(0.5, 0.69, 0.71, 0.69, 0.72, 0.68, 0.70, 0.66)) == [(2, 0.7)]


def test_it_alerts_again_after_falling_below_the_margin() -> None:
    assert raised(observed(0.71, 0.64, 0.71)) == [(0, 0.7), (2, 0.7)]
    # 0.66 is not below 0.7 - 0.05: still disarmed; a margin of 0.02 re-arms it.
    assert raised(observed(0.71, 0.66, 0.71)) == [(0, 0.7)]
    assert raised(observed(0.71, 0.66, 0.71), AlertRules(margin=0.02)) == [(0, 0.7), (2, 0.7)]


def test_a_jump_over_two_thresholds_raises_both() -> None:
    assert raised(observed(0.5, 0.95, 0.92, 0.3, 0.91)) == [
        (1, 0.7),
        (1, 0.9),
        (4, 0.7),
        (4, 0.9),
    ]
    # Back to 0.8 re-arms 90 % (below 0.85) but not 70 %.
    assert raised(observed(0.95, 0.8, 0.93)) == [(0, 0.7), (0, 0.9), (2, 0.9)]


def test_a_gap_neither_alerts_nor_rearms() -> None:
    assert raised(observed(0.75, None, None, 0.76)) == [(0, 0.7)]
    assert raised(observed(0.5, None, 0.75)) == [(2, 0.7)]


def test_the_hold_time_rearms_a_level_settled_under_the_line() -> None:
    levels = observed(0.72, 0.68, 0.68, 0.68, 0.71)
    assert raised(levels) == [(0, 0.7)]
    # Under the line from hour 1: re-armed at hour 3 (two hours on), so hour 4 alerts again.
    assert raised(levels, AlertRules(rearm_after_s=2 * 3600)) == [(0, 0.7), (4, 0.7)]
    assert raised(levels, AlertRules(rearm_after_s=4 * 3600)) == [(0, 0.7)]
    # A crossing in between starts the count again.
    assert raised(observed(0.72, 0.68, 0.71, 0.68, 0.68, 0.71), AlertRules(rearm_after_s=7200)) == [
        (0, 0.7)
    ]


def forecast_run(made_h: int, *levels: float) -> list[LevelPoint]:
    made = T0 + made_h * H
    return [
        LevelPoint(made + (i + 1) * H, lv, "forecast", made, (i + 1) * 3600)
        for i, lv in enumerate(levels)
    ]


def test_a_forecast_crossing_within_the_horizon_is_its_own_alert() -> None:
    alerts = evaluate("hall", forecast_run(13, 0.5, 0.72, 0.8), AlertRules())
    assert [(a.kind, a.threshold, a.horizon_s) for a in alerts] == [("forecast", 0.7, 7200)]
    assert alerts[0].message == (
        "hall: expected to pass 70% at 2026-01-01 15:00 UTC (forecast 72%, 2h ahead)"
    )
    assert alerts[0].payload()["time"] == "2026-01-01T15:00:00Z"
    # Beyond the horizon: nothing.
    assert evaluate("hall", forecast_run(13, 0.5, 0.72), AlertRules(forecast_horizon_s=3600)) == []


def test_forecast_runs_have_hysteresis_and_yield_to_observed() -> None:
    state = AreaAlerts("hall")
    assert [a.kind for a in state.feed(forecast_run(12, 0.6, 0.75))] == ["forecast"]
    assert state.feed(forecast_run(13, 0.74, 0.73)) == []  # the same crossing, still expected
    # The observed level passes it: its own alert, and no forecast alert while it stays.
    passing = observed(*([0.5] * 14), 0.71)
    assert [a.kind for a in state.feed(passing)] == ["observed"]
    assert state.feed(forecast_run(14, 0.6, 0.6)) == []  # re-arms the forecast line
    assert state.feed(forecast_run(15, 0.8, 0.8)) == []  # observed still past 70 %
    state.feed(observed(*([0.5] * 16)))  # observed re-armed (hours 0-15, last 0.5)
    assert state.feed(forecast_run(16, 0.6, 0.6)) == []
    assert [a.threshold for a in state.feed(forecast_run(17, 0.6, 0.91))] == [0.7, 0.9]


def test_the_state_kept_between_runs_gives_the_same_alerts() -> None:
    levels = observed(0.5, 0.71, 0.69, 0.72, 0.3, 0.75, 0.95)
    whole = evaluate("hall", levels, AlertRules())
    rules = AlertRules()
    got = []
    state = AreaAlerts("hall", rules).state()
    for p in levels:
        run = AreaAlerts.from_state("hall", rules, state)
        got += run.feed([p])
        state = run.state()
    assert got == whole
    assert [a.id for a in whole] == [
        f"hall:observed:0.7:{T0 + H}",
        f"hall:observed:0.7:{T0 + 5 * H}",
        f"hall:observed:0.9:{T0 + 6 * H}",
    ]
    assert state["last_ms"] == T0 + 6 * H


def test_a_message_says_the_areas_local_time_and_utc() -> None:
    """A control room reads its own clock: the area's local time with its zone, UTC beside it
    (23:00 UTC on 31 December is 1 January in Amsterdam and in Auckland)."""
    t = 1_767_222_000_000  # 2025-12-31T23:00Z
    observed = Alert("dam", "observed", 0.7, 0.75, t, timezone="Europe/Amsterdam")
    assert observed.message == "dam: passed 70% at 2026-01-01 00:00 CET (23:00 UTC; level 75%)"
    ahead = Alert("queen", "forecast", 0.9, 0.93, t, t - 3_600_000, 7200, "Pacific/Auckland")
    assert ahead.message == (
        "queen: expected to pass 90% at 2026-01-01 12:00 NZDT (23:00 UTC; forecast 93%, 2h ahead)"
    )
    assert "timezone" not in ahead.payload() and ahead.payload()["message"] == ahead.message
    assert Alert("u", "observed", 0.7, 0.75, t, timezone="UTC").message == (
        "u: passed 70% at 2025-12-31 23:00 UTC (level 75%)"
    )
    rules = AlertsConfig().rules(
        AreaEntry(name="Dam", kind="street", capacity=10, lines=[AreaLine(device="g")])
    )
    (raised,) = evaluate("dam", [LevelPoint(t, 0.75)], rules)[:1]
    assert raised.message.startswith("dam: passed 70% at 2026-01-01 00:00 CET")


def test_crowd_alerts_from_a_date_is_each_areas_own_midnight(tmp_path: Path) -> None:
    """`crowd alerts --from 2026-01-01` lists each area's alerts from its own local midnight
    (as `crowd alerts check`, `crowd train` and `crowd backtest` read a date); with an offset
    the time stays as given."""
    from sensorpipe.crowd.alertstore import AlertStore
    from sensorpipe.protocol.registry import DeviceEntry, Registry, save_registry

    line = [AreaLine(device="gate-1")]
    areas = {
        "hall": AreaEntry(name="Hall", kind="street", capacity=9, lines=line),  # Amsterdam
        "quay": AreaEntry(
            name="Quay", kind="street", capacity=9, lines=line, timezone="Pacific/Auckland"
        ),
    }
    devices = {"gate-1": DeviceEntry(site="x", password_hash="x")}
    save_registry(Registry(devices=devices, areas=areas), tmp_path / "registry.toml")
    store = AlertStore(tmp_path / "alerts.sqlite")
    # an hour before each one's local midnight and the hour after it
    for area, hours in (("hall", (-2, -1)), ("quay", (-14, -13))):
        for h in hours:
            store.add(Alert(area, "observed", 0.7, 0.8, T0 + h * H), T0)
    store.close()
    args = ["crowd", "alerts", "--dir", str(tmp_path), "--store", str(tmp_path / "alerts.sqlite")]

    def listed(start: str) -> list[tuple[str, str]]:
        result = CliRunner().invoke(main, [*args, "--from", start, "--json"])
        assert result.exit_code == 0, result.output
        return [(a["area"], a["time"]) for a in json.loads(result.stdout)]

    # Amsterdam's 1 January began at 23:00Z, Auckland's at 11:00Z on 31 December
    assert listed("2026-01-01") == [
        ("quay", "2025-12-31T11:00:00Z"),
        ("hall", "2025-12-31T23:00:00Z"),
    ]
    assert listed("2025-12-31T23:00Z") == [("hall", "2025-12-31T23:00:00Z")]
