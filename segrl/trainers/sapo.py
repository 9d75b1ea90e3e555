"""SAPO on TRL: segment-aligned policy optimisation with a learned critic.

Source: Gao et al. 2026, "Segment-Aligned Policy Optimization for Multi-Modal Reasoning"
(arXiv 2605.01327); reference code: the authors' verl fork (GitHub ``Graysonicc/SAPO``:
``verl/trainer/ppo/core_algos.py``, ``examples/ppo_trainer/run_sapo.sh``). Not to be confused
with TRL's ``loss_type="sapo"`` (Soft Adaptive Policy Optimization, a different method).

Segments are found from the policy's own token entropy (eq. 11; alternatives: line breaks,
or the task's labelled segments), credit is assigned by segment-level GAE over a critic's
values read at segment ends (eqs. 6-7), the policy ratio is the segment's mean log-ratio
(eq. 8) inside a dual-clip PPO objective (eq. 9), and the critic regresses the segment
returns at segment ends only (eq. 10). The maths lives in :mod:`segrl.trainers.segment_gae`.

TRL still generates, runs the reference model, scores (through
:class:`~segrl.trainers.segment_grpo.SegmentGRPOTrainer`'s reward path), logs and steps the
policy's optimizer; this subclass adds what TRL lacks:

* ``token_advantages`` (the advantage step after TRL's pass): one no-grad forward of the policy
  (old log-probs and entropies), one of the critic (values), the segment ends, the k1 KL
  penalty in the reward, segment GAE, whitening (statistics over every process) and the
  clamp; the batch carries ``(B, T)`` advantages, segment ids, segment ends and returns.
* ``_compute_loss``: the segment-ratio dual-clip objective (token mean) for the policy,
  returned to TRL's training step; the critic's value loss is back-propagated into the
  critic alone, whose own optimizer (AdamW, ``critic_learning_rate``, gradient clip
  ``critic_max_grad_norm``, constant learning rate) steps whenever the policy's does.
* Checkpoints: ``checkpoint-N/critic/`` holds the critic's weights and optimizer state;
  resuming restores them, and a checkpoint without them is a :class:`ResumeError`.

Where this departs from the paper's code (verl):

* TRL requires ``num_generations >= 2``; the paper samples one rollout per prompt (verl
  ``rollout.n=1``). SAPO uses no group statistics, so the presets keep the paper's number of
  rollouts per batch with G = 2 (half as many prompts).
* verl updates the critic, then the actor, each over its own mini-batches; here both learn
  from the same micro-batches and step together (TRL's loop). verl's mini-batches map onto
  TRL's ``steps_per_generation`` (several optimizer steps per generation batch) and its
  ``ppo_epochs`` onto ``num_iterations``, so the Table 7 preset keeps 4 updates per batch.
* Loss aggregation: token mean over the micro-batch, divided by the accumulation steps (verl
  ``token-mean`` divides by the mini-batch's token count).
* The value loss is eq. 10 as written; verl's ``0.5 ·`` factor (immaterial under Adam) and
  value clipping (``cliprange_value=0.5``) are available as ``value_clip``.
* The critic is initialised from the policy's weights in memory (its backbone, i.e. the
  model without the LM head, plus a scalar head drawn from N(0, 0.02²) with a seed of its
  own) rather than re-loaded from the checkpoint path; under ZeRO-3 it is re-loaded from the
  policy's path. V(s_t) is read from the hidden state that predicts token t, as verl does.
* Completions whose outcome reward is not finite are kept out of the advantage statistics
  and the value loss (advantage 0), counted in ``nonfinite/segment_rewards``.
* Entropies and old log-probs come from one extra no-grad forward of the policy over the
  generation batch (verl's ``compute_log_prob`` likewise). When ``steps_per_generation``
  exceeds ``gradient_accumulation_steps`` TRL also computes old log-probs itself, so that
  forward runs twice (a cost, not a difference).
* Multi-process: DDP wraps the critic; under DeepSpeed it gets a DeepSpeed engine of its own
  (the policy's ZeRO stage, the client AdamW, DeepSpeed's gradient clip; ``critic/grad_norm``
  is then not logged). Checked: two CPU processes under ZeRO-2 train and save the critic.
  Not checked here: DDP, ZeRO-3, resuming under DeepSpeed. FSDP and PEFT are not supported.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.utils import DistributedType, is_peft_model
from torch import nn
from transformers.integrations import is_deepspeed_zero3_enabled
from trl.trainer.utils import create_model_from_path, disable_dropout_in_model, get_config_model_id

from segrl.trainers.checkpoint import ResumeError
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.registry import ALGORITHMS, AlgorithmSpec
from segrl.trainers.segment_gae import (
    LOG_RATIO_CLAMP,
    dual_clip_policy_loss,
    entropy_segment_ends,
    labelled_segment_ends,
    masked_mean,
    masked_whiten,
    newline_segment_ends,
    segment_gae_advantages,
    segment_log_ratio,
    segment_value_loss,
    token_contains,
)
from segrl.trainers.segment_grpo import ScoredBatch, SegmentGRPOTrainer, policy_inputs

logger = logging.getLogger(__name__)

SEGMENTATIONS = ("entropy", "newline", "task")
IGNORED = ("alpha", "advantage_eps", "dump_advantages", "delta", "top_entropy_quantile", "importance_sampling_level",
           "entropy_coef", "off_policy_mask_threshold", "fp16")
"""Config fields SAPO's objective and advantage step never read (refused at non-default values)."""
CRITIC_DIR = "critic"
CRITIC_FILES = ("model.safetensors", "optimizer.pt")


