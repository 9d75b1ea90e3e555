"""``segrl warm-start``: supervised fine-tune on the references before RL (TRL SFTTrainer)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from segrl.cli.errors import fail
from segrl.config import ConfigError, load_config

console = Console()


def command(
    config: Path = typer.Option(..., "--config", "-c", help="Experiment YAML."),
    model: str | None = typer.Option(None, help="Start from this model (default: model.name_or_path)."),
    out: Path | None = typer.Option(None, help="Output directory (default: sft.output_dir)."),
    set_: list[str] = typer.Option([], "--set", help="Override: section.key=value (repeatable)."),
    structure: str = typer.Option("plain", help="plain: the task's references; srpo: SRPO's "
                                  "<perception>/<reasoning> blocks before them (segrl.trainers.srpo)."),
    evidence_words: int = typer.Option(6, min=1, help="With --structure srpo: words of evidence per segment."),
) -> None:
    """Warm-start the policy: vision alignment (sft.align_steps), then a short SFT so RL sees non-zero rewards."""
    from datasets import load_from_disk

    from segrl.models.loading import resolve_local
    from segrl.tasks.base import downscale_images
    from segrl.trainers.sft import warm_start, warm_start_options

    try:
        cfg = load_config(config, set_)
    except ConfigError as e:
        fail(f"{e}")
    if structure not in ("plain", "srpo"):
        fail(f"--structure must be plain or srpo, got {structure!r}")
    resolve_local(model or cfg.model.name_or_path)  # a missing model path fails before any data work
    if structure == "srpo":
        from segrl.trainers.srpo import structured_warm_start

        out_dir = str(out) if out else None
        console.print(structured_warm_start(cfg, model=model, out=out_dir, evidence_words=evidence_words))
        return
    ds = load_from_disk(cfg.data.path)
    train = downscale_images(ds["train"], cfg.data.max_image_side)
    result = warm_start(
        model or cfg.model.name_or_path, train, out or cfg.sft.output_dir, **warm_start_options(cfg.sft))
    console.print(result)
