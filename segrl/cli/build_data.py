"""``segrl build-data TASK``: build a task's DatasetDict on disk (atomically)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from segrl.tasks import TASKS, DataError

app = typer.Typer(help="Build a task's dataset (train/test DatasetDict saved to disk).", no_args_is_help=True)
console = Console()


def _report(ds, out: Path, seconds: float) -> None:
    for split, d in ds.items():
        n_seg = sum(len(x) for x in d["segment_labels"])
        console.print(f"[green]{split}[/]: {len(d)} examples, {n_seg} segments")
    console.print(f"wrote {out} in {seconds:.1f}s")


@app.command("multichart")
def multichart(
    source: Path = typer.Option(Path("../shared/data/multichartqa"), help="MultiChartQA directory (data/<group>/...)."),
    out: Path = typer.Option(Path("data/multichart"), help="Output DatasetDict directory."),
    seed: int = typer.Option(0, help="Split seed."),
    test_fraction: float = typer.Option(0.2, help="Fraction of chart groups held out for test."),
    limit: int | None = typer.Option(None, help="Keep only the first N groups (sorted by name)."),
    keep_notes: bool = typer.Option(True, help="Keep MultiChartQA's 'Note that ...' instructions in prompts."),
) -> None:
    """Multi-chart long-form QA: one example = one chart group, one segment per (sub-)question."""
    t0 = time.time()
    try:
        ds = TASKS.get("multichart").build(
            source, out, seed=seed, test_fraction=test_fraction, limit=limit, keep_notes=keep_notes
        )
    except DataError as e:
        console.print(f"[red]build-data multichart failed:[/] {e}")
        raise typer.Exit(1) from None
    _report(ds, out, time.time() - t0)


@app.command("docci")
def docci(
    source: str | None = typer.Option(None, help="DOCCI directory (docci_descriptions.jsonlines + images/) "
                                      "or the hub id google/docci; unused for --source-kind synthetic."),
    out: Path = typer.Option(Path("data/docci"), help="Output DatasetDict directory."),
    source_kind: str = typer.Option("synthetic", help="synthetic (offline, rendered scenes) or docci."),
    panels: int = typer.Option(4, help="K: panels per grid image (one segment each)."),
    panel_side: int = typer.Option(112, help="Side of one panel in pixels."),
    count: int | None = typer.Option(None, help="Examples (synthetic: total; docci: per split)."),
    seed: int = typer.Option(0, help="Scene / grouping seed."),
    split_seed: int = typer.Option(0, help="Train/test split seed (synthetic)."),
    test_fraction: float = typer.Option(0.2, help="Held-out fraction (synthetic)."),
    entangled: bool = typer.Option(False, help="Synthetic panels share a scene; captions refer to earlier panels."),
) -> None:
    """Multi-panel dense captioning: K panels in one grid image, one segment per panel."""
    t0 = time.time()
    try:
        ds = TASKS.get("docci").build(
            source, out, panels=panels, panel_side=panel_side, split_seed=split_seed, seed=seed, count=count,
            test_fraction=test_fraction, source_kind=source_kind, entangled=entangled,
        )
    except (DataError, ValueError) as e:
        console.print(f"[red]build-data docci failed:[/] {e}")
        raise typer.Exit(1) from None
    _report(ds, out, time.time() - t0)
