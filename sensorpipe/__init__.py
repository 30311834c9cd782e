"""sensorpipe: local environmental measurement from a Raspberry Pi to a time series.

The components are subpackages, so that installing sensorpipe adds this one name to
site-packages: `protocol/` (the wire contract they share), `edge/` (the agent on the Pi),
`gateway/` (the broker's configuration and the kit gateway), `ingest/` (broker to InfluxDB),
`importer/` (history files into the same series), `quality/` (the quality flags both the ingest
and the importer store beside each air reading), `query/` and `api/` (reading what is stored:
the command line, and the HTTP service with its dashboard), `calibration/` (low-cost sensors
fitted against a reference station, the calibration book, values calibrated when read),
`crowd/` (areas and their crowding levels from the counts, forecasts of counts per device or
area and their backtest), `firmware_sim/` (simulated sensors
and devices), `stack/` (everything on one machine, or installed on a server) and `cli/` (the
`sensorpipe` command, which `__main__` runs). What several components share sits here at the
top and imports no component: `process` (child processes and loopback ports), `http_server`
(what both HTTP services share: uvicorn's bounds, bearer tokens, bodies read within a limit),
`places` (where sensorpipe's files lie on an installed Pi or server) and `resources` (the
files the package ships: the detectors in `models/` and the example configurations in
`config/`).
"""

from typing import Any

__version__: str  # set by __getattr__ when first read


def __getattr__(name: str) -> Any:
    # `__version__` is read from the installed package's metadata when first asked for (by the
    # command line and the HTTP services): the edge agent never asks, and parsing the metadata
    # would stay in its memory for nothing (bench.edge).
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("sensorpipe")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
