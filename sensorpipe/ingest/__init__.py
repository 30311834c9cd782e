"""The ingest: subscribes, validates every message, stores it in InfluxDB, dead-letters the rest.

`service` runs it (the MQTT link, batches, confirmations to devices, quotas and quarantine,
status) from its `config`. `validate` holds every check a message must pass and `reasons` every
reason for a rejection; `points` turns a message into InfluxDB points, `lineprotocol` writes
them and `influx` is the InfluxDB client; `deadletter` keeps each rejected message with its
reason. `quota` (per-device quotas) and `fair` (one lane per device) keep one device from
crowding out the rest; `stats` and `metrics` count and report; `errors` are marked retryable or
permanent. `influxd` is a throw-away InfluxDB for the local stack, the demo and the tests.
"""
