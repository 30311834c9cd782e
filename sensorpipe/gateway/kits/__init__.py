"""Kit adapters: readings from kits that cannot run the edge agent (Sensor.Community airrohr
boxes, LoRaWAN nodes through The Things Stack), signed by this gateway and published to the
broker, so they take the ingest's path like every device's messages."""
