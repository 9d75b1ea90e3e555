"""``segrl report``: gather eval runs into a table printed with rich, written as md + csv."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def command(
    runs: list[Path] = typer.Argument(..., help="Eval run directories (or parents to search)."),
    out: Path = typer.Option(Path("results/report"), help="Directory for table.md and table.csv."),
    title: str = typer.Option("segrl report", help="Table title."),
) -> None:
    """Collect metrics.json files into one table."""
    from segrl.eval.report import collect, show, write

    try:
        df = collect(runs)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    parts = ["segrl", "report", *map(str, runs), "--out", str(out), "--title", title]
    command_line = " ".join(shlex.quote(a) for a in parts)
    md, csv = write(df, out, title=title, command=command_line)
    show(df, title, console)
    console.print(f"wrote {md} and {csv}")