@dataclass
class SAPOConfig(SegmentGRPOConfig):
    """Configuration of :class:`SAPOTrainer` (``--algo sapo``).

    TRL fields keep their meaning, except: ``beta`` is the coefficient of the k1 KL penalty
    *in the reward* (SAPO Table 7: 0.001; TRL's KL loss term is not used) and needs TRL's
    reference model; ``epsilon`` / ``epsilon_high`` are eq. 9's ε_low / ε_high (0.2 / 0.28);
    ``learning_rate`` is the actor's. ``loss_type`` is not used (SAPO's objective replaces
    TRL's loss).

    Raises:
        ValueError: a value out of range (the message names the field and value), an unknown
            ``segmentation``, a ``loss_type`` other than ``bnpo`` or ``scale_rewards`` other than
            ``group``, or a non-default value of a field SAPO does not read (:data:`IGNORED`:
            TRL's ``delta``, ``top_entropy_quantile``, ``importance_sampling_level``,
            ``entropy_coef``, ``off_policy_mask_threshold``, ``fp16``; segrl's ``alpha``,
            ``advantage_eps``, ``dump_advantages``); and everything ``SegmentGRPOConfig`` refuses.
    """

    algo: str = field(default="sapo", metadata={"help": "Always 'sapo' for this config."})
    segmentation: str = field(
        default="entropy",
        metadata={
            "help": "Segment ends: 'entropy' (top-k% entropy tokens, eq. 11), 'newline' (line breaks) "
            "or 'task' (the task's labelled segments, as SD-GRPO scores them)."
        },
    )
    entropy_top_frac: float = field(
        default=0.30,
        metadata={"help": "k% of eq. 11 as a fraction: ceil(k * valid_len) tokens end a segment."},
    )
    gae_gamma: float = field(default=1.0, metadata={"help": "GAE discount γ over segments (eqs. 6-7)."})
    gae_lambda: float = field(default=0.99, metadata={"help": "GAE λ over segments (eqs. 6-7)."})
    advantage_clip: float = field(default=5.0, metadata={"help": "Whitened advantages are clamped to ±this."})
    dual_clip_c: float = field(
        default=3.0, metadata={"help": "Dual-clip constant c > 1 for negative advantages."}
    )
    log_ratio_clamp: float = field(
        default=LOG_RATIO_CLAMP, metadata={"help": "Per-token log-ratio clamp (eq. 8)."}
    )
    critic_learning_rate: float = field(
        default=2.0e-6, metadata={"help": "Critic AdamW learning rate (constant)."}
    )
    critic_weight_decay: float = field(
        default=0.01, metadata={"help": "Critic AdamW weight decay (verl's default)."}
    )
    critic_max_grad_norm: float = field(default=1.0, metadata={"help": "Critic gradient-norm clip."})
    value_clip: float | None = field(
        default=None, metadata={"help": "PPO value clipping range (verl: 0.5); None = eq. 10 as written."}
    )
    beta: float = field(
        default=0.001, metadata={"help": "k1 KL penalty coefficient in the reward (Table 7)."}
    )
    epsilon_high: float | None = field(
        default=0.28, metadata={"help": "ε_high of eq. 9 (ε_low is `epsilon`)."}
    )
    loss_type: str | None = field(  # type: ignore[assignment]
        default=None, metadata={"help": "Not used by SAPO (its objective replaces TRL's loss); leave unset."}
    )

    def __post_init__(self) -> None:
        if self.algo != "sapo":
            raise ValueError(f"SAPOConfig runs algo='sapo', got algo={self.algo!r}")
        if self.segmentation not in SEGMENTATIONS:
            raise ValueError(
                f"segmentation must be one of {', '.join(SEGMENTATIONS)}, got {self.segmentation!r}"
            )
        checks = {
            "entropy_top_frac": 0.0 < self.entropy_top_frac <= 1.0,
            "gae_gamma": 0.0 <= self.gae_gamma <= 1.0,
            "gae_lambda": 0.0 <= self.gae_lambda <= 1.0,
            "advantage_clip": self.advantage_clip > 0,
            "dual_clip_c": self.dual_clip_c > 1.0,
            "log_ratio_clamp": self.log_ratio_clamp > 0,
            "critic_learning_rate": self.critic_learning_rate > 0,
            "critic_weight_decay": self.critic_weight_decay >= 0,
            "critic_max_grad_norm": self.critic_max_grad_norm > 0,
            "value_clip": self.value_clip is None or self.value_clip > 0,
            "beta": self.beta >= 0,
            "format_weight": self.format_weight >= 0,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"SAPO: out of range: {', '.join(bad)} (see SAPOConfig's field help)")
        super().__post_init__()  # the spec (below): fixed TRL options, refused ignored fields


