"""``segrl bench step``: seconds per training step, plain TRL GRPO vs segrl ``grpo`` vs ``sd_grpo`` vs ``srpo``.

Same tiny model, data, batch and seed for every variant; rounds are interleaved (trl, grpo,
sd_grpo, trl, ...) so machine noise hits all of them alike; the median over rounds of the
per-step time is reported. The segment-level work (parsing, the (B, K) estimator, the token
mapping) must cost next to nothing: target ``sd_grpo / grpo <= 1.03``.

``srpo`` measures SRPO's extra no-grad forward passes (clean, corrupted image, perception
removed; :mod:`segrl.trainers.srpo`): same prompts as the others (no structure instruction)
and ``srpo_force_passes=True``, so the passes run although the benchmark model never writes
the structure (their cost does not depend on the text; the weights stay 1).
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from segrl.provenance import git_state, library_versions

VARIANTS = ("trl", "grpo", "sd_grpo", "srpo")


def _trainer(variant: str, model_dir: Path, train, out: Path, steps: int, seed: int):
    from trl import GRPOConfig, GRPOTrainer

    from segrl.models import load_policy
    from segrl.rewards import make_segment_reward
    from segrl.trainers.config import SegmentGRPOConfig
    from segrl.trainers.segment_grpo import SegmentGRPOTrainer, make_reward_funcs

    model, processor = load_policy(str(model_dir))
    common = dict(output_dir=str(out / variant), num_generations=4, per_device_train_batch_size=8, max_steps=steps,
                  max_completion_length=32, learning_rate=1e-4, logging_steps=steps, save_strategy="no",
                  report_to="none", use_cpu=not torch.cuda.is_available(), bf16=False, seed=seed, beta=0.0)
    metric = make_segment_reward("accuracy")
    if variant == "trl":  # TRL's own GRPO with the same holistic reward (segment mean + 0.5 * format)
        args = GRPOConfig(**common, loss_type="grpo", reward_weights=[1.0, 0.5])
        return GRPOTrainer(model=model, reward_funcs=make_reward_funcs(metric), args=args, train_dataset=train,
                           processing_class=processor)
    if variant == "srpo":
        from segrl.trainers.srpo import SRPOConfig, SRPOTrainer

        args = SRPOConfig(**common, algo="srpo", srpo_instruction="", srpo_force_passes=True)
        return SRPOTrainer(model=model, segment_metric=metric, args=args, train_dataset=train,
                           processing_class=processor)
    args = SegmentGRPOConfig(**common, algo=variant)
    return SegmentGRPOTrainer(model=model, segment_metric=metric, args=args, train_dataset=train,
                              processing_class=processor)


def main(rounds: int = 5, steps_per_round: int = 4, n_groups: int = 24, seed: int = 0,
         source: str = "../shared/data/multichartqa", out_dir: str = "results/bench") -> dict:
    """Benchmark and write ``step.json`` + ``step.md`` under ``out_dir``.

    Args:
        rounds: interleaved rounds; each variant trains ``steps_per_round`` steps per round.
        n_groups: MultiChartQA groups to build from ``source`` (the real sample).

    Returns:
        The result dict (per-variant median s/step, ratios, machine, versions).
    """
    from segrl.models import build_tiny_vlm, texts_from_dataset
    from segrl.tasks import TASKS
    from segrl.tasks.base import downscale_images
    from segrl.trainers.sft import warm_start

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="segrl-bench-") as tmp:
        tmp = Path(tmp)
        ds = TASKS.get("multichart").build(source, tmp / "data", limit=n_groups, seed=seed)
        tiny = build_tiny_vlm(texts_from_dataset(ds), tmp / "tiny")
        train = downscale_images(ds["train"], 112)
        warm_start(str(tiny), train, tmp / "sft", max_steps=60, learning_rate=3e-3, logging_steps=60)
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(rounds):
            for variant in VARIANTS:
                trainer = _trainer(variant, tmp / "sft", train, tmp / f"r{r}", steps_per_round, seed)
                t0 = time.perf_counter()
                trainer.train()
                times[variant].append((time.perf_counter() - t0) / steps_per_round)
    median = {v: statistics.median(ts) for v, ts in times.items()}
    result = {
        "benchmark": "step",
        "command": f"segrl bench step --rounds {rounds} --steps-per-round {steps_per_round} --n-groups {n_groups}",
        "seconds_per_step_median": median,
        "seconds_per_step_all": times,
        "ratio_sd_grpo_over_grpo": median["sd_grpo"] / median["grpo"],
        "ratio_sd_grpo_over_trl": median["sd_grpo"] / median["trl"],
        "ratio_srpo_over_grpo": median["srpo"] / median["grpo"],
        "setup": {"model": "tiny LLaVA (segrl make-tiny-model), SFT 60 steps", "task": f"multichart, {n_groups} groups",
                  "num_generations": 4, "per_device_train_batch_size": 8, "max_completion_length": 32},
        "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "libraries": library_versions(),
        "git": git_state(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "step.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Training step time: TRL GRPO vs segrl grpo vs sd_grpo vs srpo", "",
        f"Made by: `{result['command']}` at commit {(result['git']['commit'] or '?')[:8]}"
        f"{'+dirty' if result['git']['dirty'] else ''} on {result['machine']['platform']}", "",
        "| variant | median s/step | all rounds (s/step) |", "|---|---|---|",
        *[f"| {v} | {median[v]:.4f} | {', '.join(f'{t:.4f}' for t in times[v])} |" for v in VARIANTS], "",
        f"sd_grpo / grpo = **{result['ratio_sd_grpo_over_grpo']:.3f}** (target <= 1.03); "
        f"sd_grpo / TRL GRPO = {result['ratio_sd_grpo_over_trl']:.3f}", "",
        f"srpo / grpo = {result['ratio_srpo_over_grpo']:.3f} (SRPO's extra no-grad forward passes)", "",
    ]
    (out / "step.md").write_text("\n".join(lines))
    return result
