"""`python -m sensorpipe`: the same as the `sensorpipe` command."""

from sensorpipe.cli.main import main

main()
