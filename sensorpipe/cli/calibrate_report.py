"""`sensorpipe calibrate report`: one self-contained HTML page about a calibration
(calibration.report). `calibrate` adds the command to its group."""

from __future__ import annotations

from pathlib import Path

import click

from sensorpipe.calibration.updating import iso_ms
from sensorpipe.cli.calibrate_book import calibration_book, influx_client, load_record, parse_period
from sensorpipe.cli.common import fail
from sensorpipe.cli.options import DIR_OPTION, INFLUX_OPTIONS

REPORT_OUT = click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="The HTML file to write (self-contained: inline SVG, no scripts).",
)  # fmt: skip


@click.command("report")
@click.argument("calibration_id")
@REPORT_OUT
@DIR_OPTION
@INFLUX_OPTIONS
@click.option("--from", "start", default=None, help="Start (default: the calibration's period).")
@click.option("--to", "end", default=None, help="End (default: the calibration's period).")
def calibrate_report(
    calibration_id: str,
    directory: Path | None,
    influx_url: str | None,
    database: str,
    out: Path,
    start: str | None,
    end: str | None,
) -> None:
    """Write one HTML page about calibration CALIBRATION_ID: the raw and the calibrated hourly
    means against the reference (scatter, with the 1:1 line, the EPA targets and the fitted
    line), the statistics, the time series, the method and its register entry, fog hours
    marked; read from InfluxDB as the fit read them."""
    from sensorpipe.calibration.methods import CalibrationError
    from sensorpipe.calibration.report import check_pairs, render, report_pairs
    from sensorpipe.calibration.store import _iso

    if out.suffix.lower() not in (".html", ".htm"):
        fail(
            f"--out {out}: only an HTML report is written (.html); a PNG needs a drawing "
            "library sensorpipe does not carry: open the HTML and print or screenshot it"
        )
    t0, t1 = parse_period(start, end)
    record = load_record(directory, calibration_id)
    start_ms = int(t0.timestamp() * 1000) if t0 else iso_ms(record["period"]["from"])
    end_ms = int(t1.timestamp() * 1000) if t1 else iso_ms(record["period"]["to"])
    if end_ms <= start_ms:
        fail(f"--from/--to: the period {_iso(start_ms)} .. {_iso(end_ms)} is empty")
    factors = None
    if record["method"] == "group":
        with calibration_book(directory, create=False) as book:
            assert book is not None
            factors = {f.hour_ms: f.factor for f in book.factors(calibration_id, start_ms, end_ms)}
    period = (str(_iso(start_ms)), str(_iso(end_ms)))
    with influx_client(directory, influx_url, database) as client:
        try:
            pairs = report_pairs(client, record, start_ms, end_ms, factors)
            check_pairs(pairs, period)
        except CalibrationError as exc:
            fail(f"{calibration_id}: {exc}")
    page = render(record, pairs, period, record["assigned"])
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(f"--out {out}: cannot write it ({exc.strerror or exc}); choose a writable path")
    click.echo(
        f"{out}: report of {calibration_id}, {len(pairs)} hourly pairs, {period[0]} .. {period[1]}"
    )
