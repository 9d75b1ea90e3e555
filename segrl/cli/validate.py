"""``segrl validate CONFIG``: dry-run a config on a few examples (checks in :mod:`segrl.validate`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def command(
    config: Path = typer.Argument(..., help="Experiment YAML.", exists=True, dir_okay=False),
    set_: list[str] = typer.Option([], "--set", help="Override: section.key=value (repeatable)."),
) -> None:
    """Check a config before spending compute: config types, data schema, rewards, one generation.

    Prints a table of checks; exits with code 1 if any check fails.
    """
    from segrl.validate import main, render

    report = main(config, list(set_))
    console.print(render(report))
    if not report["ok"]:
        raise typer.Exit(1)
