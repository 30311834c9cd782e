"""`sensorpipe devices export` and `devices network`: the public register and its defaults.

`export` writes the register (json, geojson, csv or a self-contained html page) with how each
device runs when the stack's InfluxDB answers, or the algorithms sensorpipe uses in the Dutch
algorithm register's terms (algorithms: JSON, algorithms-html: a page); `network` sets or prints
what applies to every device unless its own entry says otherwise. `devices` adds both commands
to its group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from sensorpipe.cli.common import fail, invalid, local_stack
from sensorpipe.cli.options import DIR_OPTION, json_option
from sensorpipe.cli.provisioning import warn_personal_data_gaps

if TYPE_CHECKING:
    from sensorpipe.protocol.registry import Registry
    from sensorpipe.query.register import RegisterStats
    from sensorpipe.stack.local import LocalStack


@click.command("export")
@DIR_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "geojson", "csv", "html", "algorithms", "algorithms-html"]),
    default="json",
    show_default=True,
    help="json: a list of devices; geojson: a FeatureCollection; csv: a row per device; "
    "html: one self-contained page for a website; algorithms: the algorithms sensorpipe uses "
    "as JSON in the Dutch algorithm register's field names (standard 1.0); algorithms-html: "
    "the same as a page.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "nl"]),
    default=None,
    help="Language of the html pages (default: en for html, nl for algorithms-html).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file (default: standard output).",
)
@click.option(
    "--influx-url",
    default=None,
    help="InfluxDB for first/last seen, uptime and latency (default: the stack's).",
)
@click.option("--database", default=None, help="Its database (default: the stack's, sensorpipe).")
def devices_export(
    directory: Path | None,
    fmt: str,
    lang: str | None,
    out: str | None,
    influx_url: str | None,
    database: str | None,
) -> None:
    """Public register: what each sensor measures, who owns it, why, personal data, legal basis,
    retention, licence, contact, rounded location, and (when InfluxDB answers) how it runs; or
    (--format algorithms, algorithms-html) the algorithms it uses, in the Dutch algorithm
    register's terms."""
    from sensorpipe.query.export import export

    if lang is not None and fmt not in ("html", "algorithms-html"):
        fail(
            f"--lang {lang}: only the html pages are translated; json, geojson, csv and "
            f"algorithms use the registers' field names (use --format html or algorithms-html, "
            f"or leave --lang out)"
        )
    if out is not None and not Path(out).parent.is_dir():
        fail(f"--out {out}: no directory {Path(out).parent}; create it or give another file")
    s = local_stack(directory)
    registry = s.registry()
    if fmt.startswith("algorithms"):
        text, n = _algorithms(registry, fmt, lang or "nl", _methods_in_use(directory))
        _write(text, out, f"{n} algorithms ({fmt})")
        return
    calibration = _calibration(directory, registry)  # first: a bad book fails before InfluxDB
    stats, why_not = _register_stats(s, influx_url, database)
    if why_not:
        click.echo(
            f"note: {why_not}; exported the register without first/last seen, uptime, missing "
            f"messages and latency",
            err=True,
        )
    text = export(registry, stats, fmt, lang=lang or "en", calibration=calibration)
    warn_personal_data_gaps(registry)
    _write(text, out, f"{len(registry.devices)} devices ({fmt})")


def _write(text: str, out: str | None, what: str) -> None:
    """`text` to standard output, or to the file `out` and a line saying `what` was written."""
    if out is None:
        click.echo(text.rstrip("\n"))
        return
    try:
        Path(out).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(
            f"--out {out}: cannot write it ({exc.strerror or exc}); give a file in a "
            f"directory that exists"
        )
    click.echo(f"wrote {what} to {out}", err=True)


def _calibration(directory: Path | None, registry: Registry) -> dict[str, Any]:
    """Per device and quantity, the calibration that applies now (none without a book)."""
    import time

    from sensorpipe.calibration.status import calibration_status
    from sensorpipe.cli.calibrate import calibration_book

    with calibration_book(directory, create=False) as book:
        return calibration_status(book, registry.devices, int(time.time() * 1000))


def _methods_in_use(directory: Path | None) -> set[str]:
    """The calibration methods assigned to a device in the stack's calibration book."""
    from sensorpipe.cli.calibrate import calibration_book

    with calibration_book(directory, create=False) as book:
        return set() if book is None else book.methods_in_use()


