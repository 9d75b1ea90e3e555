"""``segrl bench scale``: the step benchmark at paper size, on a randomly initialised Qwen2.5-VL.

The same comparison as ``segrl bench step`` (TRL's own GRPO, segrl ``grpo``, ``sd_grpo``,
``srpo``; same model, data, batch and seed; interleaved rounds) on a model of exactly
Qwen2.5-VL-3B's (or 7B's) shape built from its config (:mod:`segrl.models.qwen`: no weights
are downloaded), on the multi-panel captioning task (synthetic panels, K = 4, CIDEr-D per
panel). It needs a GPU and torchvision (Qwen2.5-VL's processor).

Reported per variant: median seconds per training step (the first step of every trainer is a
warm-up and not timed), segrl's own segment work per step (the trainer's ``timing/segment_*``
metrics: parsing, the batched reward, the estimator, the token mapping), tokens per second per GPU (prompt + completion tokens of the step's
batch, image tokens included, over the step time) and MFU.

MFU (model FLOPs utilisation, PaLM, Chowdhery et al. 2022, App. B) counts only the FLOPs the
model needs, not recomputation (gradient checkpointing) or padding:
``flops = (2 + 6) · N_lm · tokens + (2 + 6) · N_vision · patches`` per step: 2 N per token for
the generation pass (prefill + decode, one forward), 6 N for the training forward and backward
(Kaplan et al. 2020, eq. 2.1; attention's sequence-length term is left out: small at these
lengths). ``N_lm`` is the language model's matrix parameters (input embedding lookup excluded,
output projection included), ``N_vision`` the vision tower's, ``patches`` the vision
transformer's input patches. With ``beta = 0`` and one iteration per generation TRL computes no
reference or old-policy log-probs, so there is no further forward pass.
``MFU = flops / (seconds per step · peak)``, peak = the GPU's dense bf16 peak (H100/H200 SXM
989.4 TFLOP/s, A100 312) unless given.
"""

from __future__ import annotations

import gc
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from segrl.provenance import git_state, library_versions

VARIANTS = ("trl", "grpo", "sd_grpo", "srpo")

PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.05, "A10G": 70.0}
"""Dense bf16 peaks (TFLOP/s, no sparsity) by device-name substring, from NVIDIA's data sheets (SXM parts)."""


def peak_tflops_for(device_name: str | None) -> float | None:
    """Dense bf16 peak of ``device_name`` (e.g. ``"NVIDIA H200"``) from :data:`PEAK_BF16_TFLOPS`, or None."""
    for key, peak in PEAK_BF16_TFLOPS.items():
        if device_name and key in device_name:
            return peak
    return None


def step_flops(n_lm: int, n_vision: int, tokens: float, patches: float) -> float:
    """Model FLOPs of one GRPO step (one generation pass + one training forward/backward).

    Args:
        n_lm: the language model's matrix parameters (input embedding excluded, output
            projection included).
        n_vision: the vision tower's parameters.
        tokens: prompt + completion tokens of the step's batch (image placeholder tokens included).
        patches: vision-transformer input patches of the step's batch.

    Returns:
        ``8 · n_lm · tokens + 8 · n_vision · patches`` (FLOPs): 2N per token to generate, 6N to
        train (Kaplan et al. 2020, eq. 2.1).
    """
    return 8.0 * n_lm * tokens + 8.0 * n_vision * patches


def mfu(flops_per_step: float, seconds_per_step: float, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation ``flops / (seconds · peak)`` (PaLM App. B), or None without a peak.

    Raises:
        ValueError: non-positive ``seconds_per_step``.
    """
    if seconds_per_step <= 0:
        raise ValueError(f"seconds_per_step must be > 0, got {seconds_per_step}")
    if not peak_tflops:
        return None
    return flops_per_step / (seconds_per_step * peak_tflops * 1e12)


class _StepTimer(TrainerCallback):
    """A ``TrainerCallback`` recording each optimizer step's wall time and tokens (prompt + completion)."""

    def __init__(self):
        self.seconds: list[float] = []
        self.tokens: list[float] = []
        self.segment_work: list[float] = []  # segrl's own per-step seconds (timing/segment_*), filled after training
        self._t0 = 0.0
        self._n0 = 0.0

    def _sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kw):
        self._sync()
        self._t0, self._n0 = time.perf_counter(), float(state.num_input_tokens_seen or 0)

    def on_step_end(self, args, state, control, **kw):
        self._sync()
        self.seconds.append(time.perf_counter() - self._t0)
        self.tokens.append(float(state.num_input_tokens_seen or 0) - self._n0)


