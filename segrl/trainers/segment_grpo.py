"""SD-GRPO on TRL: a ``GRPOTrainer`` subclass that hands TRL per-token advantages.

TRL generates, computes log-probs, the reference model's log-probs, the KL term and the
clipped loss; this subclass changes only what the algorithm changes:

* ``_calculate_rewards``: one parse + one batched metric call scores every segment of the
  batch (:func:`segrl.rewards.scorer.score_segments`); TRL receives two reward columns,
  ``segments`` (mean segment reward) and ``format``, weighted ``1`` and ``format_weight``,
  so TRL's own ``reward`` metric is the holistic reward ``R = mean_k r_k + w * format``.
* ``_generate_and_score_completions``: after TRL's pass, gathers the ``(B, K)`` segment
  rewards of all processes (a group's G rollouts may sit on different ranks), runs the
  registered estimator (``args.algo``), slices back this process's rows and maps
  ``(B, K)`` → ``(B, T)`` through the tokenizer's character offsets
  (:mod:`segrl.trainers.token_mapping`). TRL's loss accepts ``(B, T)`` advantages.
* Its own cost is logged every step: ``timing/segment_scoring_s`` (parse + batched metric call,
  the rewards every algorithm needs) and ``timing/segment_advantages_s`` (gather, estimator,
  token mapping, diagnostics: what SD-GRPO adds), in seconds.

Departures from the paper, reconstructed here: tokens outside every segment (preamble,
separators, EOS) carry the rollout-level advantage of the holistic reward; the label tokens
(``Answer 2:``) belong to their segment; the holistic reward adds a format term.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
from trl import GRPOTrainer

from segrl.rewards.format import format_reward
from segrl.rewards.scorer import RewardError, SegmentScores, score_segments
from segrl.trainers.advantages import AdvantageInputs, compute_advantages
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.diagnostics import (
    centred_segment_rewards,
    misattributed_token_fraction,
    rollout_segment_correlation,
)
from segrl.trainers.token_mapping import (
    assign_tokens_to_segments,
    map_advantages_to_tokens,
    segment_index_tensor,
    token_char_offsets,
)

logger = logging.getLogger(__name__)


def completion_text(completion) -> str:
    """The text of a TRL completion: a string, or ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, list):
            return "".join(b.get("text") or "" for b in content if isinstance(b, dict))
        return content if isinstance(content, str) else ""
    return ""


def make_reward_funcs(metric):
    """TRL-signature reward functions ``(completions, segment_labels, segment_references, **kw) -> list[float]``.

    Returns ``[segments, format]``: the mean per-segment reward and the format reward. They
    are what TRL logs as ``rewards/segments`` and ``rewards/format``; the trainer computes
    the same values in one pass (they also work standalone, e.g. in a plain ``GRPOTrainer``).
    """

    def segments(completions, segment_labels, segment_references, **_):
        texts = [completion_text(c) for c in completions]
        return score_segments(texts, segment_labels, segment_references, metric).mean_reward().tolist()

    def format(completions, segment_labels, **_):  # noqa: A001 - the reward's logged name
        return format_reward([completion_text(c) for c in completions], segment_labels)

    return [segments, format]


class SegmentGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with segment-level advantages (SD-GRPO, Dr. variants, blend, ...).

    Args:
        model: a model id, local path or ``PreTrainedModel`` (as ``GRPOTrainer``).
        segment_metric: ``metric(predictions, references) -> list[float | None]`` scoring one
            segment against its references (see :mod:`segrl.rewards`).
        args: a :class:`SegmentGRPOConfig`.
        train_dataset: rows in segrl's schema (``prompt``, ``images``, ``segment_labels``,
            ``segment_references`` ...).
        **kwargs: passed to ``GRPOTrainer`` (``processing_class``, ``callbacks`` ...).

    Raises:
        RewardError: when a reward function fails inside training; the failing batch is
            written to ``<output_dir>/reward_failure.jsonl`` first and the path is in the message.
    """

    def __init__(self, model, segment_metric, args: SegmentGRPOConfig, train_dataset=None, **kwargs):
        if not isinstance(args, SegmentGRPOConfig):
            raise TypeError(f"args must be a SegmentGRPOConfig, got {type(args).__name__}")
        self.segment_metric = segment_metric
        reward_funcs, args.reward_weights = self._reward_funcs(segment_metric, args)
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset, **kwargs)
        self._pending: dict | None = None

    def _reward_funcs(self, segment_metric, args: SegmentGRPOConfig) -> tuple[list, list[float]]:
        """The reward columns TRL logs and their weights: ``segments`` (1) and ``format`` (``format_weight``).

        A trainer with another rollout reward overrides this together with
        :meth:`_calculate_rewards` and :meth:`_holistic_rewards`.
        """
        return make_reward_funcs(segment_metric), [1.0, float(args.format_weight)]

    # ------------------------------------------------------------------ checkpoints

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Load a checkpoint's weights through the model class's own key mapping.

        transformers 5's ``Trainer`` loads ``model.safetensors`` with a raw
        ``load_state_dict(strict=False)``; for models whose saved keys are renamed on save
        (LLaVA: ``language_model.model.*`` on disk, ``model.language_model.*`` in memory)
        every key is missed and the resumed run silently restarts from the initial weights.
        ``from_pretrained`` applies the mapping; a missing or unexpected key is an error.
        """
        model = model if model is not None else self.model
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(model, "peft_config"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        loaded = type(model).from_pretrained(resume_from_checkpoint, dtype=next(model.parameters()).dtype)
        model.load_state_dict(loaded.state_dict(), strict=True)

    # ------------------------------------------------------------------ non-finite gradients

    def _get_grad_norm(self, model, grad_norm=None):
        """The pre-clip gradient norm; when it is not finite the optimizer step is skipped.

        Every gradient is set to None, so ``optimizer.step()`` leaves parameters and moments
        untouched (torch optimizers skip parameters without a gradient). The skip is counted
        in the ``nonfinite/grad_step_skipped`` metric (its logged mean is the fraction of
        skipped steps). Under DeepSpeed the engine owns the step: its own overflow handling
        applies and nothing is skipped here.
        """
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        value = float(grad_norm) if grad_norm is not None else 0.0
        skipped = not math.isfinite(value)
        if skipped and not self.is_deepspeed_enabled:
            model.zero_grad(set_to_none=True)
        self._metrics["train"]["nonfinite/grad_step_skipped"].append(float(skipped))
        return grad_norm

    # ------------------------------------------------------------------ rewards

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        texts = [completion_text(c) for c in completions]
        labels = [x["segment_labels"] for x in inputs]
        refs = [x["segment_references"] for x in inputs]
        t0 = time.perf_counter()
        try:
            scores = score_segments(texts, labels, refs, self.segment_metric)
            fmt = torch.tensor(format_reward(texts, labels), dtype=torch.float32)
        except RewardError as e:
            path = self._dump_failure(inputs, texts, e)
            raise RewardError(f"{e} — failing batch written to {path}") from e
        self._pending = {"scores": scores, "format": fmt, "texts": texts, "ids": completion_ids_list,
                         "scoring_s": time.perf_counter() - t0}
        local = torch.stack([scores.mean_reward(), fmt], dim=1).to(self.accelerator.device)
        return self.accelerator.gather(local)

    def _dump_failure(self, inputs, texts, error) -> Path:
        path = Path(self.args.output_dir) / "reward_failure.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for x, t in zip(inputs, texts):
                row = {"id": x.get("id"), "completion": t, "segment_labels": x.get("segment_labels"),
                       "segment_references": x.get("segment_references"), "error": str(error)}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path

    # ------------------------------------------------------------------ advantages

    def _gather_segments(self, scores: SegmentScores) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad this process's ``(B_local, K_local)`` rewards/mask to the global K and gather ``(B, K)``."""
        device = self.accelerator.device
        k_local = torch.tensor([scores.rewards.shape[1]], device=device)
        K = int(self.accelerator.gather(k_local).max())
        pad = K - scores.rewards.shape[1]
        rewards = torch.nn.functional.pad(scores.rewards, (0, pad)).to(device)
        mask = torch.nn.functional.pad(scores.mask, (0, pad)).to(device)
        return self.accelerator.gather(rewards), self.accelerator.gather(mask)

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        pending, self._pending = self._pending, None
        if pending is None:  # pragma: no cover - TRL always scores before returning
            raise RuntimeError("segment scores were not computed for this batch")
        scores: SegmentScores = pending["scores"]
        args: SegmentGRPOConfig = self.args
        mode = "train" if self.model.training else "eval"
        G = self.num_generations if mode == "train" else self.num_generations_eval

        t0 = time.perf_counter()
        seg_rewards, seg_mask = self._gather_segments(scores)
        holistic = self._holistic_rewards(pending)

        adv = compute_advantages(
            args.estimator,
            AdvantageInputs(holistic.float(), seg_rewards.float(), seg_mask.bool(), G),
            **args.estimator_options(),
        )
        n = len(inputs)
        sl = slice(self.accelerator.process_index * n, (self.accelerator.process_index + 1) * n)
        rollout = adv.rollout[sl]
        segment = adv.segment[sl] if adv.segment is not None else None

        T = out["completion_ids"].shape[1]
        tokenizer = self._tokenizer
        assignments = []
        for ids, text, parsed in zip(pending["ids"], pending["texts"], scores.parsed):
            offsets = token_char_offsets(tokenizer, ids, text)
            assignments.append(assign_tokens_to_segments(offsets, parsed.spans))
        token_segment = segment_index_tensor(assignments, T).to(rollout.device)
        token_adv = map_advantages_to_tokens(rollout, segment, token_segment)
        out["advantages"] = token_adv.to(out["completion_ids"].device)

        self._count_nonfinite(mode, seg_rewards, seg_mask, token_adv, out["completion_mask"])
        self._log_segment_metrics(mode, seg_rewards, seg_mask, adv, G, sl, token_adv, token_segment,
                                  out["completion_mask"])
        if args.dump_advantages and mode == "train":
            self._dump_advantages(holistic, seg_rewards, seg_mask, adv, token_adv)
        if "scoring_s" in pending:  # a subclass that scores its own way may not time it
            self._metrics[mode]["timing/segment_scoring_s"].append(pending["scoring_s"])
        self._metrics[mode]["timing/segment_advantages_s"].append(time.perf_counter() - t0)
        return out

    def _holistic_rewards(self, pending: dict) -> torch.Tensor:
        """``(B,)`` holistic reward of every process's rollouts: ``R = mean_k r_k + format_weight * format``.

        ``pending`` is what :meth:`_calculate_rewards` left for this batch (this process's
        ``scores`` and ``format``). A trainer with another rollout reward overrides this hook.
        """
        local = pending["scores"].mean_reward() + self.args.format_weight * pending["format"]
        return self.accelerator.gather(local.to(self.accelerator.device))

    def _count_nonfinite(self, mode, seg_rewards, seg_mask, token_adv, completion_mask) -> None:
        """Count NaN/inf segment rewards (all ranks' ``(B, K)``) and token advantages (this rank's
        ``(B_local, T)``) into ``nonfinite/segment_rewards`` and ``nonfinite/token_advantages``, with a
        warning.

        A non-finite reward is left out of its group's statistics and its segment's tokens get
        advantage 0 (:func:`segrl.trainers.advantages.group_normalize`), like an unscorable
        segment, so the rest of the batch still trains; a non-finite advantage that still gets
        through makes the gradient non-finite, and :meth:`_get_grad_norm` skips the step."""
        bad_rewards = int((seg_mask.bool() & ~torch.isfinite(seg_rewards)).sum())
        bad_adv = int((completion_mask.bool() & ~torch.isfinite(token_adv.to(completion_mask.device))).sum())
        self._metrics[mode]["nonfinite/segment_rewards"].append(float(bad_rewards))
        self._metrics[mode]["nonfinite/token_advantages"].append(float(bad_adv))
        if bad_rewards or bad_adv:
            logger.warning(
                "step %d: %d non-finite segment rewards (left out of their group, advantage 0), %d non-finite "
                "token advantages (the optimizer step is skipped if the gradient norm is not finite)", self.state.global_step, bad_rewards, bad_adv,
            )

    def _dump_advantages(self, holistic, seg_rewards, seg_mask, adv, token_adv) -> None:
        """Save this rank's view of the step: gathered rewards/advantages (identical on every rank)
        and its own ``(B_local, T)`` token advantages."""
        folder = Path(self.args.output_dir) / "advantages"
        folder.mkdir(parents=True, exist_ok=True)
        step, rank = self.state.global_step, self.accelerator.process_index
        record = {"holistic": holistic, "segment_rewards": seg_rewards, "segment_mask": seg_mask,
                  "rollout": adv.rollout, "segment": adv.segment, "token_advantages": token_adv}
        torch.save({k: (v.detach().cpu() if v is not None else None) for k, v in record.items()},
                   folder / f"step{step}_rank{rank}.pt")

    def _log_segment_metrics(self, mode, seg_rewards, seg_mask, adv, G, sl, token_adv, token_segment,
                             completion_mask) -> None:
        """Per-segment reward means, advantage statistics and the credit diagnostics (all ranks' rollouts
        for the reward/advantage statistics, this rank's tokens for the token fraction)."""
        m = self._metrics[mode]
        K = seg_rewards.shape[1]
        for k in range(K):
            valid = seg_mask[:, k]
            if valid.any():
                m[f"segments/reward_{k + 1}/mean"].append(seg_rewards[valid, k].float().mean().item())
        m["segments/K_mean"].append(seg_mask.float().sum(1).mean().item())
        in_seg = ((token_segment >= 0) & completion_mask.bool()).float().sum()
        m["segments/token_frac_in_segment"].append((in_seg / completion_mask.float().sum().clamp(min=1)).item())
        if adv.segment is not None:
            valid = seg_mask.bool()
            a = adv.segment[valid]
            m["segments/advantage/mean"].append(a.mean().item() if a.numel() else 0.0)
            m["segments/advantage/std"].append(a.std().item() if a.numel() > 1 else 0.0)
            m["segments/advantage/abs_mean"].append(a.abs().mean().item() if a.numel() else 0.0)
        centred = centred_segment_rewards(seg_rewards, seg_mask, G)[sl]
        diagnostics = {
            "credit/misattributed_token_frac": misattributed_token_fraction(
                token_adv, token_segment, completion_mask, centred.to(token_adv.device), seg_mask[sl].to(token_adv.device)
            ),
            "credit/corr_rollout_segment_adv": rollout_segment_correlation(adv.rollout, seg_rewards, seg_mask, G),
        }
        for name, value in diagnostics.items():
            if not math.isnan(value):
                m[name].append(value)
