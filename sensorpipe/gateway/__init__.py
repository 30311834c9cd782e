"""The MQTT side: Mosquitto configuration from the device registry, and the broker process."""
