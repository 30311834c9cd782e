"""Kit adapters: readings from kits that cannot run the edge agent (Sensor.Community airrohr
boxes, LoRaWAN nodes through The Things Stack), signed by this gateway and published to the
broker, so they take the ingest's path like every device's messages.

`service` is the process (`sensorpipe gateway run`), `config` its file and `app` its HTTP side.
Every adapter is given a `context` (publisher, registry, dead letters, counters, quarantine) and
shares `publish` (signed as the gateway, confirmed by the broker), `seq` (sequence numbers for
kits that have none), `limits` (a rate limit per kit) and `quarantine` (for a kit that keeps
exceeding it); `provision` registers gateways and airrohr kits. airrohr: `airrohr` (what the
firmware posts), `auth` (a basic-auth password per kit), `intake` (taking one post). The Things
Stack: `ttn` (the adapter's entry), `ttn_config` (one application), `ttn_uplink` (the uplink
JSON), `ttn_receiver` (uplinks to signed messages), `ttn_bridge` (MQTT, and gap filling from
storage), `ttn_webhook`, `ttn_state` (nodes remembered across restarts), `ttn_provision` (nodes
and webhook tokens).
"""