@dataclass
class ValueOutput:
    """Per-position values ``(B, L - 1)``: ``values[:, j]`` = V of the state that predicts token j + 1."""

    values: torch.Tensor

    @property
    def log_probs(self) -> torch.Tensor:
        """The per-token field TRL's forward helper (``_get_per_token_logps_and_entropies``) reads."""
        return self.values


class ValueModel(nn.Module):
    """The critic: the policy's backbone (the model without its LM head) and a scalar value head.

    ``forward`` accepts the policy's inputs (ids, mask, images ...) and the fused-LM-head
    keywords TRL passes (``labels``, ``fused_lm_head``; ignored), so TRL's per-token forward
    helper — which splits multimodal inputs into chunks for every VLM family — serves the
    critic unchanged; its ``log_probs`` field then holds V(s_t) (see :class:`ValueOutput`).

    Args:
        backbone: a transformers base model returning ``last_hidden_state`` (``policy.base_model``).
        hidden_size: its hidden size.
        seed: seeds the head's N(0, init_std²) initialisation (leaves the global RNG alone).
    """

    def __init__(self, backbone: nn.Module, hidden_size: int, seed: int = 0, init_std: float = 0.02) -> None:
        super().__init__()
        self.backbone = backbone
        self.value_head = nn.Linear(hidden_size, 1)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.value_head.weight.copy_(
                torch.randn(self.value_head.weight.shape, generator=generator) * init_std
            )
            self.value_head.bias.zero_()
        reference = next(backbone.parameters())
        self.value_head.to(device=reference.device, dtype=reference.dtype)

    def forward(self, *args, labels=None, fused_lm_head=False, **kwargs) -> ValueOutput:
        kwargs["use_cache"] = False
        hidden = self.backbone(*args, **kwargs).last_hidden_state[:, :-1]
        return ValueOutput(self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float())


