"""Between the devices and the ingest: the broker's side, and the kit gateway.

`mosquitto` generates Mosquitto's configuration from the device registry (password file, the
dynamic security plugin's rules, persistence and limits); `brokeradmin` changes a running
broker's rules over the plugin's control topic (disable, enable, sync); `broker` runs Mosquitto
as a managed process and brings registry changes to it; `devices` provisions a device (broker
password, signing key pair). `kits/` is the kit gateway (`sensorpipe gateway run`): readings of
kits that cannot run the edge agent, signed as the gateway and published to the broker.
"""