def lm_matrix_params(model) -> int:
    """Language-model parameters that take part in matrix products (embedding lookup out, lm_head in).

    ``model.parameters()`` counts a tied embedding/lm_head matrix once: it is then the output
    projection's; untied, the input embedding is left out.
    """
    vision = sum(p.numel() for p in model.model.visual.parameters())
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    tied = model.get_output_embeddings().weight is emb
    return total - vision - (0 if tied else emb.numel())


def main(size: str = "3b", variants: tuple[str, ...] = VARIANTS, rounds: int = 2, steps_per_round: int = 3,
         panels: int = 4, panel_side: int = 112, num_generations: int = 8, batch_size: int = 16,
         max_completion_length: int = 256, gradient_checkpointing: bool = True, peak_tflops: float | None = None,
         seed: int = 0, out_dir: str = "results/bench", command: str = "") -> dict:
    """Benchmark and write ``scale.json`` + ``scale.md`` under ``out_dir`` (rewritten after every trainer).

    Args:
        size: Qwen2.5-VL preset of :data:`segrl.models.qwen.QWEN25VL_SIZES` (``3b``, ``7b``, ``tiny``).
        variants: which of :data:`VARIANTS` to time.
        rounds: interleaved rounds; each variant runs ``steps_per_round`` steps per round, the
            first of which is a warm-up (not timed).
        panels, panel_side: the synthetic multi-panel task (K panels of ``panel_side`` pixels).
        num_generations: G; ``batch_size``: completions per step (a multiple of G).
        max_completion_length: tokens per completion (a random model rarely stops earlier).
        peak_tflops: the GPU's dense bf16 peak; default from the device name.

    Returns:
        The result dict (per-variant median s/step, tokens/s, MFU, ratios, machine, versions).

    Raises:
        RuntimeError: no CUDA device (except ``size="tiny"``), or ``steps_per_round < 2``.
        ImportError: torchvision missing (from :func:`segrl.models.qwen.build_qwen25vl_processor`).
    """
    from segrl.models.qwen import (
        build_qwen25vl_model,
        build_qwen25vl_processor,
        num_parameters,
        qwen25vl_config,
        train_qwen_tokenizer,
    )
    from segrl.models.tiny import texts_from_dataset
    from segrl.rewards import make_segment_reward
    from segrl.tasks import TASKS
    from segrl.trainers.train import reference_corpus

    cuda = torch.cuda.is_available()
    if not cuda and size != "tiny":
        raise RuntimeError(f"segrl bench scale --size {size} needs a CUDA device (only --size tiny runs on CPU)")
    if steps_per_round < 2:
        raise RuntimeError("steps_per_round must be >= 2 (the first step of each trainer is a warm-up)")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise RuntimeError(f"unknown variants {unknown}; expected some of {list(VARIANTS)}")
    device_name = torch.cuda.get_device_name(0) if cuda else None
    peak = peak_tflops or peak_tflops_for(device_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    timers: dict[str, list[_StepTimer]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="segrl-scale-") as tmp:
        tmp = Path(tmp)
        ds = TASKS.get("docci").build(None, tmp / "data", panels=panels, panel_side=panel_side,
                                      count=max(4 * batch_size // num_generations, 8), seed=seed)
        train = ds["train"]
        tokenizer = train_qwen_tokenizer(texts_from_dataset(ds))
        processor = build_qwen25vl_processor(tokenizer)
        config = qwen25vl_config(size, tokenizer)
        dtype = torch.bfloat16 if cuda else torch.float32
        model = build_qwen25vl_model(config, dtype=dtype, device="cuda" if cuda else None, seed=seed)
        params = num_parameters(model)
        n_lm, n_vision = lm_matrix_params(model), params["vision"]
        grid = processor.image_processor(images=[train[0]["images"][0]], return_tensors="pt")["image_grid_thw"]
        patches_per_example = int(grid.prod(-1).sum())
        metric = make_segment_reward("cider_d", reference_corpus=reference_corpus(train))
        setup = {
            "model": f"Qwen2.5-VL-{size} shape, random init ({params['total']:,} parameters: "
                     f"{params['vision']:,} vision, {params['language']:,} language)",
            "parameters": params, "lm_matrix_parameters": n_lm, "dtype": str(dtype).removeprefix("torch."),
            "task": f"docci synthetic, K={panels} panels of {panel_side} px, CIDEr-D per panel",
            "vision_patches_per_example": patches_per_example, "num_generations": num_generations,
            "batch_size": batch_size, "max_completion_length": max_completion_length,
            "gradient_checkpointing": gradient_checkpointing, "beta": 0.0, "generation": "transformers generate",
        }

        def result() -> dict:
            return _summarise(timers, setup, n_lm, n_vision, patches_per_example * batch_size, peak, device_name,
                              command, rounds, steps_per_round)

        for r in range(rounds):
            for variant in variants:
                timer = _StepTimer()
                trainer = _trainer(variant, model, processor, train, metric, tmp / f"r{r}-{variant}", seed,
                                   max_steps=steps_per_round, num_generations=num_generations,
                                   per_device_train_batch_size=batch_size,
                                   max_completion_length=max_completion_length, bf16=cuda,
                                   gradient_checkpointing=gradient_checkpointing, callbacks=[timer])
                trainer.train()
                timer.segment_work = [h.get("timing/segment_scoring_s", 0.0) + h["timing/segment_advantages_s"]
                                      for h in trainer.state.log_history if "timing/segment_advantages_s" in h]
                timers[variant].append(timer)
                del trainer
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()
                _write(result(), out)
    return result()


def _trainer(variant, model, processor, train, metric, out: Path, seed: int, *, callbacks=None, **overrides):
    """A trainer of ``variant`` around an already built ``model`` (shared by every variant)."""
    from trl import GRPOConfig, GRPOTrainer

    from segrl.trainers.config import SegmentGRPOConfig
    from segrl.trainers.segment_grpo import SegmentGRPOTrainer, make_reward_funcs

    common = dict(output_dir=str(out), learning_rate=1e-6, logging_steps=1, save_strategy="no", report_to="none",
                  use_cpu=not torch.cuda.is_available(), seed=seed, beta=0.0, **overrides)
    if variant == "trl":  # TRL's own GRPO with the same holistic reward (segment mean + 0.5 * format)
        args = GRPOConfig(**common, loss_type="grpo", reward_weights=[1.0, 0.5])
        return GRPOTrainer(model=model, reward_funcs=make_reward_funcs(metric), args=args, train_dataset=train,
                           processing_class=processor, callbacks=callbacks)
    if variant == "srpo":
        from segrl.trainers.srpo import SRPOConfig, SRPOTrainer

        args = SRPOConfig(**common, algo="srpo", srpo_instruction="", srpo_force_passes=True)
        return SRPOTrainer(model=model, segment_metric=metric, args=args, train_dataset=train,
                           processing_class=processor, callbacks=callbacks)
    args = SegmentGRPOConfig(**common, algo=variant)
    return SegmentGRPOTrainer(model=model, segment_metric=metric, args=args, train_dataset=train,
                              processing_class=processor, callbacks=callbacks)


def _summarise(timers, setup, n_lm, n_vision, patches_per_step, peak, device_name, command, rounds,
               steps_per_round) -> dict:
    """Medians over the timed steps (each trainer's first step dropped) per variant, and the ratios."""
    per_variant = {}
    for v, ts in timers.items():
        secs = [s for t in ts for s in t.seconds[1:]]
        toks = [n for t in ts for n in t.tokens[1:]]
        if not secs:
            continue
        s, n = statistics.median(secs), statistics.median(toks)
        flops = step_flops(n_lm, n_vision, n, patches_per_step)
        work = [w for t in ts for w in t.segment_work[1:]]
        per_variant[v] = {"seconds_per_step_median": s, "tokens_per_step_median": n,
                          "tokens_per_s_per_gpu": n / s, "model_tflops_per_step": flops / 1e12,
                          "mfu": mfu(flops, s, peak), "seconds_per_step_all": secs,
                          "segment_work_s_median": statistics.median(work) if work else None,
                          "segment_work_s_all": work}
    ratios = {f"{a}_over_{b}": per_variant[a]["seconds_per_step_median"] / per_variant[b]["seconds_per_step_median"]
              for a, b in (("sd_grpo", "grpo"), ("sd_grpo", "trl"), ("srpo", "grpo"))
              if a in per_variant and b in per_variant}
    return {
        "benchmark": "scale", "command": command, "variants": per_variant, "ratios": ratios, "setup": setup,
        "rounds": rounds, "steps_per_round": steps_per_round, "peak_bf16_tflops": peak,
        "machine": {"platform": platform.platform(), "gpu": device_name, "gpus": torch.cuda.device_count(),
                    "torch": torch.__version__, "cuda": torch.version.cuda},
        "libraries": library_versions(), "git": git_state(),
    }


def _write(res: dict, out: Path) -> None:
    (out / "scale.json").write_text(json.dumps(res, indent=2) + "\n")
    git = res["git"]
    def work(r):
        w = r.get("segment_work_s_median")
        return "-" if w is None else f"{w:.4f} ({100 * w / r['seconds_per_step_median']:.2f} %)"

    rows = [f"| {v} | {r['seconds_per_step_median']:.3f} | {work(r)} | {r['tokens_per_step_median']:.0f} | "
            f"{r['tokens_per_s_per_gpu']:.0f} | {r['model_tflops_per_step']:.1f} | "
            + ("-" if r["mfu"] is None else f"{100 * r['mfu']:.2f} %") + " |"
            for v, r in res["variants"].items()]
    lines = [
        "# Training step at paper size: Qwen2.5-VL shape, random weights", "",
        f"Made by: `{res['command']}` at commit {(git['commit'] or '?')[:8]}{'+dirty' if git['dirty'] else ''}",
        f"on {res['machine']['gpu']} ({res['machine']['gpus']} GPU), torch {res['machine']['torch']}, "
        f"CUDA {res['machine']['cuda']}, peak {res['peak_bf16_tflops']} TFLOP/s bf16.", "",
        f"Setup: {res['setup']['model']}; {res['setup']['task']}; G = {res['setup']['num_generations']}, "
        f"{res['setup']['batch_size']} completions per step, max {res['setup']['max_completion_length']} new tokens, "
        f"{res['setup']['dtype']}, gradient checkpointing {res['setup']['gradient_checkpointing']}, beta 0, "
        f"generation with {res['setup']['generation']}; {res['rounds']} interleaved rounds of "
        f"{res['steps_per_round']} steps per variant, the first step of each trainer not timed.", "",
        "| variant | median s/step | segrl segment work, s/step (share) | tokens/step | tokens/s/GPU | "
        "model TFLOP/step | MFU |",
        "|---|---:|---:|---:|---:|---:|---:|", *rows, "",
        "Segment work = segrl's own per-step time, `timing/segment_scoring_s` (parse + batched reward) + "
        "`timing/segment_advantages_s` (gather, estimator, token mapping, diagnostics), measured inside the "
        "trainer, so generation noise does not blur it (the `trl` row, TRL's own trainer, does not log it).", "",
        *[f"- {k.replace('_over_', ' / ')} = **{v:.3f}**" for k, v in res["ratios"].items()], "",
        "MFU counts 2N FLOPs per token to generate and 6N to train (N: language-model matrix parameters; "
        "the vision tower's on its patches); see `segrl/bench/scale.py`.", "",
    ]
    (out / "scale.md").write_text("\n".join(lines))
