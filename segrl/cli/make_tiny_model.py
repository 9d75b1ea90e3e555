"""``segrl make-tiny-model``: the embedded offline default policy (a tiny LLaVA)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from segrl.cli.errors import fail

console = Console()


def command(
    data: Path = typer.Option(Path("data/multichart"), help="Built dataset whose text trains the tokenizer."),
    out: Path = typer.Option(Path("models/tiny"), help="Where to save the model and processor."),
    image_size: int = typer.Option(56, help="Vision tower input side (pixels); a multiple of 14."),
    vocab_size: int = typer.Option(2000, help="BPE vocabulary size."),
    hidden_size: int = typer.Option(64, help="Language model hidden size."),
    num_layers: int = typer.Option(2, help="Language model layers."),
    seed: int = typer.Option(0, help="Initialisation seed."),
) -> None:
    """Build a tiny LLaVA (CLIP vision + Llama) with a tokenizer trained on the task text, offline.

    The weights are random: `segrl warm-start` aligns the vision tower (sft.align_steps) before SFT,
    without which the policy stays blind (`segrl check-sight` fails).
    """
    from datasets import load_from_disk

    from segrl.models.tiny import build_tiny_vlm, texts_from_dataset

    if not data.exists():
        fail(f"dataset not found: {data} (run `segrl build-data` first)")
    path = build_tiny_vlm(
        texts_from_dataset(load_from_disk(str(data))), out, image_size=image_size, vocab_size=vocab_size,
        hidden_size=hidden_size, num_layers=num_layers, seed=seed,
    )
    console.print(f"wrote tiny model to {path}")
