"""The `sensorpipe` command: one subcommand group per component."""
