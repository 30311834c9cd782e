"""The local stack: Mosquitto, influxd and the ingest as managed processes, and the demo."""
