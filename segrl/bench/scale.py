"""``segrl bench scale``: the step benchmark at paper size, per batch setting, with where the time goes.

The same comparison as ``segrl bench step`` (TRL's own GRPO, segrl ``grpo``, ``sd_grpo``,
``srpo``; same model, data and seed; interleaved rounds) on a model of exactly Qwen2.5-VL-3B's
(or 7B's) shape built from its config (:mod:`segrl.models.qwen`: no weights are downloaded), on
the multi-panel captioning task (synthetic panels, K = 4, CIDEr-D per panel), at one or more
batch **settings** (:class:`Setting`): completions per optimizer step, the micro-batch, how many
micro-batches one generation feeds (TRL's ``steps_per_generation`` / ``generation_batch_size``)
and the completion length. Paper sizes need a GPU and torchvision (Qwen2.5-VL's processor);
``--size llava-tiny`` (the embedded tiny LLaVA of :mod:`segrl.models.tiny`) runs the same code
on a CPU, ``--size tiny`` a tiny Qwen2.5-VL where torchvision imports.

Reported per setting and variant, over the timed optimizer steps (each trainer's first
generation cycle is a warm-up and not timed; a cycle is the optimizer steps one generation
feeds, see :attr:`Setting.steps_per_cycle`):

* seconds per optimizer step (mean over whole cycles, median beside it);
* tokens/s per GPU as EasyR1 counts them (its ``baselines.md``): prompt + response tokens of
  the generated sequences (image placeholder tokens included) over step time and GPUs;
  response tokens/s alone;
* where the time goes: ``generation`` (TRL's ``_generate_single_turn``: the ``generate`` call),
  ``logprobs`` (no-grad log-prob passes: the old policy's when the setting is off-policy, the
  reference's when ``beta > 0``, SRPO's extra passes), ``scoring`` (``_calculate_rewards``:
  segment parsing and the batched reward) and ``update`` (the rest of the step: the loss's
  forward and backward, the optimizer step, TRL's bookkeeping);
* MFU over the whole step and over the update alone (EasyR1's "actor MFU");
* peak GPU memory (``torch.cuda.max_memory_allocated``; ``None`` on a CPU);
* segrl's own segment work (the trainer's ``timing/segment_*`` metrics).

MFU (model FLOPs utilisation, PaLM, Chowdhery et al. 2022, App. B) counts only the FLOPs the
model needs, not recomputation (gradient checkpointing) or padding:
``flops = (2 + 6 + 2 p) · N_lm · tokens + (2 + 6 + 2 p) · N_vision · patches``: 2 N per token
for the generation pass (prefill + decode, one forward), 6 N for the training forward and
backward (Kaplan et al. 2020, eq. 2.1; attention's sequence-length term is left out: small at
these lengths), 2 N for each of the ``p`` no-grad log-prob passes the algorithm needs (``p = 1``
when the setting is off-policy: TRL then recomputes the sampling policy's log-probs; 0 here
otherwise, ``beta = 0``). ``N_lm`` is the language model's matrix parameters (input embedding
lookup excluded, output projection included), ``N_vision`` the vision tower's (projector
included), ``patches`` the vision transformer's input patches. ``MFU = flops / (seconds ·
peak)``; actor MFU = ``6 N · tokens / (update seconds · peak)``; peak = the GPU's dense bf16
peak (H100/H200 SXM 989.4 TFLOP/s, A100 312) unless given; a CPU has none (MFU ``None``).
With ``--lora-r`` the base is frozen and training counts 4 N per token instead of 6 N (no weight
gradients; the adapter's own FLOPs, under 1 % at the presets' ranks, are left out).
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import json
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from segrl.provenance import git_state, library_versions

VARIANTS = ("trl", "grpo", "sd_grpo", "srpo")
SIZES = ("3b", "7b", "tiny", "llava-tiny")
"""``3b``/``7b``/``tiny``: Qwen2.5-VL shapes (:data:`segrl.models.qwen.QWEN25VL_SIZES`); ``llava-tiny``:
the embedded tiny LLaVA (:func:`segrl.models.tiny.build_tiny_vlm`), which needs no torchvision."""
CPU_SIZES = ("tiny", "llava-tiny")
PHASES = ("generation", "logprobs", "scoring", "update")
LM_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""``--lora-r``'s PEFT targets on Qwen2.5-VL: every language-model linear layer, as the ``*_7b_lora.yaml`` presets."""

PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.05, "A10G": 70.0}
"""Dense bf16 peaks (TFLOP/s, no sparsity) by device-name substring, from NVIDIA's data sheets (SXM parts)."""


def peak_tflops_for(device_name: str | None) -> float | None:
    """Dense bf16 peak of ``device_name`` (e.g. ``"NVIDIA H200"``) from :data:`PEAK_BF16_TFLOPS`, or None."""
    for key, peak in PEAK_BF16_TFLOPS.items():
        if device_name and key in device_name:
            return peak
    return None


def step_flops(n_lm: int, n_vision: int, tokens: float, patches: float, logprob_passes: int = 0,
               train_flops_per_param: float = 6.0) -> float:
    """Model FLOPs of generating and training on ``tokens`` (one generation pass + one training step).

    Args:
        n_lm: the language model's matrix parameters (input embedding excluded, output
            projection included).
        n_vision: the vision tower's parameters (projector included).
        tokens: prompt + completion tokens (image placeholder tokens included).
        patches: vision-transformer input patches of the same sequences.
        logprob_passes: extra no-grad forward passes over the same sequences (old-policy or
            reference log-probs).
        train_flops_per_param: FLOPs per parameter and token of the training step: 6 (forward 2,
            backward 4: activation and weight gradients; Kaplan et al. 2020, eq. 2.1), or 4 for a
            frozen base under LoRA (no weight gradients; the adapter's own FLOPs are left out).

    Returns:
        ``(2 + t + 2 p) · (n_lm · tokens + n_vision · patches)`` FLOPs: 2N per token to generate,
        ``t`` N to train, 2N per extra forward pass ``p``.
    """
    return (2.0 + train_flops_per_param + 2.0 * logprob_passes) * (n_lm * tokens + n_vision * patches)


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


@dataclasses.dataclass(frozen=True)
class Setting:
    """One batch setting of the benchmark, in TRL's terms (one process).

    Fields:
        completions (`int`): completions per optimizer step (the algorithm's batch; a multiple of
            ``micro_batch``), = ``per_device_train_batch_size × gradient_accumulation_steps``.
        micro_batch (`int`): ``per_device_train_batch_size``: completions per forward/backward.
        steps_per_generation (`int`): TRL's ``steps_per_generation``: micro-batches one generation
            feeds; ``generation_batch_size = micro_batch × steps_per_generation`` completions are
            sampled in one ``generate`` call.
        completion_length (`int`): ``max_completion_length`` (a random model rarely stops earlier).
    """

    completions: int
    micro_batch: int
    steps_per_generation: int
    completion_length: int

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.completions // self.micro_batch

    @property
    def generation_batch_size(self) -> int:
        return self.micro_batch * self.steps_per_generation

    @property
    def on_policy(self) -> bool:
        """Every gradient is taken at the policy that sampled its completions (TRL's test).

        TRL recomputes the sampling policy's log-probs (and its ratio ``π_θ / π_old`` differs
        from 1) exactly when ``gradient_accumulation_steps % steps_per_generation != 0``: then a
        generation outlives an optimizer step. Otherwise each optimizer step's micro-batches come
        from generations made at the current weights, the ratio is 1 and no pass is needed.
        """
        return self.gradient_accumulation_steps % self.steps_per_generation == 0

    @property
    def steps_per_cycle(self) -> int:
        """Optimizer steps after which generation and optimizer steps line up again: ``lcm(S, GA) / GA``."""
        ga = self.gradient_accumulation_steps
        return math.lcm(self.steps_per_generation, ga) // ga

    def check(self, num_generations: int) -> None:
        """Raises ValueError (naming the option) when TRL would refuse this setting."""
        if self.micro_batch <= 0 or self.completions % self.micro_batch:
            raise ValueError(f"--completions {self.completions} must be a positive multiple of the micro-batch "
                             f"{self.micro_batch} (--micro-batch-size)")
        if self.generation_batch_size % num_generations:
            raise ValueError(f"generation batch {self.generation_batch_size} (micro-batch {self.micro_batch} x "
                             f"steps per generation {self.steps_per_generation}) must be a multiple of "
                             f"--num-generations {num_generations}")
        if self.completion_length <= 0:
            raise ValueError(f"--completion-length must be > 0, got {self.completion_length}")

    def label(self) -> str:
        return (f"{self.completions} compl./step, micro {self.micro_batch}, {self.steps_per_generation} "
                f"micro-batches/generation ({self.generation_batch_size} per generate), {self.completion_length} tok")


