"""`python -m sensorpipe`: the same as the `sensorpipe` command."""

from sensorpipe.cli.entry import main

main()
