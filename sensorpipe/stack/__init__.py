"""sensorpipe run on one machine, or installed on a server.

`local` is `sensorpipe stack up|status|down`: Mosquitto, influxd, the ingest, the kit gateway
and the HTTP service as processes on loopback ports, under one directory; `ports` chooses those
ports once and keeps them from run to run (devices, kits and bookmarks have them), and `status`
reads what `stack status` shows besides the processes (dead letters, the kit gateway's health,
sensors not ok). `demo` runs the whole pipeline with simulated devices and counts what arrived.
`server` writes a lasting installation (`sensorpipe server setup`: Debian's Mosquitto and
InfluxDB, systemd units). `errors` holds the stack's one error, which the command line catches
without importing the rest. The processes themselves are started and stopped with
`sensorpipe.process`.
"""
