"""`sensorpipe import`: history files into the same series as live data.

One module per format (`sensor_community`, `opensensemap`, `telraam`, `track`), each a thin
parser behind the contract in `base`, built on the reader base in `reader` (header checks, CSV
or JSON of named columns) and the row checks of `base.ImportContext` (time, values, declared
sensor, storing), so a format holds only its columns, devices and units. `runner` does what all
share at run time (registry, batching on the writer thread, dead letters, the ledger that makes
a second import store nothing twice, the `imports` records). Every point carries the
provenance tags `source=import:<format>` and `vouch=import`.
"""
