"""``segrl report``: gather eval runs into a table printed with rich, written as md + csv.

``segrl report RUN_DIR ...`` tabulates individual runs; ``segrl report table1`` (a name from
:data:`TABLES`) aggregates a sweep into mean ± std over seeds with the paired-gain plot.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

console = Console()

TABLES = {
    "table1": {
        "runs": ["runs/table1"],
        "metrics": ["cider_d", "bleu4", "meteor"],
        "out": "results/table1",
        "title": "Table 1: multi-panel captioning (synthetic DOCCI-style panels), tiny LLaVA, CPU preset",
    },
}
"""Named sweep reports: where their runs live, which metrics, where the table goes."""


def command(
    runs: list[str] = typer.Argument(..., help="Eval run directories (or parents to search), or a table name "
                                     f"({', '.join(TABLES)}) optionally followed by run directories."),
    out: Path | None = typer.Option(None, help="Directory for table.md and table.csv (default: results/report, "
                                    "or the named table's)."),
    title: str | None = typer.Option(None, help="Table title."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help="Put runs of different task versions or "
                                     "datasets in one table (the task and data columns tell them apart)."),
) -> None:
    """Collect metrics.json files into one table (or a named sweep table)."""
    if runs[0] in TABLES:
        _sweep(runs[0], runs[1:], out, title)
        return
    from segrl.eval.report import collect, show, write

    out = out or Path("results/report")
    title = title or "segrl report"
    try:
        df = collect(runs, allow_mixed=allow_mixed)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    parts = ["segrl", "report", *map(str, runs), "--out", str(out), "--title", title]
    if allow_mixed:
        parts.append("--allow-mixed")
    md, csv = write(df, out, title=title, command=" ".join(shlex.quote(a) for a in parts))
    show(df, title, console)
    console.print(f"wrote {md} and {csv}")


def _sweep(name: str, runs: list[str], out: Path | None, title: str | None) -> None:
    from segrl.eval.report import show
    from segrl.eval.sweep import collect_sweep, summarize, write_sweep

    spec = TABLES[name]
    runs = runs or spec["runs"]
    out = out or Path(spec["out"])
    title = title or spec["title"]
    try:
        df = collect_sweep(runs, spec["metrics"])
    except (FileNotFoundError, KeyError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    command_line = " ".join(shlex.quote(a) for a in ["segrl", "report", name, *runs, "--out", str(out)])
    files = write_sweep(df, spec["metrics"], out, title=title, command=command_line)
    show(summarize(df, spec["metrics"]), title, console)
    console.print(f"wrote {files['md']}, {files['csv']} and {files['png']}")
