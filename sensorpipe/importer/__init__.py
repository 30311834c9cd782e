"""`sensorpipe import`: history files into the same series as live data.

One module per format (`sensor_community`, `opensensemap`, `telraam`, `track`, `logger_csv`
for any logger's CSV, with `counts_csv` for the counts of passers-by one holds and
`locations` for the sites file that places their counters, and the
reference stations' `airnowtech`, `luchtmeetnet` and `eea`, which share `reference`), each
a thin parser behind the contract in `base`, built on the
reader base in `reader` (header checks, CSV or JSON of named columns) and the row checks of
`base.ImportContext` (time, values, declared sensor, storing), so a format holds only its
columns, devices and units. Helped by `files` (checked, hashed, opened), `jsonstream` (JSON
read item by item), `timeparse` (strict times, and loggers' local times) and `fields` (values
several formats carry). `runner` does what all share: the registry, `overlap` (an import must
not blend into another source's data), batches of `lines` (line protocol without an object per
row) written by `writer` on a thread of its own, dead letters, the `ledger` that makes a second
import store nothing twice (and notes where each file's points lie), and the `imports`
records; `removal` undoes an import (`sensorpipe import remove`). Every point carries the
provenance tags `source=import:<format>` and `vouch=import` (a reference station's:
`source=reference:<format>` and `vouch=reference`).
"""
