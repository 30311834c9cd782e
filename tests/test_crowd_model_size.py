"""The forecasting model's size (issue 29's acceptance): named sizes a municipality picks from
(`--size`, `--trees`, `--leaves` of `crowd backtest` and `crowd train`), the training time per
horizon the backtest reports, and model folders saved before the sizes existed still loading."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.crowd.forecast import SIZES, Settings, sized
from sensorpipe.crowd.series import iso
from tests.test_crowd_forecast import synthetic

SPAN = ["--train-until", "2024-07-29", "--from", "2024-07-29", "--to", "2024-07-31"]
PLACE = ["--timezone", "Pacific/Auckland", "--country", "NZ", "--subdiv", "AUK"]


def test_the_default_settings_are_the_default_size() -> None:
    assert Settings() == sized("default") == sized()
    large = sized("large", trees=20, leaves=None, threads=2)
    assert (large.trees, large.leaves, large.threads) == (20, SIZES["large"]["leaves"], 2)
    assert large.learning_rate == SIZES["large"]["learning_rate"]
    # The sizes are ordered: more (or as many) trees and leaves, smaller steps.
    small, default, big = (SIZES[k] for k in ("small", "default", "large"))
    assert small["leaves"] <= default["leaves"] <= big["leaves"]
    assert small["trees"] * small["learning_rate"] <= big["trees"] * big["learning_rate"]


def test_the_size_option_offers_every_size() -> None:
    from sensorpipe.cli.crowd_backtest import TRAINING_OPTIONS

    @TRAINING_OPTIONS
    def command(**_: object) -> None:
        return None

    size = next(p for p in command.__click_params__ if p.name == "size")  # type: ignore[attr-defined]
    assert list(size.type.choices) == list(SIZES) and size.default == "default"


@pytest.fixture(scope="module")
def counts_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    c = synthetic(9, 2, start="2024-06-03T00:00")
    path = tmp_path_factory.mktemp("size") / "counts.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_utc", "site", "count"])
        for i in range(c.hours):
            for s, name in enumerate(c.names):
                w.writerow([iso(c.time(i)), name, int(c.values[i, s])])
    return path


def test_the_backtest_takes_a_size_and_reports_training_time(counts_csv: Path) -> None:
    pytest.importorskip("lightgbm")
    args = ["crowd", "backtest", "--counts-csv", str(counts_csv), *SPAN, *PLACE]
    args += ["--horizon", "1h", "--horizon", "3h", "--size", "large", "--trees", "20"]
    args += ["--leaves", "7"]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    lr = SIZES["large"]["learning_rate"]
    assert lines[0].endswith(f"; model: 20 trees, 7 leaves, learning rate {lr}, 1 thread(s)")
    assert lines[1].split()[-2:] == ["trained", "in"]
    for line in lines[2:]:
        assert line.endswith(" s: the interval's model)") and " s (+ " in line, line
    assert "1 h: trained in" in table.stderr
    summary = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    for h in ("1h", "3h"):
        seconds = summary["train_seconds"][h]
        assert set(seconds) == {"interval", "model"}
        assert all(v >= 0 for v in seconds.values())


def test_a_saved_size_is_what_trains(counts_csv: Path, tmp_path: Path) -> None:
    """`crowd train --size`: the booster has the size's trees and at most its leaves, and
    model.json records the settings."""
    pytest.importorskip("lightgbm")
    from sensorpipe.cli.crowd_backtest import model_settings
    from sensorpipe.cli.crowd_forecast import _train_and_save
    from sensorpipe.crowd.saved import find
    from sensorpipe.crowd.series import parse_time, read_counts_csv

    counts = read_counts_csv(counts_csv)
    until = parse_time("2024-07-29T00:00:00Z")
    settings = model_settings("small", 12, 5, 1)
    place = ("Pacific/Auckland", "NZ", "AUK")
    _train_and_save(counts, [1], place, (until, None), [], settings, tmp_path, True)
    saved = find(tmp_path, "device", "site-0")
    assert saved is not None
    assert saved.meta["settings"]["trees"] == 12 and saved.meta["settings"]["leaves"] == 5
    booster = saved.load().models[1].booster
    assert booster.num_trees() == 12
    dump = booster.dump_model()["tree_info"]
    assert max(t["num_leaves"] for t in dump) <= 5


OLD_SETTINGS = {  # model.json's settings as sensorpipe wrote them before the sizes
    "trees": 600, "learning_rate": 0.05, "leaves": 63, "min_leaf": 50, "threads": 1,
    "calibration_days": 182, "coverage": 0.8, "seed": 29,
}  # fmt: skip


def test_a_model_folder_saved_before_the_sizes_still_forecasts(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    from sensorpipe.crowd.forecast import Training, Where, train
    from sensorpipe.crowd.saved import find, save

    counts = synthetic(9, 2, start="2024-06-03T00:00")
    until = counts.time(8 * 168)
    fc = train(counts, [1], Training(Where("Pacific/Auckland", "NZ"), until, settings=sized(
        "small", trees=15, leaves=7)))  # fmt: skip
    folder = save(fc, tmp_path / "new", "device", {"settings": OLD_SETTINGS})
    # The folder exactly as the previous version wrote it: format 1, those keys only.
    old = tmp_path / "old" / folder.name
    shutil.copytree(folder, old)
    meta = json.loads((old / "model.json").read_text())
    assert meta["format"] == 1
    keys = {"format", "kind", "names", "trained_until", "where", "horizons", "intervals"}
    (old / "model.json").write_text(json.dumps({k: meta[k] for k in keys} | {
        "settings": OLD_SETTINGS, "train_from": None, "excluded": []}))  # fmt: skip
    saved = find(tmp_path / "old", "device", "site-1")
    assert saved is not None
    origin = counts.time(8 * 168 + 10)
    got, want = saved.load().forecast(counts, origin)[1], fc.forecast(counts, origin)[1]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
