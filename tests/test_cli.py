"""The command line: every command has help, and bad input gives one clear line, not a traceback."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from movierec.cli import app

runner = CliRunner()


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if hasattr(cmd, "commands"):
            out.extend(_commands(cmd, (*prefix, name)))
    return out


COMMANDS = _commands(typer.main.get_group(app))


def test_the_main_commands_exist() -> None:
    names = {c[-1] for c in COMMANDS}
    assert {"data", "fetch", "info", "train", "recommend"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    group = typer.main.get_group(app)
    cmd: Any = group
    for part in command:
        cmd = cmd.commands[part]
    assert cmd.help or cmd.short_help, f"{' '.join(command)} has no help text"


def test_unknown_dataset_folder_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from movierec.cli import main

    empty = tmp_path / "nothing-here"
    empty.mkdir()
    import sys

    argv = sys.argv
    sys.argv = ["movierec", "data", "info", str(empty)]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = argv
    assert exc.value.code == 2


def test_evaluate_under_torchrun_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank ran the whole evaluation on its own (measured: identical
    figures printed twice); it now says so at once."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(app, ["evaluate", "--models", "pop", "--protocol", "topn"])
    assert result.exit_code == 2 and "without torchrun" in result.output
