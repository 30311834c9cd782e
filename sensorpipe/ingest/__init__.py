"""The ingest: subscribes, validates every message, stores it in InfluxDB, dead-letters the rest."""
