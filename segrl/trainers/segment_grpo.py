"""SD-GRPO on TRL: a ``GRPOTrainer`` subclass that hands TRL per-token advantages.

TRL generates, computes log-probs, the reference model's log-probs, the KL term and the
clipped loss; this subclass changes only what the algorithm changes, in two hooks joined by one
typed hand-off (:class:`ScoredBatch`):

* **Rewards** (TRL's ``_calculate_rewards`` calls :meth:`SegmentGRPOTrainer.score_batch`): one
  parse + one batched metric call scores every segment of the batch
  (:func:`segrl.rewards.scorer.score_segments`); TRL receives two reward columns, ``segments``
  (mean segment reward) and ``format``, weighted ``1`` and ``format_weight``, so TRL's own
  ``reward`` metric is the rollout reward ``R = mean_k r_k + w * format``; every segment's reward
  carries the same format term, ``r'_k = r_k + w * format``
  (:func:`segrl.trainers.advantages.compose_rewards`: one reward for every algorithm). For
  ``blend`` it also scores the whole answer against the whole reference
  (:func:`segrl.rewards.scorer.score_holistic`, ``train.holistic_metric``). Any exception while
  scoring writes the batch to ``<output_dir>/reward_failure.jsonl`` and is re-raised as a
  :class:`~segrl.rewards.scorer.RewardError` naming that file.
* **Advantages** (after TRL's ``_generate_and_score_completions``,
  :meth:`SegmentGRPOTrainer.token_advantages`, the template step an algorithm overrides): gathers
  the ``(B, K)`` segment rewards of all processes (a group's G rollouts may sit on different
  ranks), runs the algorithm's estimator (``args.estimator``), slices back this process's rows and
  maps ``(B, K)`` → ``(B, T)`` through the tokenizer's character offsets
  (:mod:`segrl.trainers.token_mapping`). TRL's loss accepts ``(B, T)`` advantages.
* Its own cost is logged every step through TRL's ``profiling_context`` (also sent to the
  trackers TRL reports to): ``timing/segment_scoring_s`` (parse + batched metric call, the
  rewards every algorithm needs) and ``timing/segment_advantages_s`` (gather, estimator, token
  mapping, diagnostics: what SD-GRPO adds), in seconds.

Departures from the paper, reconstructed here: tokens outside every segment (preamble,
separators, EOS) carry the rollout-level advantage, or the mean advantage of the segments the
rollout left out (:func:`segrl.trainers.token_mapping.map_advantages_to_tokens`); the label
tokens (``Answer 2:``) belong to their segment; the rollout reward and every segment reward add
the same format term, so SD-GRPO and GRPO optimise one reward and coincide at K = 1.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from trl import GRPOTrainer
from trl.extras.profiling import ProfilingContext

from segrl.rewards.format import format_reward
from segrl.rewards.scorer import RewardError, SegmentScores, score_holistic, score_segments
from segrl.rewards.srpo_format import (
    Structure,
    blank_blocks,
    parse_structure,
    structure_reward,
    structure_score,
)
from segrl.trainers.advantages import (
    HOLISTIC_ESTIMATORS,
    AdvantageInputs,
    compose_rewards,
    compute_advantages,
)
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.diagnostics import (
    centred_segment_rewards,
    misattributed_token_fraction,
    rollout_segment_correlation,
)
from segrl.trainers.token_mapping import (
    Span,
    assign_tokens_to_segments,
    map_advantages_to_tokens,
    segment_index_tensor,
    token_char_offsets,
)

logger = logging.getLogger(__name__)

MODEL_INPUT_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)
"""Keys of TRL's batch besides ids and masks that ``_get_per_token_logps_and_entropies`` takes
(the multimodal inputs of every VLM family TRL supports)."""


@dataclass(frozen=True)
class ScoredBatch:
    """What the reward hook hands the advantage step for one generation batch.

    ``B_local`` rollouts are this process's, ``B`` those of every process (gathered, in process
    order); ``K_local`` the most segments of a prompt on this process.

    Attributes:
        texts: ``B_local`` completion texts as generated (the token offsets are taken on them).
        completion_ids: ``B_local`` lists of generated token ids.
        scores: this process's :class:`~segrl.rewards.scorer.SegmentScores` (``rewards`` and
            ``mask`` ``(B_local, K_local)``, the parsed segments and their character spans).
        reward_columns: ``(B, F)`` the gathered reward columns TRL weighs and logs (one per
            reward function, ``F = len(reward_funcs)``).
        holistic: ``(B,)`` the gathered rollout-level reward R (what the estimator's rollout
            advantage and the tokens outside every segment use).
        rollout_terms: ``(B,)`` gathered, the part of R that is not a segment score
            (``format_weight * format``); every segment's reward carries it too
            (:func:`~segrl.trainers.advantages.compose_rewards`). None: segments get their scores only.
        holistic_scores: ``(B,)`` gathered, the whole-answer score plus ``rollout_terms`` (``blend``
            only, :func:`~segrl.rewards.scorer.score_holistic`); None when no estimator reads it.
    """

    texts: Sequence[str]
    completion_ids: Sequence[Sequence[int]]
    scores: SegmentScores
    reward_columns: torch.Tensor
    holistic: torch.Tensor
    rollout_terms: torch.Tensor | None = None
    holistic_scores: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.texts)
        if len(self.completion_ids) != n or self.scores.rewards.shape[0] != n:
            raise ValueError(f"ScoredBatch: {n} texts, {len(self.completion_ids)} id lists, "
                             f"{self.scores.rewards.shape[0]} score rows")
        if self.holistic.dim() != 1 or self.reward_columns.shape[0] != self.holistic.shape[0]:
            raise ValueError(f"ScoredBatch: holistic {tuple(self.holistic.shape)} and reward_columns "
                             f"{tuple(self.reward_columns.shape)} must be (B,) and (B, F)")
        for name in ("rollout_terms", "holistic_scores"):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != tuple(self.holistic.shape):
                raise ValueError(f"ScoredBatch: {name} {tuple(t.shape)} must be (B,) like holistic")


@dataclass(frozen=True)
class PolicyInputs:
    """The forward inputs of a generation batch, as TRL's per-token log-prob helper takes them.

    Attributes:
        input_ids: ``(B, P + T)`` prompt then completion ids.
        attention_mask: ``(B, P + T)``.
        logits_to_keep: T, the completion length.
        completion_mask: ``(B, T)`` TRL's completion mask.
        loss_mask: ``(B, T)`` the completion mask times TRL's ``tool_mask`` when present (tokens the
            loss sees).
        model_kwargs: the :data:`MODEL_INPUT_KEYS` the batch holds (not None).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    logits_to_keep: int
    completion_mask: torch.Tensor
    loss_mask: torch.Tensor
    model_kwargs: dict