def _algorithms(
    registry: Registry, fmt: str, lang: str, calibrations_in_use: set[str]
) -> tuple[str, int]:
    """The algorithm register's entries as JSON or a page, and how many; one warning line when
    the network settings lack the organisation's name, contact or legal basis."""
    from sensorpipe.query import algorithm_page, algorithms

    try:
        if fmt == "algorithms":
            entries = algorithms.algorithm_entries(
                registry, calibrations_in_use=calibrations_in_use
            )
            text, n = algorithms.to_json(entries), len(entries)
        else:
            fields = algorithms.entry_fields(
                registry,
                lang="en" if lang == "en" else "nl",
                calibrations_in_use=calibrations_in_use,
            )
            text = algorithm_page.to_html(fields, registry.network, lang=lang)
            n = len(fields)
    except algorithms.ModelCardError as exc:
        fail(f"{exc}; reinstall sensorpipe, whose model files are damaged")
    missing = algorithms.missing_organisation_fields(registry.network)
    if missing:
        click.echo(
            f"warning: the algorithm register's entries leave the "
            f"{', '.join(what for what, _ in missing)} empty: give them with "
            f"`sensorpipe devices network {' '.join(o + ' ...' for _, o in missing)}`",
            err=True,
        )
    return text, n


def _register_stats(
    s: LocalStack, influx_url: str | None, database: str | None
) -> tuple[RegisterStats | None, str | None]:
    """The statistics from InfluxDB, or None and why there are none."""
    from sensorpipe.ingest.errors import QueryError, StorageUnavailable
    from sensorpipe.ingest.influx import InfluxClient
    from sensorpipe.query.register import register_stats

    if influx_url is None:
        endpoint = s.influx_endpoint()
        if endpoint is None:
            return None, f"no stack in {s.directory} (pass --influx-url for statistics)"
        influx_url, database = endpoint[0], database or endpoint[1]
    client = InfluxClient(influx_url, database or "sensorpipe", timeout_s=10.0)
    try:
        if not client.ping():
            return None, f"InfluxDB at {influx_url} does not answer"
        return register_stats(client), None
    except (StorageUnavailable, QueryError) as exc:
        return None, f"InfluxDB at {influx_url} could not give statistics ({exc})"
    finally:
        client.close()


@click.command("network")
@DIR_OPTION
@click.option("--name", default=None, help="Name of the network, the register's title.")
@click.option("--operator", default=None, help="Who runs it (a municipality, a foundation).")
@click.option("--contact", default=None, help="Whom residents ask about any device.")
@click.option("--legal-basis", default=None, help="Legal basis where personal data is processed.")
@click.option("--retention", default=None, help="How long data is kept.")
@click.option("--licence", default=None, help="Licence of the published data, e.g. CC-BY-4.0.")
@click.option("--privacy-url", default=None, help="Web address of the privacy statement.")
@json_option("Print the network's values as JSON.")
def devices_network(
    directory: Path | None,
    name: str | None,
    operator: str | None,
    contact: str | None,
    legal_basis: str | None,
    retention: str | None,
    licence: str | None,
    privacy_url: str | None,
    as_json: bool,
) -> None:
    """Set what applies to every device unless its own entry says otherwise (contact, legal
    basis, retention, licence) and who runs the network; without options, print them."""
    from sensorpipe.protocol.registry import NetworkInfo, save_registry

    given = {
        "name": name,
        "operator": operator,
        "contact": contact,
        "legal_basis": legal_basis,
        "retention": retention,
        "licence": licence,
        "privacy_url": privacy_url,
    }
    changes = {k: v.strip() for k, v in given.items() if v is not None}
    if changes.get("name") == "":
        fail("--name '': give the network a name (it is the register's title)")
    url = changes.get("privacy_url")
    if url and (
        not url.lower().startswith(("https://", "http://")) or any(c.isspace() for c in url)
    ):
        fail(f"--privacy-url {url!r}: give a web address like https://example.org/privacy")
    s = local_stack(directory)
    registry = s.registry()
    if changes:
        try:
            registry.network = NetworkInfo(**{**registry.network.model_dump(), **changes})
        except ValidationError as exc:
            invalid(exc, {k: "--" + k.replace("_", "-") for k in given})
        save_registry(registry, s.registry_path)
    values = registry.network.model_dump()
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    if changes:
        click.echo(f"network defaults saved in {s.registry_path}")
    for key, value in values.items():
        click.echo(f"{key:12s} {value}")
