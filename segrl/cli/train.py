"""``segrl train``: RL fine-tuning with a registered algorithm (grpo, sd_grpo, dr_grpo, ...)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from segrl.config import load_config

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
    from segrl.cli.errors import check_algorithm
    from segrl.models.loading import resolve_local
    from segrl.runlock import rank_zero_lock
    from segrl.trainers.train import main

    overrides = list(set_)
    if algo:
        check_algorithm(algo)
        overrides.append(f"train.algo={algo}")
    if output_dir:
        overrides.append(f"output_dir={output_dir}")
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    # A bad config (ConfigError), a run that cannot resume (ResumeError) or a locked output directory
    # (RunLockedError) is one line and exit 2 (segrl.cli.errors).
    cfg = load_config(config, overrides)
    resolve_local(model or cfg.model.name_or_path)  # a missing model path fails before any data work
    with rank_zero_lock(cfg.output_dir):
        summary = main(cfg, model=model, resume=resume)
    console.print(summary)