def policy_inputs(batch: dict) -> PolicyInputs:
    """:class:`PolicyInputs` of a TRL generation batch (``prompt_ids``, ``prompt_mask``, ``completion_ids``,
    ``completion_mask``, optional ``tool_mask`` and multimodal keys)."""
    completion_mask = batch["completion_mask"]
    loss_mask = completion_mask if "tool_mask" not in batch else completion_mask * batch["tool_mask"]
    return PolicyInputs(
        input_ids=torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
        attention_mask=torch.cat([batch["prompt_mask"], completion_mask], dim=1),
        logits_to_keep=batch["completion_ids"].shape[1],
        completion_mask=completion_mask,
        loss_mask=loss_mask,
        model_kwargs={k: batch[k] for k in MODEL_INPUT_KEYS if batch.get(k) is not None},
    )


class _MetricProfilingContext(ProfilingContext):
    """TRL's ``ProfilingContext`` that also appends the duration (seconds) to a trainer metric."""

    def __init__(self, trainer, mode: str, metric: str) -> None:
        super().__init__(name=f"{type(trainer).__name__}.{metric}", report_to=trainer.args.report_to,
                         is_main_process=trainer.accelerator.is_main_process, step=trainer.state.global_step)
        self._sink = trainer._metrics[mode][metric]

    def _log_metrics(self, duration: float) -> None:
        self._sink.append(duration)
        super()._log_metrics(duration)


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


