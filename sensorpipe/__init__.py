"""sensorpipe: local environmental measurement from a Raspberry Pi to a time series.

The components (`edge`, `gateway`, `ingest`, `firmware_sim`, and `protocol`, the wire contract
they share) are subpackages, so that installing sensorpipe adds this one name to site-packages.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sensorpipe")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
