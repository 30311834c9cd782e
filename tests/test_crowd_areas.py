"""Areas in the registry (protocol.registry's `areas`) and `sensorpipe areas add|list|show|remove`:
a polygon's devices are those inside it, lines keep their directions in and out, an area that
names an unregistered device is refused, and the registry file round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from sensorpipe.cli.main import main
from sensorpipe.crowd.areas import (
    area_devices,
    areas_of_device,
    point_in_polygon,
    train_command,
)
from sensorpipe.protocol.messages import Location
from sensorpipe.protocol.registry import (
    AreaEntry,
    AreaLine,
    DeviceEntry,
    Registry,
    load_registry,
    save_registry,
)

# An L-shaped square: its notch is outside although it lies within the bounding box.
L_SHAPE = [(0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (1.0, 1.0), (1.0, 2.0), (0.0, 2.0)]


def test_point_in_polygon() -> None:
    assert point_in_polygon(0.5, 0.5, L_SHAPE)
    assert point_in_polygon(0.5, 1.5, L_SHAPE)
    assert not point_in_polygon(1.5, 1.5, L_SHAPE)  # the notch
    assert not point_in_polygon(3.0, 0.5, L_SHAPE)
    assert point_in_polygon(2.0, 0.5, L_SHAPE)  # on an edge: inside


def _device(lat: float | None = None, lon: float | None = None, n: int = 3) -> DeviceEntry:
    loc = None if lat is None or lon is None else Location(lat=lat, lon=lon)
    return DeviceEntry(site="x", password_hash="x", location=loc, location_precision_decimals=n)


def test_a_polygons_devices_are_those_inside_it() -> None:
    registry = Registry(
        devices={
            "in-a": _device(0.5, 0.5),
            "in-b": _device(1.5, 0.5),
            "notch": _device(1.5, 1.5),
            "nowhere": _device(),
            # at lat 1.0004 it is in the notch, but published rounded to lat 1.0: on the edge
            "rounded": _device(1.0004, 1.5),
        },
        areas={
            "square": AreaEntry(name="Square", kind="street", capacity=10, polygon=L_SHAPE),
        },
    )
    assert area_devices(registry, registry.areas["square"]) == ["in-a", "in-b", "rounded"]
    assert areas_of_device(registry, "in-a") == ["square"]
    assert areas_of_device(registry, "notch") == []
    # the `crowd train` a note suggests: a device's place is its first area's, else to fill in
    square = registry.areas["square"]
    assert train_command(registry, "device", "in-a") == (
        "`sensorpipe crowd train --device in-a --train-until now "
        f"--timezone {square.timezone} --country {square.country}`"
    )
    assert train_command(registry, "device", "notch") == (
        "`sensorpipe crowd train --device notch --train-until now --timezone ZONE --country CC` "
        "(ZONE and CC: where it counts, e.g. Europe/Amsterdam and NL)"
    )
    assert train_command(registry, "area", "square").endswith("--area square --train-until now`")
    # the ring is closed as GeoJSON closes it
    assert registry.areas["square"].polygon[-1] == registry.areas["square"].polygon[0]


def test_the_registry_refuses_an_area_of_unknown_devices_or_directions() -> None:
    line = AreaLine(device="gate-1", inward=["left_to_right"], outward=["right_to_left"])
    hall = AreaEntry(name="Hall", kind="enclosed", capacity=100, lines=[line])
    with pytest.raises(ValidationError, match="device 'gate-1' is not registered"):
        Registry(areas={"hall": hall})
    one_way = DeviceEntry(site="x", password_hash="x", directions=["north"])
    with pytest.raises(ValidationError, match="has no direction left_to_right, right_to_left"):
        Registry(devices={"gate-1": one_way}, areas={"hall": hall})
    with pytest.raises(ValidationError, match="needs a direction in and one out"):
        AreaEntry(name="H", kind="enclosed", capacity=1, lines=[AreaLine(device="gate-1")])
    with pytest.raises(ValidationError, match="either a polygon or counting lines"):
        AreaEntry(name="H", kind="street", capacity=1)
    with pytest.raises(ValidationError, match="cannot count both in and out"):
        AreaLine(device="g", inward=["a"], outward=["a"])


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_areas_add_list_show_remove(tmp_path: Path) -> None:
    stack = tmp_path / "st"
    stack.mkdir()
    save_registry(
        Registry(devices={"gate-1": _device(), "cam-2": _device(0.5, 0.5)}), stack / "registry.toml"
    )
    d = ["--dir", str(stack)]
    _run(
        "areas", "add", "hall", *d, "--name", "Hall", "--kind", "enclosed", "--capacity", "400",
        "--line", "gate-1:in=left_to_right:out=right_to_left", "--quiet-hour", "5",
        "--threshold", "60", "--threshold", "85%", "--timezone", "Pacific/Auckland",
        "--min-running", "0.5%",
        "--country", "NZ", "--subdivision", "AUK",
    )  # fmt: skip
    _run(
        "areas", "add", "square", *d, "--name", "Square", "--kind", "street",
        "--capacity", "900", "--interval", "15m", "--polygon", "0,0 2,0 2,1 1,1 1,2 0,2",
    )  # fmt: skip
    far = CliRunner().invoke(
        main, ["areas", "add", "far", *d, "--name", "Far", "--kind", "street", "--capacity", "9",
               "--polygon", "10,10 11,10 11,11"],
    )  # fmt: skip
    assert far.exit_code == 0 and "note: no registered device with a location lies inside" in (
        far.stderr
    )
    # (10°E, 10°N): not the Netherlands, yet the default Dutch time zone and holidays
    assert "note: far lies outside the Netherlands but has its time zone" in far.stderr
    assert "outside the Netherlands" not in CliRunner().invoke(
        main, ["areas", "add", "dam", *d, "--name", "Dam", "--kind", "street", "--capacity", "9",
               "--polygon", "4.88,52.37 4.90,52.37 4.90,52.38"],
    ).stderr  # fmt: skip
    _run("areas", "remove", "far", *d)
    _run("areas", "remove", "dam", *d)
    registry = load_registry(stack / "registry.toml")  # the file as written reads back
    hall = registry.areas["hall"]
    assert hall.lines == [
        AreaLine(device="gate-1", inward=["left_to_right"], outward=["right_to_left"])
    ]
    assert (hall.quiet_hour, hall.thresholds, hall.timezone) == (5, [0.6, 0.85], "Pacific/Auckland")
    assert (hall.country, hall.subdivision, hall.classes) == ("NZ", "AUK", ["pedestrian"])
    listed = json.loads(_run("areas", "list", *d, "--json"))
    assert [(a["area"], a["devices"]) for a in listed] == [
        ("hall", ["gate-1"]),
        ("square", ["cam-2"]),
    ]
    shown = json.loads(_run("areas", "show", "square", *d, "--json"))
    assert shown["interval"] == "15m" and shown["lines"][0]["device"] == "cam-2"
    assert hall.min_running_fraction == 0.005  # "0.5%": meant as written
    shown_hall = _run("areas", "show", "hall", *d)
    assert "line: gate-1  in: left_to_right  out: right_to_left" in shown_hall
    assert "thresholds: 60 %, 85 %" in shown_hall  # as given, in percent
    assert "min_running: 0.5 % of an interval" in shown_hall
    _run("areas", "remove", "hall", *d)
    assert list(load_registry(stack / "registry.toml").areas) == ["square"]
    assert "hall" not in _run("areas", "list", *d)


@click.command("hello")
def _hello() -> None:
    """A crowd command of another module."""
    click.echo("hello from another module")


def test_the_crowd_group_takes_commands_from_other_modules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sensorpipe.cli import crowd

    monkeypatch.setitem(crowd.SUBCOMMANDS, "hello", "tests.test_crowd_areas:_hello")
    monkeypatch.setattr(crowd.crowd, "commands", dict(crowd.crowd.commands))  # loaded: undone
    assert "hello" in CliRunner().invoke(main, ["crowd", "--help"]).stdout
    assert _run("crowd", "hello") == "hello from another module\n"


def test_a_polygon_given_as_lat_lon_is_said_to_be_swapped(tmp_path: Path) -> None:
    stack = tmp_path / "st"
    stack.mkdir()
    save_registry(Registry(devices={"dam-cam": _device(52.373, 4.893)}), stack / "registry.toml")
    d = ["--dir", str(stack)]
    # Dam square's corners written as lat,lon, where lon,lat is asked for
    swapped = CliRunner().invoke(
        main, ["areas", "add", "dam", *d, "--name", "Dam", "--kind", "street", "--capacity", "9",
               "--polygon", "52.37,4.88 52.37,4.90 52.38,4.90 52.38,4.88"],
    )  # fmt: skip
    assert swapped.exit_code == 0
    assert swapped.stderr == (
        "note: no device lies inside dam's polygon, but dam-cam would with each corner's two "
        "numbers swapped: a polygon is given as lon,lat (GeoJSON's order); add it again with "
        "--replace\n"
    )
    right = CliRunner().invoke(
        main, ["areas", "add", "dam", *d, "--replace", "--name", "Dam", "--kind", "street",
               "--capacity", "9", "--polygon", "4.88,52.37 4.90,52.37 4.90,52.38 4.88,52.38"],
    )  # fmt: skip
    assert right.exit_code == 0 and right.stderr == ""


def test_a_polygon_holds_the_counting_devices_in_it_not_the_air_ones() -> None:
    # An air sensor inside a street's polygon would count as a counter that never ran: the
    # level scaled up by a running fraction it pulls down (40 % running: 220 % for 88 %).
    def at(**fields: object) -> DeviceEntry:
        return DeviceEntry.model_validate(
            {"site": "x", "password_hash": "x", "location": {"lat": 0.5, "lon": 0.5}, **fields}
        )

    registry = Registry(
        devices={
            "cam": at(sensors=["camera"]),
            "imported": at(count_classes=["pedestrian"]),  # import csv of counts
            "undeclared": at(),  # any sensor: it may count
            "air": at(sensors=["sds011", "bme280"]),
            "kit": at(sensors=["sds011"], count_classes=[]),
        },
        areas={"square": AreaEntry(name="Square", kind="street", capacity=10, polygon=L_SHAPE)},
    )
    assert area_devices(registry, registry.areas["square"]) == ["cam", "imported", "undeclared"]
    assert areas_of_device(registry, "air") == []
