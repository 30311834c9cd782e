"""`sensorpipe devices` split by job (issue 26): each module of the command stays small, and the
group still holds every command it had, wherever that command now lives."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import sensorpipe.cli
from sensorpipe.cli.main import main

CLI = Path(sensorpipe.cli.__file__).parent


def _listed(runner: CliRunner, group: str) -> list[str]:
    """The commands `sensorpipe GROUP --help` lists."""
    result = runner.invoke(main, [group, "--help"])
    assert result.exit_code == 0, result.output
    return [
        line.split()[0]
        for line in result.output.split("Commands:")[1].splitlines()
        if line.startswith("  ")
    ]


def test_no_cli_module_is_over_800_lines() -> None:
    sizes = {p.name: len(p.read_text("utf-8").splitlines()) for p in CLI.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 800} == {}


def test_devices_keeps_every_command_and_each_answers_help() -> None:
    runner = CliRunner()
    listed = _listed(runner, "devices")
    commands = [
        "add",
        "add-gateway",
        "add-kit",
        "edit",
        "export",
        "lift",
        "list",
        "network",
        "quarantine",
        "reset-key",
    ]
    assert listed == commands
    for command in [*commands, "add-kit airrohr", "add-kit ttn"]:
        result = runner.invoke(main, ["devices", *command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert f"devices {command} [OPTIONS]" in result.output, result.output


def test_calibrate_keeps_every_command_wherever_it_lives() -> None:
    """`group`, `update` and `report` moved to modules of their own (calibrate_group,
    calibrate_report): the group still lists and answers each of them."""
    runner = CliRunner()
    listed = _listed(runner, "calibrate")
    commands = ["apply", "fit", "group", "list", "report", "show", "update"]
    assert listed == commands
    for command in commands:
        result = runner.invoke(main, ["calibrate", command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert f"calibrate {command} [OPTIONS]" in result.output, result.output
