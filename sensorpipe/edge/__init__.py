"""The edge agent: reads sensors, keeps a durable outbox, publishes over MQTT."""
