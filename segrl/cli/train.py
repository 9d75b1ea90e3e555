"""``segrl train``: RL fine-tuning with a registered algorithm (grpo, sd_grpo, dr_grpo, ...)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from segrl.config import ConfigError, load_config

console = Console()


def command(
    config: Path = typer.Option(..., "--config", "-c", help="Experiment YAML."),
    algo: str | None = typer.Option(None, help="Override train.algo: a registered algorithm (grpo, sd_grpo, sapo, ...; "
                                    "an unknown name lists every one)."),
    model: str | None = typer.Option(None, help="Policy to start from: local path or hub id."),
    output_dir: str | None = typer.Option(None, help="Override output_dir."),
    seed: int | None = typer.Option(None, help="Override train.seed."),
    resume: str = typer.Option("auto", help="auto (continue from <output_dir>/latest if any), off, or a checkpoint dir."),
    set_: list[str] = typer.Option([], "--set", help="Override: section.key=value (repeatable)."),
) -> None:
    """Train the policy with TRL's GRPOTrainer and segment-level advantages."""
    from segrl.trainers.checkpoint import ResumeError
    from segrl.trainers.train import main

    overrides = list(set_)
    if algo:
        overrides.append(f"train.algo={algo}")
    if output_dir:
        overrides.append(f"output_dir={output_dir}")
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    try:
        cfg = load_config(config, overrides)
    except ConfigError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    try:
        summary = main(cfg, model=model, resume=resume)
    except ResumeError as e:
        console.print(f"[red]cannot resume:[/] {e}")
        raise typer.Exit(1) from None
    console.print(summary)
