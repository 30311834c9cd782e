"""sensorpipe run on one machine, or installed on a server.

`local` is `sensorpipe stack up|status|down`: Mosquitto, influxd, the ingest, the kit gateway
and the HTTP service as processes on loopback ports, under one directory; `ports` chooses those
ports once and keeps them from run to run (devices, kits and bookmarks have them), and `status`
reads what `stack status` shows besides the processes (dead letters, the kit gateway's health,
sensors not ok). `local` keeps the processes and hands the rest to collaborators, each with
one job: `kitgateway` (the kit gateway's account and its gateway.toml, kept from run to run),
`configs` (the ingest's and the API's configuration files and command lines), `registration`
(devices, kits, gateways, readers and ingest workers, applied to a running broker) and
`quarantine` (quarantine and lift: the book first, then the running broker); `state` holds
stack.json's record and the little of the stack those collaborators see. `demo` runs the
whole pipeline with simulated devices and counts what arrived. `server` writes a lasting
installation (`sensorpipe server setup`: Debian's Mosquitto and InfluxDB, systemd units).
`errors` holds the stack's one error, which the command line catches without importing the
rest. The processes themselves are started and stopped with `sensorpipe.process`.
"""