def settings_from(completions: list[int], completion_lengths: list[int], *, micro_batch: int = 0,
                  steps_per_generation: list[int] | None = None, generation_batch_size: list[int] | None = None,
                  num_generations: int = 8) -> list[Setting]:
    """Every combination of the given values as :class:`Setting` s, in order.

    Args:
        completions: completions per optimizer step (one setting each).
        completion_lengths: ``max_completion_length`` values.
        micro_batch: ``per_device_train_batch_size``; 0 = each setting's ``completions`` (one
            forward/backward per optimizer step).
        steps_per_generation, generation_batch_size: TRL's two spellings of the same knob
            (at most one may be given); neither = ``gradient_accumulation_steps`` (TRL's default:
            one generation per optimizer step).

    Raises:
        ValueError: both spellings given, a generation batch not a multiple of the micro-batch,
            or a setting TRL would refuse (:meth:`Setting.check`).
    """
    if steps_per_generation and generation_batch_size:
        raise ValueError("--steps-per-generation and --generation-batch-size are mutually exclusive (as in TRL)")
    out = []
    for c, length, knob in itertools.product(completions, completion_lengths,
                                             steps_per_generation or generation_batch_size or [None]):
        micro = micro_batch or c
        if generation_batch_size:
            if knob % micro:
                raise ValueError(f"--generation-batch-size {knob} must be a multiple of the micro-batch {micro}")
            spg = knob // micro
        else:
            spg = knob or max(1, c // micro)
        setting = Setting(completions=c, micro_batch=micro, steps_per_generation=spg, completion_length=length)
        setting.check(num_generations)
        out.append(setting)
    return out


class _StepTimer(TrainerCallback):
    """Per optimizer step: wall time, and the time and tokens of the phases inside it.

    The trainer's methods are wrapped on the instance (:meth:`attach`): ``_generate_single_turn``
    (generation; counts prompt and response tokens), ``_get_per_token_logps_and_entropies`` when
    called without gradients (log-prob passes) and ``_calculate_rewards`` (scoring).
    """

    def __init__(self):
        self.steps: list[dict] = []
        self.segment_work: list[float] = []  # segrl's own per-generation seconds (timing/segment_*), after training
        self.warmup = 1  # optimizer steps not timed (the first generation cycle)
        self._current: dict = {}
        self._t0 = 0.0

    @staticmethod
    def _sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def attach(self, trainer) -> None:
        def timed(name, fn, count_tokens=False, only_no_grad=False):
            def wrapper(*args, **kwargs):
                if only_no_grad and torch.is_grad_enabled():
                    return fn(*args, **kwargs)
                self._sync()
                t0 = time.perf_counter()
                out = fn(*args, **kwargs)
                self._sync()
                self._current[name] = self._current.get(name, 0.0) + time.perf_counter() - t0
                if count_tokens:  # _generate_single_turn(prompt_ids, ...) -> (completion_ids, logprobs)
                    prompt_ids, completion_ids = args[0], out[0]
                    self._current["prompt_tokens"] += sum(len(p) for p in prompt_ids)
                    self._current["response_tokens"] += sum(len(c) for c in completion_ids)
                    self._current["sequences"] += len(completion_ids)
                return out
            return wrapper

        trainer._generate_single_turn = timed("generation", trainer._generate_single_turn, count_tokens=True)
        trainer._get_per_token_logps_and_entropies = timed("logprobs", trainer._get_per_token_logps_and_entropies,
                                                           only_no_grad=True)
        trainer._calculate_rewards = timed("scoring", trainer._calculate_rewards)

    def on_step_begin(self, args, state, control, **kw):
        self._sync()
        self._current = {"generation": 0.0, "logprobs": 0.0, "scoring": 0.0, "prompt_tokens": 0,
                         "response_tokens": 0, "sequences": 0}
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self._sync()
        step = dict(self._current, seconds=time.perf_counter() - self._t0)
        step["update"] = step["seconds"] - step["generation"] - step["logprobs"] - step["scoring"]
        self.steps.append(step)


def _vision_modules(model) -> list:
    """The vision tower (and projector) of a Qwen2.5-VL (``visual``) or LLaVA (``vision_tower`` +
    ``multi_modal_projector``) model."""
    inner = model.model
    mods = [getattr(inner, n) for n in ("visual", "vision_tower", "multi_modal_projector") if hasattr(inner, n)]
    if not mods:
        raise ValueError(f"{type(model).__name__}: no vision tower found (expected Qwen2.5-VL or LLaVA)")
    return mods


def vision_params(model) -> int:
    """Parameters of the vision tower and its projector (:func:`_vision_modules`)."""
    return sum(p.numel() for m in _vision_modules(model) for p in m.parameters())


def lm_matrix_params(model) -> int:
    """Language-model parameters that take part in matrix products (embedding lookup out, lm_head in).

    ``model.parameters()`` counts a tied embedding/lm_head matrix once: it is then the output
    projection's; untied, the input embedding is left out.
    """
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    tied = model.get_output_embeddings().weight is emb
    return total - vision_params(model) - (0 if tied else emb.numel())


def vision_patches(model, processor, images) -> int:
    """Vision-transformer input patches of one example's ``images``.

    Qwen2.5-VL: the image processor's ``image_grid_thw`` (t · h · w per image, before the 2×2
    merge). LLaVA/CLIP: ``(H / p) · (W / p) + 1`` (the class token) per image of the processed
    ``pixel_values``, ``p`` = the vision config's patch size.
    """
    enc = processor.image_processor(images=list(images), return_tensors="pt")
    if "image_grid_thw" in enc:
        return int(enc["image_grid_thw"].prod(-1).sum())
    pixels = enc["pixel_values"]
    p = model.config.vision_config.patch_size
    return int(pixels.shape[0]) * ((pixels.shape[-2] // p) * (pixels.shape[-1] // p) + 1)


def _build(size: str, ds, tmp: Path, cuda: bool, seed: int):
    """``(model, processor, description, parameter counts)`` of ``size`` for the built dataset ``ds``."""
    from segrl.models.tiny import texts_from_dataset

    dtype = torch.bfloat16 if cuda else torch.float32
    if size == "llava-tiny":
        from segrl.models import build_tiny_vlm, load_policy

        path = build_tiny_vlm(list(texts_from_dataset(ds)), tmp / "model", seed=seed)
        model, processor = load_policy(str(path), dtype=str(dtype).removeprefix("torch."))
        model = model.to("cuda") if cuda else model
        total = sum(p.numel() for p in model.parameters())
        vision = vision_params(model)
        params = {"total": total, "vision": vision, "language": total - vision,
                  "embedding": model.get_input_embeddings().weight.numel()}
        return model, processor, f"embedded tiny LLaVA, random init ({total:,} parameters)", params
    from segrl.models.qwen import (
        build_qwen25vl_model,
        build_qwen25vl_processor,
        num_parameters,
        qwen25vl_config,
        train_qwen_tokenizer,
    )

    tokenizer = train_qwen_tokenizer(texts_from_dataset(ds))
    processor = build_qwen25vl_processor(tokenizer)
    model = build_qwen25vl_model(qwen25vl_config(size, tokenizer), dtype=dtype, device="cuda" if cuda else None,
                                 seed=seed)
    params = num_parameters(model)
    return model, processor, (f"Qwen2.5-VL-{size} shape, random init ({params['total']:,} parameters: "
                              f"{params['vision']:,} vision, {params['language']:,} language)"), params


def main(size: str = "3b", variants: tuple[str, ...] = VARIANTS, rounds: int = 2, steps_per_round: int = 3,
         panels: int = 4, panel_side: int = 112, num_generations: int = 8, settings: list[Setting] | None = None,
         gradient_checkpointing: bool = True, peak_tflops: float | None = None, seed: int = 0,
         lora_r: int = 0, out_dir: str = "results/bench", command: str = "") -> dict:
    """Benchmark and write ``scale.json`` + ``scale.md`` under ``out_dir`` (rewritten after every trainer).

    Args:
        size: one of :data:`SIZES`.
        variants: which of :data:`VARIANTS` to time.
        rounds: interleaved rounds; in each, every setting × variant trains for ``steps_per_round``
            optimizer steps beyond its warm-up cycle (rounded up to whole cycles).
        panels, panel_side: the synthetic multi-panel task (K panels of ``panel_side`` pixels).
        num_generations: G.
        settings: the batch settings (:func:`settings_from`); default one setting of 16
            completions per step in one micro-batch, 256 tokens (the first H200 run's).
        peak_tflops: the GPU's dense bf16 peak; default from the device name.
        lora_r: > 0 trains a LoRA adapter of this rank (alpha 32, as the ``*_7b_lora.yaml`` presets) on
            the frozen model instead of every weight: the model is wrapped once with PEFT
            (:data:`LM_LORA_TARGETS`; ``all-linear`` for ``llava-tiny``) and every trainer gets the
            same ``PeftModel``. The training FLOPs then count 4N per token (no weight gradients).

    Returns:
        The result dict: per setting, per variant the step time, tokens/s, phases, MFU, actor MFU,
        peak memory, segment work; the ``sd_grpo / grpo`` (and other) ratios; machine and versions.

    Raises:
        RuntimeError: no CUDA device for a paper size, an unknown size or variant, ``steps_per_round < 1``.
        ImportError: torchvision missing for a Qwen2.5-VL size
            (:func:`segrl.models.qwen.build_qwen25vl_processor`).
        ValueError: a setting TRL would refuse (:meth:`Setting.check`).
    """
    from segrl.rewards import make_segment_reward
    from segrl.tasks import TASKS
    from segrl.trainers.train import reference_corpus

    cuda = torch.cuda.is_available()
    if size not in SIZES:
        raise RuntimeError(f"unknown --size {size!r}; expected one of {list(SIZES)}")
    if not cuda and size not in CPU_SIZES:
        raise RuntimeError(f"segrl bench scale --size {size} needs a CUDA device (on CPU: --size llava-tiny)")
    if steps_per_round < 1:
        raise RuntimeError("steps_per_round must be >= 1 (timed steps beyond each trainer's warm-up cycle)")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise RuntimeError(f"unknown variants {unknown}; expected some of {list(VARIANTS)}")
    settings = settings or [Setting(16, 16, 1, 256)]
    for s in settings:
        s.check(num_generations)
    device_name = torch.cuda.get_device_name(0) if cuda else None
    peak = peak_tflops or peak_tflops_for(device_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    timers: dict[int, dict[str, list[_StepTimer]]] = {i: {v: [] for v in variants} for i in range(len(settings))}
    peaks: dict[int, dict[str, float]] = {i: {} for i in range(len(settings))}
    with tempfile.TemporaryDirectory(prefix="segrl-scale-") as tmp:
        tmp = Path(tmp)
        biggest = max(s.generation_batch_size for s in settings)
        ds = TASKS.get("docci").build(None, tmp / "data", panels=panels, panel_side=panel_side,
                                      count=max(4 * biggest // num_generations, 8), seed=seed)
        train = ds["train"]
        model, processor, description, params = _build(size, ds, tmp, cuda, seed)
        n_lm, n_vision = lm_matrix_params(model), params["vision"]
        patches_per_example = vision_patches(model, processor, train[0]["images"])
        lora = None
        if lora_r:
            from peft import LoraConfig, get_peft_model

            target = "all-linear" if size == "llava-tiny" else LM_LORA_TARGETS
            model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=32, lora_dropout=0.0,
                                                     target_modules=target, bias="none"))
            lora = {"r": lora_r, "alpha": 32, "target_modules": target,
                    "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
        metric = make_segment_reward("cider_d", reference_corpus=reference_corpus(train))
        setup = {
            "size": size, "model": description, "parameters": params, "lm_matrix_parameters": n_lm,
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            "task": f"docci synthetic, K={panels} panels of {panel_side} px, CIDEr-D per panel",
            "vision_patches_per_example": patches_per_example, "num_generations": num_generations,
            "gradient_checkpointing": gradient_checkpointing, "beta": 0.0, "generation": "transformers generate",
            "gpus": 1, "lora": lora,
        }

        def result() -> dict:
            return _summarise(timers, peaks, settings, setup, n_lm, n_vision, patches_per_example, peak,
                              device_name, command, rounds, steps_per_round)

        for r in range(rounds):
            for i, setting in enumerate(settings):
                cycle = setting.steps_per_cycle
                max_steps = cycle * (1 + math.ceil(steps_per_round / cycle))
                for variant in variants:
                    timer = _StepTimer()
                    if cuda:
                        torch.cuda.reset_peak_memory_stats()
                    trainer = _trainer(variant, model, processor, train, metric, tmp / f"r{r}-s{i}-{variant}", seed,
                                       max_steps=max_steps, num_generations=num_generations,
                                       per_device_train_batch_size=setting.micro_batch,
                                       gradient_accumulation_steps=setting.gradient_accumulation_steps,
                                       steps_per_generation=setting.steps_per_generation,
                                       max_completion_length=setting.completion_length, bf16=cuda,
                                       gradient_checkpointing=gradient_checkpointing, callbacks=[timer])
                    timer.attach(trainer)
                    trainer.train()
                    timer.segment_work = [h.get("timing/segment_scoring_s", 0.0) + h["timing/segment_advantages_s"]
                                          for h in trainer.state.log_history if "timing/segment_advantages_s" in h]
                    timer.warmup = cycle
                    timers[i][variant].append(timer)
                    if cuda:
                        peaks[i][variant] = max(peaks[i].get(variant, 0.0), torch.cuda.max_memory_allocated() / 2**30)
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


def _summarise(timers, peaks, settings, setup, n_lm, n_vision, patches_per_example, peak, device_name, command,
               rounds, steps_per_round) -> dict:
    """Per setting and variant: totals over the timed steps (each trainer's warm-up cycle dropped) and the ratios."""
    rows = []
    for i, setting in enumerate(settings):
        per_variant = {}
        for v, ts in timers[i].items():
            steps = [st for t in ts for st in t.steps[t.warmup:]]
            if not steps:
                continue
            total = {k: sum(st[k] for st in steps) for k in ("seconds", *PHASES, "prompt_tokens", "response_tokens",
                                                             "sequences")}
            n, secs = len(steps), total["seconds"]
            tokens = total["prompt_tokens"] + total["response_tokens"]
            passes = 0 if setting.on_policy else 1
            patches = patches_per_example * total["sequences"]
            train_factor = 4.0 if setup.get("lora") else 6.0
            flops = step_flops(n_lm, n_vision, tokens, patches, logprob_passes=passes,
                               train_flops_per_param=train_factor)
            actor_flops = train_factor * (n_lm * tokens + n_vision * patches)
            update = total["update"]
            work = [w for t in ts for w in t.segment_work[1:]]  # logged per generation; the first is a warm-up
            generations = total["sequences"] / setting.generation_batch_size
            per_variant[v] = {
                "seconds_per_step": secs / n, "seconds_per_step_median": statistics.median(st["seconds"] for st in steps),
                "seconds_per_step_all": [st["seconds"] for st in steps], "timed_steps": n,
                "tokens_per_step": tokens / n, "response_tokens_per_step": total["response_tokens"] / n,
                "tokens_per_s_per_gpu": tokens / secs / setup["gpus"], "response_tokens_per_s": total["response_tokens"] / secs,
                "phase_seconds_per_step": {p: total[p] / n for p in PHASES},
                "phase_share": {p: total[p] / secs for p in PHASES},
                "model_tflops_per_step": flops / n / 1e12, "mfu": mfu(flops, secs, peak),
                "actor_mfu": mfu(actor_flops, update, peak) if update > 0 else None,
                "peak_memory_gib": peaks[i].get(v),
                "segment_work_s_per_generation": statistics.median(work) if work else None,
                "segment_work_s_per_step": statistics.fmean(work) * generations / n if work else None,
            }
        ratios = {f"{a}_over_{b}": per_variant[a]["seconds_per_step"] / per_variant[b]["seconds_per_step"]
                  for a, b in (("sd_grpo", "grpo"), ("sd_grpo", "trl"), ("srpo", "grpo"))
                  if a in per_variant and b in per_variant}
        rows.append({"setting": {**dataclasses.asdict(setting),
                                 "gradient_accumulation_steps": setting.gradient_accumulation_steps,
                                 "generation_batch_size": setting.generation_batch_size,
                                 "on_policy": setting.on_policy, "steps_per_cycle": setting.steps_per_cycle},
                     "variants": per_variant, "ratios": ratios})
    return {
        "benchmark": "scale", "command": command, "settings": rows, "setup": setup,
        "rounds": rounds, "steps_per_round": steps_per_round, "peak_bf16_tflops": peak,
        "machine": {"platform": platform.platform(), "gpu": device_name, "gpus": torch.cuda.device_count(),
                    "torch": torch.__version__, "cuda": torch.version.cuda},
        "libraries": library_versions(), "git": git_state(),
    }


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _write(res: dict, out: Path) -> None:
    (out / "scale.json").write_text(json.dumps(res, indent=2) + "\n")
    git, setup = res["git"], res["setup"]
    rows = []
    for block in res["settings"]:
        s = block["setting"]
        name = (f"{s['completions']} / {s['micro_batch']} / {s['steps_per_generation']} "
                f"({s['generation_batch_size']}) / {s['completion_length']}"
                f"{'' if s['on_policy'] else ' off-policy'}")
        for v, r in block["variants"].items():
            share = r["phase_share"]
            mem = "n/a (CPU)" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f}"
            work = r["segment_work_s_per_step"]
            rows.append(
                f"| {name} | {v} | {r['seconds_per_step']:.3f} | {r['tokens_per_s_per_gpu']:.0f} | "
                f"{r['response_tokens_per_s']:.0f} | {_pct(r['mfu'])} | {_pct(r['actor_mfu'])} | {mem} | "
                + " / ".join(f"{100 * share[p]:.0f}" for p in PHASES) + " | "
                + ("-" if work is None else f"{work:.4f}") + " |")
    cpu = res["machine"]["gpu"] is None
    lines = [
        f"# Training step per batch setting: {setup['model']}"
        + ("" if not setup.get("lora") else f", LoRA r = {setup['lora']['r']} ({setup['lora']['trainable_parameters']:,} "
           "trainable parameters, base frozen)"), "",
        f"Made by: `{res['command']}` at commit {(git['commit'] or '?')[:8]}{'+dirty' if git['dirty'] else ''}",
        f"on {res['machine']['gpu'] or 'CPU (' + res['machine']['platform'] + ')'}, torch {res['machine']['torch']}"
        + ("" if cpu else f", CUDA {res['machine']['cuda']}, peak {res['peak_bf16_tflops']} TFLOP/s bf16") + ".", "",
        f"Setup: {setup['task']}; G = {setup['num_generations']}, {setup['dtype']}, gradient checkpointing "
        f"{setup['gradient_checkpointing']}, beta 0, generation with {setup['generation']}; {res['rounds']} "
        f"interleaved round(s) of {res['steps_per_round']} timed optimizer steps per setting and variant (rounded up to "
        "whole generation cycles), each trainer's first cycle not timed.", "",
        "Setting = completions per optimizer step / micro-batch / micro-batches per generation (completions per "
        "`generate` call) / max completion tokens; off-policy = a generation outlives an optimizer step (TRL then "
        "recomputes the sampling policy's log-probs).", "",
        "| setting | variant | s/step | tokens/s/GPU (EasyR1) | response tokens/s | MFU | actor MFU | "
        "peak GPU GiB | time % gen / logprobs / scoring / update | segrl segment work s/step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|", *rows, "",
        *[f"- {b['setting']['completions']} completions/step, {b['setting']['steps_per_generation']} micro-batches/"
          f"generation: " + ", ".join(f"{k.replace('_over_', ' / ')} = **{v:.3f}**" for k, v in b["ratios"].items())
          for b in res["settings"] if b["ratios"]], "",
        "tokens/s/GPU counts prompt + response tokens of the generated sequences (image tokens included) over step "
        "time and GPUs, as EasyR1's baselines do. MFU counts 2N FLOPs per token to generate, 6N to train and 2N per "
        "extra log-prob pass; actor MFU is the training FLOPs (6N) over the update time alone; both need the GPU's "
        "peak (none on a CPU: `-`). Segment work = segrl's `timing/segment_scoring_s` + `timing/segment_advantages_s` "
        "(the `trl` row, TRL's own trainer, does not log it). See `segrl/bench/scale.py`.", "",
    ]
    (out / "scale.md").write_text("\n".join(lines))
