"""The edge agent, what runs on the Pi: reads sensors, keeps a durable outbox, publishes over MQTT.

`agent` is the loop (sample on schedule, queue, publish) over `drivers/` (one module per sensor,
and the registry of driver names; `drivers.base` is the contract a driver keeps), with
`sensorloop` (each sensor's worker thread, its read timeout, error kinds and back-off), and
`counting/` (counting passers-by from camera frames on the device); `outbox` keeps readings on
disk until the ingest confirms them (each entry in the form `entries` gives it: validated once,
signed as it is sent) and `publisher` moves them to the broker. `config` is the
agent's configuration file, `run` is `edge run` (open what the configuration names, run until
stopped), `join` is `edge join` (a Pi joins from a join code) and `check` is `edge check` (is
this host ready to deliver?). `host` reads the Wi-Fi signal and clock synchronisation (and by
what), `notify` speaks systemd's sd_notify, `errors` are marked retryable or permanent (and a
sensor's by kind), `problems` re-exports the repeated-problem log of `protocol.problems`, and
`duty` is the duty cycling of laser PM sensors (wake before a reading, sleep after, warm-up
discarded) and their laser's running hours; `healthfile` keeps the agent's last sensor health
(errors by kind, back-off) on disk for `edge check` to show.
"""
