"""``segrl report``: gather eval runs into a table printed with rich, written as md + csv.

``segrl report RUN_DIR ...`` tabulates individual runs (and draws their training curves,
``curves.png``); ``segrl report table1`` (a spec in ``configs/reports/``, or a path to a spec
YAML) aggregates a sweep into means with 95 % CIs, paired gains, the baseline-learns gate,
learning curves and a verdict (:mod:`segrl.eval.tables`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

from segrl.cli.errors import fail

console = Console()


def _is_spec(arg: str) -> bool:
    from segrl.eval.tables import spec_names

    return arg in spec_names() or (arg.endswith((".yaml", ".yml")) and Path(arg).is_file())


def command(
    runs: list[str] = typer.Argument(..., help="Eval run directories (or parents to search), or a table name "
                                     "(a spec in configs/reports/, e.g. table1) or a spec YAML file, optionally "
                                     "followed by run directories."),
    out: Path | None = typer.Option(None, help="Directory for table.md and table.csv (default: results/report, "
                                    "or the named table's)."),
    title: str | None = typer.Option(None, help="Table title."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help="Put runs of different task versions or "
                                     "datasets in one table (the task and data columns tell them apart)."),
) -> None:
    """Collect metrics.json files into one table (or a named sweep table)."""
    if _is_spec(runs[0]):
        _table(runs[0], runs[1:], out, title)
        return
    from segrl.eval.report import collect, show, write

    out = out or Path("results/report")
    title = title or "segrl report"
    try:
        df = collect(runs, allow_mixed=allow_mixed)
    except (FileNotFoundError, ValueError) as e:
        fail(f"{e}")
    parts = ["segrl", "report", *map(str, runs), "--out", str(out), "--title", title]
    if allow_mixed:
        parts.append("--allow-mixed")
    files = write(df, out, title=title, command=" ".join(shlex.quote(a) for a in parts), runs=runs)
    show(df, title, console)
    console.print("wrote " + ", ".join(str(p) for p in files.values()))


def _table(name: str, runs: list[str], out: Path | None, title: str | None) -> None:
    from segrl.eval.report import show
    from segrl.eval.tables import SpecError, load_spec, make_table

    try:
        spec = load_spec(name)
    except (FileNotFoundError, SpecError) as e:
        fail(f"{e}")
    if spec.kind == "gather" and runs:
        fail(f"{spec.name} reads the runs of {', '.join(spec.sources)}; give no run directories")
    out = out or Path(spec.out)
    command_line = " ".join(shlex.quote(a) for a in ["segrl", "report", name, *runs, "--out", str(out)])
    try:
        files = make_table(spec, runs or None, out, title, command=command_line)
    except (FileNotFoundError, KeyError, ValueError) as e:
        fail(f"{e.args[0] if isinstance(e, KeyError) else e}")
    table = files.pop("_table")
    files.pop("_gate", None)
    if not table.empty:
        show(table, title or spec.title, console)
    verdict = next((line for line in files["md"].read_text().splitlines() if line.startswith("**Verdict")), "")
    if verdict:
        console.print(verdict.replace("**", ""))
    console.print("wrote " + ", ".join(str(p) for p in files.values()))