def make_reward_funcs(metric, *, with_structure: bool = False):
    """TRL-signature reward functions ``(completions, segment_labels, segment_references, **kw) -> list[float]``.

    Returns ``[segments, format]``: the mean per-segment reward and the format reward, and with
    ``with_structure`` a third, ``structure``: SRPO's structure score (:func:`segrl.rewards.srpo_format.structure_reward`).
    They are what TRL logs as ``rewards/segments``, ``rewards/format`` (``rewards/structure``); the
    trainer computes the same values in one pass (they also work standalone, e.g. in a plain
    ``GRPOTrainer``; with ``with_structure`` the standalone ``segments`` and ``format`` score the text as
    written, the trainer scores it with the blocks blanked).
    """

    def segments(completions, segment_labels, segment_references, **_):
        texts = [completion_text(c) for c in completions]
        return score_segments(texts, segment_labels, segment_references, metric).mean_reward().tolist()

    def format(completions, segment_labels, **_):  # noqa: A001 - the reward's logged name
        return format_reward([completion_text(c) for c in completions], segment_labels)

    def structure(completions, segment_labels, **_):
        return structure_reward([completion_text(c) for c in completions], segment_labels)

    return [segments, format, structure] if with_structure else [segments, format]


class SegmentGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with segment-level advantages (SD-GRPO, Dr. variants, blend, ...).

    A trainer for another algorithm overrides hooks, never TRL's pass itself:
    :meth:`edit_prompt` (a prompt change at generation time), :meth:`score_batch` (the rewards,
    returning a :class:`ScoredBatch`), :meth:`token_advantages` (the ``(B_local, T)`` advantages
    from it) and :meth:`_reward_funcs` (the reward columns TRL logs).

    Args:
        model: a model id, local path or ``PreTrainedModel`` (as ``GRPOTrainer``).
        segment_metric: ``metric(predictions, references) -> list[float | None]`` scoring one
            segment against its references (see :mod:`segrl.rewards`).
        args: a :class:`SegmentGRPOConfig`.
        holistic_metric: the same signature, scoring the whole answer against the whole reference
            for the estimators that read a holistic reward (``blend``); None: ``segment_metric``
            (on the joined text). Ignored by the other estimators.
        train_dataset: rows in segrl's schema (``prompt``, ``images``, ``segment_labels``,
            ``segment_references`` ...).
        **kwargs: passed to ``GRPOTrainer`` (``processing_class``, ``callbacks`` ...).

    Raises:
        RewardError: when scoring fails inside training (a metric, the parser or the format
            reward raising anything); the failing batch is written to
            ``<output_dir>/reward_failure.jsonl`` first and the path is in the message.
    """

    def __init__(self, model, segment_metric, args: SegmentGRPOConfig, train_dataset=None, *, holistic_metric=None,
                 **kwargs):
        if not isinstance(args, SegmentGRPOConfig):
            raise TypeError(f"args must be a SegmentGRPOConfig, got {type(args).__name__}")
        self.segment_metric = segment_metric
        uses_holistic = args.estimator in HOLISTIC_ESTIMATORS
        self.holistic_metric = (holistic_metric or segment_metric) if uses_holistic else None
        reward_funcs, args.reward_weights = self._reward_funcs(segment_metric, args)
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset, **kwargs)
        self._scored: ScoredBatch | None = None

    def _reward_funcs(self, segment_metric, args: SegmentGRPOConfig) -> tuple[list, list[float]]:
        """The reward columns TRL logs and their weights: ``segments`` (1), ``format`` (``format_weight``)
        and, when ``structure_weight > 0``, ``structure`` (``structure_weight``).

        A trainer with another rollout reward overrides this together with :meth:`score_batch`.
        """
        weights = [1.0, float(args.format_weight)]
        if args.structure_weight > 0:
            weights.append(float(args.structure_weight))
        return make_reward_funcs(segment_metric, with_structure=args.structure_weight > 0), weights

    # ------------------------------------------------------------------ shared helpers

    def _mode(self) -> str:
        return "train" if self.model.training else "eval"

    def profile(self, mode: str, metric: str) -> ProfilingContext:
        """TRL's profiling context for a block that also logs its seconds as ``metric`` (e.g. ``timing/x_s``)."""
        return _MetricProfilingContext(self, mode, metric)

    def local_rows(self, n: int) -> slice:
        """This process's ``n`` rows in a gathered ``(B, ...)`` tensor (TRL gathers in process order)."""
        i = self.accelerator.process_index
        return slice(i * n, (i + 1) * n)

    def token_offsets(self, scored: ScoredBatch) -> list[list[Span]]:
        """Character span of every generated token of every local completion (``B_local`` lists of ``T_i``)."""
        return [token_char_offsets(self._tokenizer, ids, text) for ids, text in zip(scored.completion_ids, scored.texts)]

    def token_segments(self, scored: ScoredBatch, T: int) -> torch.Tensor:
        """``(B_local, T)`` long: the segment index of every completion token, -1 outside every segment."""
        offsets = self.token_offsets(scored)
        return segment_index_tensor(
            [assign_tokens_to_segments(row, parsed.spans) for row, parsed in zip(offsets, scored.scores.parsed)], T
        )

    def log_segment_rewards(self, mode: str, seg_rewards: torch.Tensor, seg_mask: torch.Tensor) -> None:
        """``segments/reward_{k}/mean`` over the rollouts where segment k is scorable (``(B, K)`` inputs)."""
        m = self._metrics[mode]
        for k in range(seg_rewards.shape[1]):
            valid = seg_mask[:, k]
            if valid.any():
                m[f"segments/reward_{k + 1}/mean"].append(seg_rewards[valid, k].float().mean().item())

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
        """TRL's reward hook: :meth:`score_batch`, kept for the advantage step; returns its ``(B, F)`` columns."""
        texts = [completion_text(c) for c in completions]
        self._scored = self.score_batch(inputs, texts, completion_ids_list)
        return self._scored.reward_columns

    @contextmanager
    def reward_failure_dump(self, inputs, texts) -> Iterator[None]:
        """Any exception inside: the batch goes to ``<output_dir>/reward_failure.jsonl`` and a
        :class:`RewardError` naming the file (and the original error) is raised from it."""
        try:
            yield
        except Exception as e:  # re-raised with the batch on disk, never swallowed
            path = self._dump_failure(inputs, texts, e)
            raise RewardError(f"{type(e).__name__}: {e} — failing batch written to {path}") from e

    def score_texts(self, inputs, texts: Sequence[str]) -> tuple[SegmentScores, torch.Tensor]:
        """This process's segment scores and ``(B_local,)`` format reward of ``texts``."""
        labels = [x["segment_labels"] for x in inputs]
        refs = [x["segment_references"] for x in inputs]
        scores = score_segments(texts, labels, refs, self.segment_metric)
        return scores, torch.tensor(format_reward(texts, labels), dtype=torch.float32)

    def score_structured(self, inputs, texts: Sequence[str]
                         ) -> tuple[list[Structure], SegmentScores, torch.Tensor, torch.Tensor]:
        """Score completions written in SRPO's layout (``<perception>``, ``<reasoning>``, answer lines).

        The answer lines are parsed and scored on the text with both blocks blanked
        (:func:`segrl.rewards.srpo_format.blank_blocks`: same length, so character spans still hold).

        Returns:
            ``(structures, scores, fmt, structure)``: the ``B_local`` parsed structures, the segment
            scores and ``(B_local,)`` label-format reward of the blanked texts, and the ``(B_local,)``
            structure score in [0, 1] (:func:`segrl.rewards.srpo_format.structure_score`).
        """
        structures = [parse_structure(t) for t in texts]
        scores, fmt = self.score_texts(inputs, [blank_blocks(t, st) for t, st in zip(texts, structures)])
        structure = torch.tensor([structure_score(st, [s.start for s in p.segments if s.present])
                                  for st, p in zip(structures, scores.parsed)], dtype=torch.float32)
        return structures, scores, fmt, structure

    def score_batch(self, inputs, texts: Sequence[str], completion_ids) -> ScoredBatch:
        """Score this process's completions and gather the reward columns and the holistic reward.

        ``R = mean_k r_k + format_weight * format (+ structure_weight * structure)``; columns
        ``[mean_k r_k, format(, structure)]``. With ``structure_weight > 0`` the answer lines are
        scored with SRPO's blocks blanked (:meth:`score_structured`).

        Raises:
            RewardError: anything raised while scoring (:meth:`reward_failure_dump`).
        """
        refs = [x["segment_references"] for x in inputs]
        with self.profile(self._mode(), "timing/segment_scoring_s"), self.reward_failure_dump(inputs, texts):
            if self.args.structure_weight > 0:
                _, scores, fmt, structure = self.score_structured(inputs, texts)
                return self.gathered(texts, completion_ids, scores, fmt, refs, structure=structure)
            scores, fmt = self.score_texts(inputs, texts)
            return self.gathered(texts, completion_ids, scores, fmt, refs)

    def gathered(self, texts, completion_ids, scores: SegmentScores, fmt: torch.Tensor,
                 segment_references=None, *, structure: torch.Tensor | None = None) -> ScoredBatch:
        """The :class:`ScoredBatch` of local ``scores`` and ``(B_local,)`` format rewards, columns and R gathered.

        ``R = mean_k r_k + c`` with ``c = format_weight * format`` (``rollout_terms``), plus
        ``structure_weight * structure`` when ``structure_weight > 0`` (then ``structure``, ``(B_local,)``,
        is required and becomes a third column). With a ``holistic_metric`` (``blend``) and the rows'
        ``segment_references``, also ``H + c`` (``holistic_scores``; ``R`` where the whole reference
        cannot be scored).

        Raises:
            ValueError: ``structure_weight > 0`` without ``structure``.
        """
        device = self.accelerator.device
        terms = self.args.format_weight * fmt
        cols = [scores.mean_reward(), fmt]
        if self.args.structure_weight > 0:
            if structure is None:
                raise ValueError("structure_weight > 0 needs the structure scores (score_structured)")
            terms = terms + self.args.structure_weight * structure
            cols.append(structure)
        local_R = scores.mean_reward() + terms
        columns = self.accelerator.gather(torch.stack(cols, dim=1).to(device))
        holistic = self.accelerator.gather(local_R.to(device))
        holistic_scores = None
        if self.holistic_metric is not None and segment_references is not None:
            H = score_holistic(scores.parsed, segment_references, self.holistic_metric)
            local_H = torch.where(torch.isnan(H), local_R, H + terms)
            holistic_scores = self.accelerator.gather(local_H.to(device))
        return ScoredBatch(texts=list(texts), completion_ids=completion_ids, scores=scores, reward_columns=columns,
                           holistic=holistic, rollout_terms=self.accelerator.gather(terms.to(device)),
                           holistic_scores=holistic_scores)

    def _dump_failure(self, inputs, texts, error) -> Path:
        path = Path(self.args.output_dir) / "reward_failure.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for x, t in zip(inputs, texts):
                row = {"id": x.get("id"), "completion": t, "segment_labels": x.get("segment_labels"),
                       "segment_references": x.get("segment_references"), "error": f"{type(error).__name__}: {error}"}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path

    # ------------------------------------------------------------------ advantages

    def edit_prompt(self, prompt):
        """The prompt the policy sees for one row at generation time (unchanged here; SRPO and Dr. Seg
        append an instruction). The dataset on disk is never changed."""
        return prompt

    def _generate_and_score_completions(self, inputs):
        inputs = [{**x, "prompt": self.edit_prompt(x["prompt"])} for x in inputs]
        out = super()._generate_and_score_completions(inputs)
        scored, self._scored = self._scored, None
        if scored is None:  # pragma: no cover - TRL always scores before returning
            raise RuntimeError("segment scores were not computed for this batch")
        out["advantages"] = self.token_advantages(scored, out)
        return out

    def _gather_segments(self, scores: SegmentScores) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad this process's ``(B_local, K_local)`` rewards/mask to the global K and gather ``(B, K)``."""
        device = self.accelerator.device
        k_local = torch.tensor([scores.rewards.shape[1]], device=device)
        K = int(self.accelerator.gather(k_local).max())
        pad = K - scores.rewards.shape[1]
        rewards = torch.nn.functional.pad(scores.rewards, (0, pad)).to(device)
        mask = torch.nn.functional.pad(scores.mask, (0, pad)).to(device)
        return self.accelerator.gather(rewards), self.accelerator.gather(mask)

    def token_advantages(self, scored: ScoredBatch, out: dict) -> torch.Tensor:
        """``(B_local, T)`` advantages of this process's completion tokens (the template step).

        Here: the estimator ``args.estimator`` on all processes' ``(B, K)`` segment rewards and
        ``(B,)`` rollout rewards (every segment reward carrying ``scored.rollout_terms``,
        :func:`~segrl.trainers.advantages.compose_rewards`), this process's rows mapped to tokens by
        :func:`~segrl.trainers.token_mapping.map_advantages_to_tokens` (segment k's tokens get
        ``A[i, k]``; the rest the rollout advantage or, when the rollout left segments out, their
        mean advantage). An algorithm with another advantage
        overrides this (SAPO: segment GAE; SRPO: these times its token weights) and may add the
        extra tensors its loss needs to ``out``.

        Args:
            scored: what :meth:`score_batch` returned for this batch.
            out: TRL's generation batch (``completion_ids`` ``(B_local, T)``, ``completion_mask`` ...).
        """
        args: SegmentGRPOConfig = self.args
        mode = self._mode()
        G = self.num_generations if mode == "train" else self.num_generations_eval
        with self.profile(mode, "timing/segment_advantages_s"):
            seg_rewards, seg_mask = self._gather_segments(scored.scores)
            composed = seg_rewards.float()
            if scored.rollout_terms is not None:
                composed = compose_rewards(seg_rewards, seg_mask.bool(), scored.rollout_terms)[1]
            holistic_scores = scored.holistic_scores.float() if scored.holistic_scores is not None else None
            adv = compute_advantages(
                args.estimator,
                AdvantageInputs(scored.holistic.float(), composed, seg_mask.bool(), G, holistic_scores),
                **args.estimator_options(),
            )
            sl = self.local_rows(len(scored.texts))
            rollout = adv.rollout[sl]
            segment = adv.segment[sl] if adv.segment is not None else None
            token_segment = self.token_segments(scored, out["completion_ids"].shape[1]).to(rollout.device)
            K = seg_mask.shape[1]
            present = torch.nn.functional.pad(scored.scores.present, (0, K - scored.scores.present.shape[1]))
            token_adv = map_advantages_to_tokens(
                rollout, segment, token_segment, segment_mask=seg_mask[sl].bool().to(rollout.device),
                present=present.to(rollout.device), completion_mask=out["completion_mask"].to(rollout.device))
            self._count_nonfinite(mode, seg_rewards, seg_mask, token_adv, out["completion_mask"])
            self._log_segment_metrics(mode, seg_rewards, seg_mask, adv, G, sl, token_adv, token_segment,
                                      out["completion_mask"], composed)
            if args.dump_advantages and mode == "train":
                self._dump_advantages(scored.holistic, composed, seg_mask, adv, token_adv)
        return token_adv.to(out["completion_ids"].device)

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
                             completion_mask, credit_rewards=None) -> None:
        """Per-segment reward means, advantage statistics and the credit diagnostics (all ranks' rollouts
        for the reward/advantage statistics, this rank's tokens for the token fraction).

        ``seg_rewards`` ``(B, K)`` are the segment scores (logged as ``segments/reward_k/mean``);
        ``credit_rewards`` ``(B, K)`` the rewards the segments are credited with (the composed
        ``r'``), against which the credit diagnostics are taken (default: ``seg_rewards``)."""
        m = self._metrics[mode]
        self.log_segment_rewards(mode, seg_rewards, seg_mask)
        m["segments/K_mean"].append(seg_mask.float().sum(1).mean().item())
        in_seg = ((token_segment >= 0) & completion_mask.bool()).float().sum()
        m["segments/token_frac_in_segment"].append((in_seg / completion_mask.float().sum().clamp(min=1)).item())
        if adv.segment is not None:
            valid = seg_mask.bool()
            a = adv.segment[valid]
            m["segments/advantage/mean"].append(a.mean().item() if a.numel() else 0.0)
            m["segments/advantage/std"].append(a.std().item() if a.numel() > 1 else 0.0)
            m["segments/advantage/abs_mean"].append(a.abs().mean().item() if a.numel() else 0.0)
        credit = seg_rewards if credit_rewards is None else credit_rewards
        centred = centred_segment_rewards(credit, seg_mask, G)[sl]
        diagnostics = {
            "credit/misattributed_token_frac": misattributed_token_fraction(
                token_adv, token_segment, completion_mask, centred.to(token_adv.device), seg_mask[sl].to(token_adv.device)
            ),
            "credit/corr_rollout_segment_adv": rollout_segment_correlation(
                adv.rollout, credit, seg_mask, G, eps=self.args.advantage_eps),
        }
        for name, value in diagnostics.items():
            if not math.isnan(value):
                m[name].append(value)
