"""The ingest: subscribes, validates every message, stores it in InfluxDB, dead-letters the rest.

One room per job, each module opening with what it guarantees: `service` runs it from its
`config` (the writer thread and the batch path: check, store, dead-letter, confirm,
acknowledge); `link` is the broker connection (connect, subscribe, receive, acknowledge);
`guard` keeps per-device quotas, quarantine and the broker's admin account; `checks` checks,
numbers and turns each message into points, and enrols device keys; `rejects` dead-letters
rejected messages, or holds them back while the dead-letter store cannot write; `reporting`
writes the stats file, the `ingest_status` point and the metrics. Beside them: `validate`
holds every check a message must pass and `reasons` every reason for a rejection; `points`
turns a message into InfluxDB points, `lineprotocol` writes them and `influx` is the InfluxDB
client; `deadletter` keeps each rejected message with its reason. `quota` (per-device quotas)
and `fair` (one lane per device) keep one device from crowding out the rest; `stats` and
`metrics` count and report; `errors` are marked retryable or permanent. `influxd` is a
throw-away InfluxDB for the local stack, the demo and the tests. `neighbours` runs the
neighbour outlier (quality.neighbours) over stored hourly means and merges its flag into the
stored points (and for `sensorpipe quality neighbours`). `schedule` is the ingest's one timer
thread for its periodic jobs: the neighbour outlier, and the group calibrations' hourly factors
(calibration.updating, `[calibration]`).

A hand-written pipeline rather than a dataflow library's sources, steps and sinks (Bytewax):
the guarantee that matters, that a message is acknowledged to the broker only once it is
stored or dead-lettered, ties the broker connection to the batch path, and the rooms state it
the way such a library's docstrings state at-least-once delivery.
"""
