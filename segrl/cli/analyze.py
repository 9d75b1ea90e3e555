"""``segrl analyze NAME``: analyses that back segrl's design, each writing a table + plot under ``results/``."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import typer
from rich.console import Console

from segrl.cli.errors import fail

app = typer.Typer(
    help="Analyses behind segrl's design (tables + plots under results/).", no_args_is_help=True
)
console = Console()


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers, got {text!r}", param_hint="--ks"
        ) from None
    if not ks:
        raise typer.BadParameter("no K given", param_hint="--ks")
    return ks


@app.command("credit")
def credit(
    out: Path = typer.Option(Path("results/credit"), help="Directory for credit.md, credit.csv, credit.png."),
    ks: str = typer.Option("1,2,4,8,16", help="Segment counts K, comma-separated."),
    n_options: int = typer.Option(4, help="Options per segment of the toy policy (one correct)."),
    group_size: int = typer.Option(8, help="G, rollouts per group."),
    n_corr: int = typer.Option(100_000, help="Rollouts for the empirical corr(R, r_k)."),
    n_batches: int = typer.Option(10_000, help="Groups for the gradient SNR."),
    seeds: int = typer.Option(20, help="SGD runs per (K, algorithm)."),
    lr: float = typer.Option(0.1, help="SGD step size on the logits."),
    target: float = typer.Option(0.9, help="Mean per-segment accuracy the SGD runs must reach."),
    max_steps: int = typer.Option(5_000, help="SGD step cap."),
    seed: int = typer.Option(0, help="Root seed."),
) -> None:
    """GRPO vs SD-GRPO credit: corr(R, r_k) = 1/sqrt(K), closed form and Monte Carlo; gradient SNR; steps to learn."""
    from segrl.analysis.credit import CreditConfig, markdown_table, run

    try:
        cfg = CreditConfig(
            ks=_parse_ks(ks),
            n_options=n_options,
            group_size=group_size,
            n_corr=n_corr,
            n_batches=n_batches,
            seeds=seeds,
            lr=lr,
            target=target,
            max_steps=max_steps,
            seed=seed,
        )
    except ValueError as e:
        fail(f"analyze credit: {e}")
    parts = [
        "segrl", "analyze", "credit", "--out", str(out), "--ks", ",".join(map(str, cfg.ks)),
        "--n-options", str(n_options), "--group-size", str(group_size), "--n-corr", str(n_corr),
        "--n-batches", str(n_batches), "--seeds", str(seeds), "--lr", f"{lr:g}", "--target", f"{target:g}",
        "--max-steps", str(max_steps), "--seed", str(seed),
    ]  # fmt: skip
    t0 = time.time()
    df, paths = run(cfg, out, command=" ".join(shlex.quote(p) for p in parts))
    typer.echo(markdown_table(df, cfg))
    console.print(f"wrote {', '.join(map(str, paths))} in {time.time() - t0:.1f}s")
