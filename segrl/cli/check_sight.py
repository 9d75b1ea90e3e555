"""``segrl check-sight MODEL DATA``: the sight gate (:mod:`segrl.sight`): does the answer depend on the image?"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def command(
    model: str = typer.Argument(..., help="Policy: a local directory or hub id."),
    data: Path = typer.Argument(..., help="Built dataset (segrl build-data) with images."),
    split: str = typer.Option("test", help="Split to sample (held out)."),
    rows: int = typer.Option(32, min=2, help="Rows sampled."),
    distractors: int = typer.Option(3, min=1, help="Distractor answers per ranked segment (chance = 1/(d+1))."),
    seed: int = typer.Option(0, help="Sampling seed."),
    min_gain: float = typer.Option(0.2, help="Rule: true-image accuracy minus blank-image accuracy at least this."),
    alpha: float = typer.Option(0.01, help="Rule: McNemar p-value (true > blank) below this."),
    max_image_side: int | None = typer.Option(None, help="Downscale images in memory first (CPU speed-up)."),
    out: Path | None = typer.Option(None, help="Also write the figures as JSON here."),
) -> None:
    """Image-swap TV over answer tokens, content accuracy with the true vs a blank image, and the verdict.

    Exits 1 when the gate fails (a blind policy), 2 on bad input.
    """
    import torch
    from datasets import load_from_disk

    from segrl.models.loading import load_policy
    from segrl.sight import check_sight
    from segrl.tasks.base import downscale_images

    torch.manual_seed(seed)
    if not data.exists():
        console.print(f"[red]dataset not found:[/] {data} (run `segrl build-data` first)")
        raise typer.Exit(2)
    ds = load_from_disk(str(data))
    if split not in ds:
        console.print(f"[red]{data}: no split {split!r}; splits: {', '.join(ds)}[/]")
        raise typer.Exit(2)
    try:
        policy, processor = load_policy(model)
        report = check_sight(policy, processor, downscale_images(ds[split], max_image_side), n_rows=rows,
                             distractors=distractors, seed=seed, min_gain=min_gain, alpha=alpha)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]check-sight failed:[/] {e}")
        raise typer.Exit(2) from None
    console.print(f"sight gate: {model} on {data} [{split}]")
    for line in report.lines():
        console.print(line, markup=False, highlight=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if not report.passed:
        raise typer.Exit(1)