def _ds_config_for_critic(ds_config: dict, args: SAPOConfig, world_size: int) -> dict:
    """The policy's DeepSpeed config, re-targeted at the critic (own optimizer, clip, no 'auto')."""
    config = copy.deepcopy(ds_config)
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    config["train_micro_batch_size_per_gpu"] = args.per_device_train_batch_size
    config["gradient_accumulation_steps"] = args.gradient_accumulation_steps
    config["train_batch_size"] = (
        args.per_device_train_batch_size * args.gradient_accumulation_steps * world_size
    )
    config["gradient_clipping"] = args.critic_max_grad_norm
    config["bf16"] = {"enabled": bool(args.bf16)}
    config.pop("fp16", None)
    config["zero_allow_untested_optimizer"] = True  # the client optimizer: torch AdamW

    def drop_auto(node):
        if isinstance(node, dict):
            return {k: drop_auto(v) for k, v in node.items() if v != "auto"}
        return node

    return drop_auto(config)


class SAPOTrainer(SegmentGRPOTrainer):
    """Segment-aligned PPO with a critic on top of TRL's ``GRPOTrainer`` (see the module docstring).

    Args: as :class:`SegmentGRPOTrainer`, with a :class:`SAPOConfig`.

    Raises:
        TypeError: ``args`` is not a :class:`SAPOConfig`.
        NotImplementedError: a PEFT policy, or FSDP.
        ResumeError: resuming from a checkpoint without ``critic/`` weights and optimizer state.
    """

    def __init__(self, model, segment_metric, args: SAPOConfig, train_dataset=None, **kwargs):
        if not isinstance(args, SAPOConfig):
            raise TypeError(f"args must be a SAPOConfig, got {type(args).__name__}")
        super().__init__(
            model=model, segment_metric=segment_metric, args=args, train_dataset=train_dataset, **kwargs
        )
        if is_peft_model(self.model):
            raise NotImplementedError(
                "SAPO's critic is a copy of the policy's backbone: PEFT policies are not supported"
            )
        if self.is_fsdp_enabled:
            raise NotImplementedError(
                "SAPO's critic is not wired for FSDP; use DeepSpeed (configs/accelerate/)"
            )
        self.critic, self.critic_optimizer = self._build_critic()
        self._critic_engine = None  # DeepSpeed engine, created once the policy's engine exists

    # ------------------------------------------------------------------ critic

    def _build_critic(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        policy = self.model
        if is_deepspeed_zero3_enabled():  # partitioned weights cannot be copied: load them again
            full = create_model_from_path(get_config_model_id(policy.config), dtype=policy.dtype)
            backbone = full.base_model
        else:
            backbone = copy.deepcopy(policy.base_model)
        disable_dropout_in_model(backbone)
        if self.args.gradient_checkpointing:
            backbone.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs
                or {"use_reentrant": False}
            )
        hidden = policy.config.get_text_config().hidden_size
        critic = ValueModel(backbone, hidden, seed=self.args.seed).to(self.accelerator.device)
        critic.train()
        optimizer = torch.optim.AdamW(
            critic.parameters(),
            lr=self.args.critic_learning_rate,
            betas=(self.args.adam_beta1, self.args.adam_beta2),
            eps=self.args.adam_epsilon,
            weight_decay=self.args.critic_weight_decay,
        )
        if self.accelerator.distributed_type in (
            DistributedType.MULTI_GPU,
            DistributedType.MULTI_CPU,
            DistributedType.MULTI_XPU,
            DistributedType.MULTI_NPU,
        ):
            critic = self.accelerator.prepare_model(critic)
        return critic, optimizer

    def _critic_module(self) -> nn.Module:
        """The critic as called in forward passes (its DeepSpeed engine once there is one)."""
        if self.is_deepspeed_enabled:
            self._ensure_critic_engine()
            return self._critic_engine
        return self.critic

    def _ensure_critic_engine(self) -> None:
        if self._critic_engine is not None:
            return
        import deepspeed

        config = _ds_config_for_critic(
            self.accelerator.state.deepspeed_plugin.deepspeed_config,
            self.args,
            self.accelerator.num_processes,
        )
        self._critic_engine, self.critic_optimizer, _, _ = deepspeed.initialize(
            model=self.critic, optimizer=self.critic_optimizer, config=config
        )

    def unwrapped_critic(self) -> ValueModel:
        """The :class:`ValueModel` itself (outside DDP / DeepSpeed wrappers)."""
        return self.accelerator.unwrap_model(self.critic)

    def _critic_backward(self, value_loss: torch.Tensor, normalizer: float) -> None:
        if self.is_deepspeed_enabled:
            self._critic_engine.backward(value_loss)  # DeepSpeed scales by its accumulation steps
            self._critic_engine.step()  # applies the update only at an accumulation boundary
        else:
            (value_loss / normalizer).backward()

    def _step_critic(self) -> None:
        """Clip the critic's accumulated gradients and step its optimizer (skipped if not finite)."""
        params = [p for p in self.critic.parameters() if p.grad is not None]
        norm = (
            torch.nn.utils.clip_grad_norm_(params, self.args.critic_max_grad_norm)
            if params
            else torch.tensor(0.0)
        )
        finite = math.isfinite(float(norm))
        if finite:
            self.critic_optimizer.step()
        self.critic_optimizer.zero_grad(set_to_none=True)
        self._metrics["train"]["critic/grad_norm"].append(float(norm))
        self._metrics["train"]["nonfinite/critic_step_skipped"].append(float(not finite))

    def _get_grad_norm(self, model, grad_norm=None):
        """Called once per optimizer step, just before the policy's ``optimizer.step()``: the critic steps too."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if not self.is_deepspeed_enabled:
            self._step_critic()
        return grad_norm

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}" / CRITIC_DIR
        if self.is_deepspeed_enabled:
            self._ensure_critic_engine()
            self._critic_engine.save_checkpoint(str(folder))  # collective
            return
        if not self.args.should_save:
            return
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.unwrapped_critic().state_dict().items()}
        save_file(state, str(folder / CRITIC_FILES[0]))
        torch.save(self.critic_optimizer.state_dict(), folder / CRITIC_FILES[1])

    def _load_optimizer_and_scheduler(self, checkpoint):
        """Restore the policy's optimizer and scheduler (TRL/transformers), then the critic's weights and optimizer.

        Raises:
            ResumeError: ``checkpoint/critic/`` lacks the weights or the optimizer state.
        """
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        folder = Path(checkpoint) / CRITIC_DIR
        if self.is_deepspeed_enabled:
            self._ensure_critic_engine()
            path, _ = self._critic_engine.load_checkpoint(str(folder))
            if path is None:
                raise ResumeError(f"checkpoint {checkpoint} is incomplete, missing: the critic ({folder})")
            return
        missing = [f"{CRITIC_DIR}/{name}" for name in CRITIC_FILES if not (folder / name).exists()]
        if missing:
            raise ResumeError(f"checkpoint {checkpoint} is incomplete, missing: {', '.join(missing)}")
        from safetensors.torch import load_file

        self.unwrapped_critic().load_state_dict(
            load_file(str(folder / CRITIC_FILES[0]), device=str(self.accelerator.device)), strict=True
        )
        self.critic_optimizer.load_state_dict(
            torch.load(folder / CRITIC_FILES[1], map_location=self.accelerator.device, weights_only=True)
        )

    # ------------------------------------------------------------------ advantages

    def _segment_ends(self, scored: ScoredBatch, entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` segment ends for ``args.segmentation`` (see :mod:`segrl.trainers.segment_gae`)."""
        mode = self.args.segmentation
        if mode == "entropy":
            return entropy_segment_ends(entropies, mask, self.args.entropy_top_frac)
        T = mask.shape[1]
        if mode == "newline":
            flags = torch.zeros(mask.shape, dtype=torch.bool)
            for i, (row, text) in enumerate(zip(self.token_offsets(scored), scored.texts)):
                row_flags = token_contains(row, text)[:T]
                flags[i, : len(row_flags)] = torch.tensor(row_flags, dtype=torch.bool)
            return newline_segment_ends(flags.to(mask.device), mask)
        return labelled_segment_ends(self.token_segments(scored, T).to(mask.device), mask)

    def token_advantages(self, scored: ScoredBatch, out: dict) -> torch.Tensor:
        """``(B_local, T)`` SAPO advantages: segment GAE on the critic's values, whitened over every
        process and clamped (module docstring); adds to ``out`` what the loss needs (old log-probs,
        segment ids and ends, returns, old values)."""
        args: SAPOConfig = self.args
        mode = self._mode()
        batch = policy_inputs(out)
        mask = batch.loss_mask
        chunk = args.per_device_train_batch_size if mode == "train" else args.per_device_eval_batch_size
        with torch.no_grad():
            old_logps, entropies, _ = self._get_per_token_logps_and_entropies(
                self.model, batch.input_ids, batch.attention_mask, batch.logits_to_keep, batch_size=chunk,
                compute_entropy=True, **batch.model_kwargs,
            )
            values, _, _ = self._get_per_token_logps_and_entropies(
                self._critic_module(), batch.input_ids, batch.attention_mask, batch.logits_to_keep, batch_size=chunk,
                **batch.model_kwargs,
            )

        outcome = scored.holistic[self.local_rows(len(scored.texts))].to(out["completion_ids"].device)
        finite = torch.isfinite(outcome)
        row_mask = mask.bool() & finite[:, None]
        ends = self._segment_ends(scored, entropies, row_mask)
        ref = out.get("ref_per_token_logps")
        kl = (old_logps - ref) if ref is not None and args.beta > 0 else None
        seg = segment_gae_advantages(
            ends,
            row_mask,
            values,
            torch.where(finite, outcome, torch.zeros_like(outcome)),
            kl=kl,
            kl_coef=args.beta,
            gamma=args.gae_gamma,
            lam=args.gae_lambda,
        )

        def reduce(t):
            return self.accelerator.reduce(t, reduction="sum")

        advantages = masked_whiten(seg.token_advantages, row_mask, reduce).clamp(
            -args.advantage_clip, args.advantage_clip
        )
        out["old_per_token_logps"] = old_logps
        out["sapo_segment_ids"] = seg.seg_ids
        out["sapo_segment_ends"] = ends & row_mask
        out["sapo_returns"] = seg.token_returns
        out["sapo_old_values"] = values
        self._log_sapo_metrics(mode, scored, seg, ends & row_mask, row_mask, values, kl, finite)
        return advantages

    def _log_sapo_metrics(self, mode, scored: ScoredBatch, seg, ends, row_mask, values, kl, finite) -> None:
        m = self._metrics[mode]

        def global_mean(total: torch.Tensor, count: torch.Tensor) -> float:
            t = self.accelerator.reduce(
                torch.stack([total.float(), count.float()]).to(self.accelerator.device), "sum"
            )
            return (t[0] / t[1].clamp(min=1.0)).item()

        n_seg = seg.segment_mask.sum(1).float()
        rows = row_mask.any(1)
        m["sapo/segments_per_completion"].append(global_mean(n_seg[rows].sum(), rows.sum()))
        m["sapo/tokens_per_segment"].append(global_mean(row_mask.sum().float(), n_seg.sum()))
        sm = seg.segment_mask
        m["critic/values_mean"].append(global_mean(seg.values[sm].sum(), sm.sum()))
        m["critic/returns_mean"].append(global_mean(seg.returns[sm].sum(), sm.sum()))
        m["sapo/segment_advantage_mean"].append(global_mean(seg.advantages[sm].sum(), sm.sum()))
        # explained variance of the returns by the values at segment ends: 1 - Var(R - V) / Var(R)
        r, v = seg.returns[sm], seg.values[sm]
        stats = self.accelerator.reduce(
            torch.stack([sm.sum().float(), r.sum(), (r**2).sum(), (r - v).sum(), ((r - v) ** 2).sum()]).to(
                self.accelerator.device
            ),
            "sum",
        )
        n = stats[0].clamp(min=1.0)
        var_r = stats[2] / n - (stats[1] / n) ** 2
        var_e = stats[4] / n - (stats[3] / n) ** 2
        if var_r > 1e-8:
            m["critic/explained_variance"].append((1 - var_e / var_r).item())
        if kl is not None:
            m["sapo/kl_in_reward"].append(global_mean((kl * row_mask).sum(), row_mask.sum()))
        self.log_segment_rewards(mode, *self._gather_segments(scored.scores))
        bad = int(self.accelerator.reduce((~finite).sum().to(self.accelerator.device), "sum"))
        m["nonfinite/segment_rewards"].append(float(bad))
        if bad:
            logger.warning(
                "step %d: %d completions with a non-finite outcome reward get advantage 0 and no value loss",
                self.state.global_step,
                bad,
            )

    # ------------------------------------------------------------------ loss

    def _compute_loss(self, model, inputs):
        """SAPO's policy loss (eq. 9 with the segment ratio of eq. 8, token mean); the critic's value
        loss (eq. 10) is back-propagated into the critic here, in training."""
        args: SAPOConfig = self.args
        mode = "train" if self.model.training else "eval"
        batch = policy_inputs(inputs)
        ids, attention, T, mask = batch.input_ids, batch.attention_mask, batch.logits_to_keep, batch.loss_mask

        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, ids, attention, T, compute_entropy=True, **batch.model_kwargs
        )
        log_ratio = segment_log_ratio(
            logps, inputs["old_per_token_logps"], inputs["sapo_segment_ids"], mask, args.log_ratio_clamp
        )
        policy = dual_clip_policy_loss(
            log_ratio, inputs["advantages"], mask, self.epsilon_low, self.epsilon_high, args.dual_clip_c
        )
        per_token = policy.per_token
        if "importance_sampling_ratio" in inputs:  # TRL's vLLM sampling correction
            per_token = per_token * inputs["importance_sampling_ratio"]
        policy_loss = masked_mean(per_token, mask)
        normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0

        critic = self._critic_module()
        with torch.set_grad_enabled(mode == "train"):
            values, _, _ = self._get_per_token_logps_and_entropies(critic, ids, attention, T, **batch.model_kwargs)
            value_loss = segment_value_loss(
                values,
                inputs["sapo_returns"],
                inputs["sapo_segment_ends"],
                mask,
                inputs["sapo_old_values"],
                args.value_clip,
            )
        if mode == "train":
            self._critic_backward(value_loss, normalizer)

        m = self._metrics[mode]

        def mean_over_processes(x: torch.Tensor) -> float:
            return self.accelerator.gather(x.detach().reshape(1).float()).mean().item()

        m["policy_loss"].append(mean_over_processes(policy_loss))
        m["critic/value_loss"].append(mean_over_processes(value_loss))
        m["entropy"].append(mean_over_processes(masked_mean(entropies, mask)))
        m["clip_ratio/region_mean"].append(mean_over_processes(policy.clip_frac))
        m["clip_ratio/low_mean"].append(mean_over_processes(policy.clip_frac_low))
        m["clip_ratio/high_mean"].append(mean_over_processes(policy.clip_frac_high))
        m["clip_ratio/dual_mean"].append(mean_over_processes(policy.dual_clip_frac))
        return policy_loss / normalizer


ALGORITHMS.register_spec(AlgorithmSpec(
    "sapo", estimator=None, trl_options={"loss_type": "bnpo", "scale_rewards": "group"}, estimator_options={},
    ignored=IGNORED, trainer=SAPOTrainer, config=SAPOConfig,
    summary="SAPO: entropy segments, segment GAE with a critic, segment-ratio dual-clip PPO"))
