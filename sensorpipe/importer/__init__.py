"""`sensorpipe import`: history files into the same series as live data.

One module per format (`sensor_community`, `opensensemap`, `telraam`, `track`), each a thin
parser behind the contract in `base`; `runner` does what all share (registry, batching on the
writer thread, dead letters, the ledger that makes a second import store nothing twice, the
`imports` records). Every point carries the provenance tags `source=import:<format>` and
`vouch=import`.
"""
