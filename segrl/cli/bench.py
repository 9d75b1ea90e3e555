"""``segrl bench ...``: benchmarks whose outputs are committed under ``results/bench/``.

Wire into the main app with ``app.add_typer(bench.app, name="bench")``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

from segrl.cli.errors import fail

app = typer.Typer(help="Benchmarks (results under results/bench/).", no_args_is_help=True)
console = Console()


@app.callback()
def _group() -> None:
    """Benchmarks (results under results/bench/)."""


def command(
    n_prompts: int = typer.Option(8, min=1, help="Prompts in the synthetic batch (P)."),
    n_rollouts: int = typer.Option(8, min=1, help="Rollouts per prompt (G)."),
    n_segments: int = typer.Option(8, min=1, help="Caption segments per rollout (K)."),
    metric: list[str] = typer.Option(
        ["bleu4", "cider_d", "meteor", "rouge_l"], "--metric", "-m",
        help="Metric to time (repeat the option): bleu4, cider_d, meteor, rouge_l, bertscore.",
    ),
    seed: int = typer.Option(0, help="Seed of the synthetic batch."),
    repeats: int = typer.Option(5, min=1, help="Timed repeats per mode (interleaved; median reported)."),
    profile: bool = typer.Option(True, help="Add one cProfile pass per metric and mode (untimed)."),
    out_dir: Path = typer.Option(Path("results/bench"), help="Directory for rewards.json and rewards.md."),
    n_naive: int = typer.Option(16, min=0, help="Segments also scored naively (a fresh pycocoevalcap scorer, "
                                "for METEOR a new JVM, per segment); 0 skips."),
) -> None:
    """Per-segment rewards: one batched call per metric vs pycocoevalcap once per segment."""
    from segrl.bench.rewards import main

    parts = ["segrl", "bench", "rewards", "--n-prompts", n_prompts, "--n-rollouts", n_rollouts,
             "--n-segments", n_segments, *[x for m in metric for x in ("--metric", m)], "--seed", seed,
             "--repeats", repeats, "--profile" if profile else "--no-profile", "--out-dir", out_dir,
             "--n-naive", n_naive]
    line = " ".join(shlex.quote(str(a)) for a in parts)
    try:
        res = main(n_prompts=n_prompts, n_rollouts=n_rollouts, n_segments=n_segments, metrics=tuple(metric),
                   seed=seed, out_dir=out_dir, repeats=repeats, profile=profile, command=line,
                   n_naive=n_naive)
    except (ValueError, RuntimeError) as e:
        fail(f"bench rewards failed: {e}")
    for name, r in res["metrics"].items():
        console.print(f"{name:>10}: batched {r['batched_seg_per_s']:8.0f} seg/s, per call "
                      f"{r['per_call_seg_per_s']:8.0f} seg/s, {r['speedup']:6.2f}x, max |diff| {r['max_abs_diff']:.1e}")
    o = res["overall"]
    naive = f"; vs naive (fresh scorer per segment): {o['naive_speedup']:.1f}x" if "naive_speedup" in o else ""
    console.print(f"{'all':>10}: {o['speedup']:.2f}x{naive}; identical: {res['identical']}")
    console.print(f"wrote {Path(out_dir) / 'rewards.json'} and {Path(out_dir) / 'rewards.md'}")
    if not res["identical"]:
        console.print("[red]batched and per-call scores differ beyond tolerance[/]")
        raise typer.Exit(1)


app.command("rewards")(command)


@app.command("step")
def step(
    rounds: int = typer.Option(5, min=1, help="Interleaved rounds (trl, grpo, sd_grpo, srpo each round)."),
    steps_per_round: int = typer.Option(4, min=1, help="Training steps per variant and round."),
    n_groups: int = typer.Option(24, min=2, help="MultiChartQA groups to build from --source."),
    source: str = typer.Option("../shared/data/multichartqa", help="MultiChartQA directory."),
    seed: int = typer.Option(0, help="Seed (data split, model init, sampling)."),
    out_dir: Path = typer.Option(Path("results/bench"), help="Directory for step.json and step.md."),
) -> None:
    """Seconds per training step: TRL's GRPO vs segrl grpo, sd_grpo and srpo (target sd_grpo/grpo <= 1.03)."""
    from segrl.bench.step import main

    res = main(rounds=rounds, steps_per_round=steps_per_round, n_groups=n_groups, seed=seed, source=source,
               out_dir=str(out_dir))
    for name, t in res["seconds_per_step_median"].items():
        console.print(f"{name:>8}: {t:.4f} s/step (median of {rounds})")
    console.print(f"sd_grpo / grpo = {res['ratio_sd_grpo_over_grpo']:.3f}; sd_grpo / trl = "
                  f"{res['ratio_sd_grpo_over_trl']:.3f}")
    console.print(f"wrote {out_dir / 'step.json'} and {out_dir / 'step.md'}")


