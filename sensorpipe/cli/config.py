"""`sensorpipe config`: the example configuration files that ship with sensorpipe."""

from __future__ import annotations

import click

from sensorpipe.resources import EXAMPLE_CONFIGS, example_config


@click.group()
def config() -> None:
    """Example configuration files, to start your own from."""


@config.command("example")
@click.argument("name", metavar="NAME", type=click.Choice(sorted(EXAMPLE_CONFIGS)))
def config_example(name: str) -> None:
    """Print the example configuration NAME (redirect it into a file and edit that).

    \b
    edge         a Raspberry Pi with air sensors (SDS011, BME280, SHT4x, a soil probe; the
                 other sensors commented: PMS5003, SPS30, SCD30/SCD4x, DS18B20)
    edge-camera  a Raspberry Pi that counts passers-by with a camera
    gateway      the kit gateway (airrohr kits, The Things Stack)
    ingest       the ingest (broker, InfluxDB, dead-letter store)
    registry     the device registry
    serve        the HTTP API and dashboard (`sensorpipe serve`)
    """
    click.echo(example_config(name).read_text(encoding="utf-8"), nl=False)
