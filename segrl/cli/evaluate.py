"""``segrl eval TASK``: greedy generation on a split + per-segment and overall metrics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def command(
    task: str = typer.Argument(..., help="Task name (e.g. multichart)."),
    model: str = typer.Option(..., help="Model to evaluate: local path or hub id."),
    data: Path = typer.Option(None, help="Built dataset (default: data/<task>)."),
    out: Path = typer.Option(None, help="Output directory (default: <model>/eval)."),
    split: str = typer.Option("test", help="Split to evaluate."),
    max_new_tokens: int = typer.Option(96, help="Generation budget per example (tokens)."),
    batch_size: int = typer.Option(8, help="Examples per generate() call."),
    limit: int | None = typer.Option(None, help="Evaluate only the first N examples."),
    max_image_side: int | None = typer.Option(None, help="Downscale images (longer side, px) as in training."),
) -> None:
    """Evaluate a model; writes predictions.jsonl, metrics.json and run.json."""
    from segrl.eval.evaluate import main

    data = data or Path("data") / task
    out = out or Path(model) / "eval"
    result = main(task, model, str(data), str(out), split=split, max_new_tokens=max_new_tokens,
                  batch_size=batch_size, limit=limit, max_image_side=max_image_side)
    m = result["metrics"]
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if not isinstance(v, list)}
    console.print(f"[bold]{task}[/] {split} n={result['n_examples']}: {shown}")
    console.print(f"wrote {out}/metrics.json")