@app.command("scale")
def scale(
    size: str = typer.Option("3b", help="Model: Qwen2.5-VL shape with random weights (3b, 7b, tiny) or the embedded "
                             "tiny LLaVA (llava-tiny: runs on a CPU without torchvision)."),
    variant: list[str] = typer.Option(["trl", "grpo", "sd_grpo", "srpo"], "--variant", "-v",
                                      help="Variant to time (repeat the option): trl, grpo, sd_grpo, srpo."),
    completions: list[int] = typer.Option([16], "--completions", min=1,
                                          help="Completions per optimizer step (repeat the option for a sweep)."),
    completion_length: list[int] = typer.Option([256], "--completion-length", "--max-completion-length", min=1,
                                                help="Max new tokens per completion (repeatable)."),
    micro_batch_size: int = typer.Option(0, min=0, help="per_device_train_batch_size: completions per forward/"
                                         "backward (0: = --completions, one micro-batch per step)."),
    steps_per_generation: list[int] = typer.Option([], "--steps-per-generation", min=1,
                                                   help="TRL's steps_per_generation: micro-batches one generation "
                                                   "feeds (repeatable; default = gradient accumulation steps, "
                                                   "on-policy). More than the accumulation steps is off-policy."),
    generation_batch_size: list[int] = typer.Option([], "--generation-batch-size", min=1,
                                                    help="TRL's generation_batch_size: completions per generate "
                                                    "call (repeatable; exclusive with --steps-per-generation)."),
    rounds: int = typer.Option(2, min=1, help="Interleaved rounds."),
    steps_per_round: int = typer.Option(2, min=1, help="Timed optimizer steps per setting, variant and round "
                                        "(after a warm-up generation cycle; rounded up to whole cycles)."),
    num_generations: int = typer.Option(8, min=2, help="G (the papers' 8)."),
    gradient_checkpointing: bool = typer.Option(True, help="As the paper-scale presets."),
    peak_tflops: float = typer.Option(0.0, help="The GPU's dense bf16 peak in TFLOP/s (0: from its name)."),
    seed: int = typer.Option(0, help="Seed (data, model init, sampling)."),
    lora_r: int = typer.Option(0, min=0, help="Train a LoRA adapter of this rank on the frozen model (PEFT; the "
                               "*_7b_lora.yaml presets' targets, alpha 32); 0: every weight trains."),
    out_dir: Path = typer.Option(Path("results/bench"), help="Directory for scale.json and scale.md."),
) -> None:
    """Per batch setting: s/step, tokens/s/GPU (EasyR1's count), MFU, actor MFU, peak memory, where the time goes."""
    from segrl.bench.scale import main, settings_from

    parts = ["segrl", "bench", "scale", "--size", size, *[x for v in variant for x in ("--variant", v)],
             *[x for c in completions for x in ("--completions", c)],
             *[x for c in completion_length for x in ("--completion-length", c)],
             "--micro-batch-size", micro_batch_size,
             *[x for c in steps_per_generation for x in ("--steps-per-generation", c)],
             *[x for c in generation_batch_size for x in ("--generation-batch-size", c)],
             "--rounds", rounds, "--steps-per-round", steps_per_round, "--num-generations", num_generations,
             "--gradient-checkpointing" if gradient_checkpointing else "--no-gradient-checkpointing", "--seed", seed,
             *(["--lora-r", lora_r] if lora_r else [])]
    line = " ".join(shlex.quote(str(a)) for a in parts)
    try:
        settings = settings_from(list(completions), list(completion_length), micro_batch=micro_batch_size,
                                 steps_per_generation=list(steps_per_generation) or None,
                                 generation_batch_size=list(generation_batch_size) or None,
                                 num_generations=num_generations)
        res = main(size=size, variants=tuple(variant), rounds=rounds, steps_per_round=steps_per_round,
                   num_generations=num_generations, settings=settings, gradient_checkpointing=gradient_checkpointing,
                   peak_tflops=peak_tflops or None, seed=seed, lora_r=lora_r, out_dir=str(out_dir), command=line)
    except (RuntimeError, ImportError, ValueError) as e:
        fail(f"bench scale failed: {e}")
    for block in res["settings"]:
        s = block["setting"]
        console.print(f"[bold]{s['completions']} completions/step, micro-batch {s['micro_batch']}, "
                      f"{s['steps_per_generation']} micro-batches/generation, {s['completion_length']} tokens"
                      f"{'' if s['on_policy'] else ' (off-policy)'}[/]")
        for name, r in block["variants"].items():
            m = "-" if r["mfu"] is None else f"{100 * r['mfu']:.2f} %"
            mem = "n/a on CPU" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f} GiB"
            phases = ", ".join(f"{p} {100 * v:.0f} %" for p, v in r["phase_share"].items())
            console.print(f"{name:>8}: {r['seconds_per_step']:.3f} s/step, {r['tokens_per_s_per_gpu']:.0f} "
                          f"tokens/s/GPU, MFU {m}, peak memory {mem}; {phases}")
        for k, v in block["ratios"].items():
            console.print(f"{k.replace('_over_', ' / ')} = {v:.3f}")
    console.print(f"wrote {out_dir / 'scale.json'} and {out_dir / 'scale.md'}")
