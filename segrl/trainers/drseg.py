"""Dr. Seg on TRL: Look-to-Confirm prompting and the Distribution-Ranked Reward (and VisionReasoner's reward).

Dr. Seg ("Dr. Seg: Revisiting GRPO Training for Visual Large Language Models through
Perception-Oriented Design", arXiv 2603.00152; code GitHub xVI-group-SCU/Dr-Seg) trains a grounding
policy with GRPO on the rollout reward

    R = format (+1 Look-to-Confirm bonus) + accuracy + non_repeat

(:mod:`segrl.rewards.grounding`), where ``accuracy`` is the Distribution-Ranked Reward: the raw
metrics ``x = (matched IoU, count fit, point score)`` of each rollout, each scored by its
empirical-CDF rank against a FIFO history of earlier rollouts (2,048 rows, starting as 128 zero
rows), rounded to one decimal, and summed. With ``accuracy_reward="vision_reasoner"`` (the
``vision_reasoner`` algorithm) the accuracy is VisionReasoner's ``(3 * matches - sum of matched
costs) / max(M, N)`` and there is no Look-to-Confirm: the baseline Dr. Seg builds on.

What the trainer adds to :class:`~segrl.trainers.segment_grpo.SegmentGRPOTrainer`:

* **Rewards.** TRL's reward columns are ``format``, ``accuracy`` and ``non_repeat`` (weights 1),
  so TRL's logged ``reward`` is R. The per-object IoU segment rewards
  (``segment_metric``, ``iou`` for the grounding task) are still computed for the segment
  logging and for ``estimator="sd_grpo"``.
* **DRR history, gathered.** Each process computes the raw metrics of its rollouts; they are
  gathered, so every process ranks the whole batch against the same history and appends the same
  rows: the history is identical on every rank (the reference runs it as a TCP service).
* **Updated after each policy update.** New rows wait in the DRR's pending buffer and enter the
  history at ``on_step_end`` (after the optimizer step), as the reference flushes after
  ``update_actor``: every rollout of a generation batch is ranked against the same history.
  Evaluation rollouts are ranked but never added.
* **Checkpoints.** ``checkpoint-N/drr_state.pt`` holds the history and pending rows (written
  before the ``latest`` marker); resuming loads it, and a checkpoint without it is a
  :class:`~segrl.trainers.checkpoint.ResumeError`.
* **Look-to-Confirm prompt.** With ``look_to_confirm`` (``drseg``'s default) every prompt of a
  generation batch ends with :data:`segrl.prompts.LOOK_INSTRUCTION`
  (:func:`~segrl.prompts.add_look_to_confirm`, a no-op on data built with
  ``--look-to-confirm``, the grounding task's default), and the format reward pays the +1 look bonus.

Departures from the reference: the advantage estimator is selectable (``estimator``, Dr. Seg
uses ``grpo``); the answer lists objects on labelled lines (the rewards read the reference's
JSON list too); the history lives in-process (module docstring of
:mod:`segrl.rewards.grounding`). ``format_weight`` is not used: R is the reference's unweighted sum.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback

from segrl.prompts import add_look_to_confirm
from segrl.rewards.grounding import (
    DistributionRankedReward,
    drr_raw_metrics,
    format_reward,
    has_look,
    non_repeat_reward,
    parse_answer,
    targets_from_references,
    vision_reasoner_accuracy,
)
from segrl.rewards.scorer import score_segments
from segrl.trainers.advantages import ESTIMATORS
from segrl.trainers.checkpoint import ResumeError
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.registry import ALGORITHMS, AlgorithmSpec
from segrl.trainers.segment_grpo import ScoredBatch, SegmentGRPOTrainer, completion_text

logger = logging.getLogger(__name__)

DRR_STATE = "drr_state.pt"
"""File of the DRR history in a checkpoint directory."""
ACCURACY_REWARDS = ("drr", "vision_reasoner")
ALGOS = ("drseg", "vision_reasoner")
REWARD_NAMES = ("format", "accuracy", "non_repeat")


# --------------------------------------------------------------------------- config


TOKEN_MEAN_LOSS = "bnpo"
"""TRL ``loss_type`` of Dr. Seg's loss aggregation: ``sum(per-token loss * mask) / sum(mask)`` over the
(micro-)batch, divided by the gradient-accumulation steps (verl ``masked_mean``, the authors' ``dp_actor``)."""


@dataclass
class DrSegConfig(SegmentGRPOConfig):
    """Configuration of :class:`DrSegTrainer`: ``SegmentGRPOConfig`` plus Dr. Seg's knobs.

    ``algo`` is ``drseg`` or ``vision_reasoner`` (a name for the run; the reward follows
    ``accuracy_reward`` and ``look_to_confirm``). ``estimator`` (default ``grpo``, Dr. Seg's) may be
    any registered estimator (``sd_grpo`` gives segment tokens the per-object IoU advantages);
    reward scaling is that estimator's. ``format_weight`` is not used (R is the reference's
    unweighted sum) and is refused at a non-default value.

    loss_type (`str` or `None`, *optional*, defaults to `None`):
        None: :data:`TOKEN_MEAN_LOSS` (``"bnpo"``), the authors' aggregation, unless the estimator
        fixes its own (``dr_grpo``). The Dr. Seg code (verl/EasyR1 ``dp_actor``) averages the
        per-token loss over every response token of the micro-batch (``masked_mean``) and divides by
        the accumulation steps: TRL's ``bnpo`` exactly, not its ``grpo`` (a mean of per-sequence means).

    Raises:
        ValueError: an ``algo`` other than drseg / vision_reasoner; an unknown ``estimator`` or
            ``accuracy_reward``; DRR sizes out of range (``drr_capacity`` >= 1, 0 <=
            ``drr_initial_zeros`` <= ``drr_capacity``, ``drr_decimals`` >= 0); and everything
            ``SegmentGRPOConfig`` refuses.
    """

    algo: str = field(default="drseg", metadata={"help": "drseg or vision_reasoner."})
    accuracy_reward: str = field(
        default="drr", metadata={"help": "drr (Distribution-Ranked Reward) or vision_reasoner (matched-cost accuracy)."})
    look_to_confirm: bool = field(
        default=True, metadata={"help": "Append the Look-to-Confirm instruction to prompts and pay the +1 look bonus."})
    drr_capacity: int = field(default=2048, metadata={"help": "DRR history rows kept, FIFO (Dr. Seg: 2048)."})
    drr_initial_zeros: int = field(default=128, metadata={"help": "Zero rows the history starts with (Dr. Seg: 128)."})
    drr_decimals: int = field(default=1, metadata={"help": "Decimals a DRR rank is rounded to (Dr. Seg: 1)."})

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"DrSegConfig: algo must be one of {ALGOS}, got {self.algo!r}")
        if self.loss_type is None and self.estimator in (None, *ESTIMATORS.names()):
            fixed = ALGORITHMS.get(self.estimator or "grpo").trl_options or {}
            if "loss_type" not in fixed:
                self.loss_type = TOKEN_MEAN_LOSS
        if self.accuracy_reward not in ACCURACY_REWARDS:
            raise ValueError(f"accuracy_reward must be one of {ACCURACY_REWARDS}, got {self.accuracy_reward!r}")
        if self.drr_capacity < 1 or not 0 <= self.drr_initial_zeros <= self.drr_capacity or self.drr_decimals < 0:
            raise ValueError(
                f"need drr_capacity >= 1, 0 <= drr_initial_zeros <= drr_capacity, drr_decimals >= 0; got "
                f"{self.drr_capacity}, {self.drr_initial_zeros}, {self.drr_decimals}")
        super().__post_init__()  # the spec (below): estimator any of ESTIMATORS, its TRL options


@dataclass
class VisionReasonerConfig(DrSegConfig):
    """The VisionReasoner baseline: :class:`DrSegConfig` with VisionReasoner's accuracy and no Look-to-Confirm."""

    algo: str = field(default="vision_reasoner", metadata={"help": "drseg or vision_reasoner."})
    accuracy_reward: str = field(
        default="vision_reasoner",
        metadata={"help": "drr (Distribution-Ranked Reward) or vision_reasoner (matched-cost accuracy)."})
    look_to_confirm: bool = field(
        default=False, metadata={"help": "Append the Look-to-Confirm instruction to prompts and pay the +1 look bonus."})


# --------------------------------------------------------------------------- rewards


def reward_parts(completions: list[str], segment_references: list, *, look_bonus: bool) -> dict[str, torch.Tensor]:
    """Everything Dr. Seg's reward needs from B completions, except the DRR ranks.

    Args:
        completions: B completion texts.
        segment_references: B rows' segment references (each segment's first reference is its
            target's JSON, see :mod:`segrl.tasks.grounding`).
        look_bonus: add the Look-to-Confirm +1 to the format reward.

    Returns:
        ``format`` (B,), ``non_repeat`` (B,), ``raw`` (B, 3) the DRR raw metrics x1, x2, x3,
        ``vision_reasoner`` (B,) VisionReasoner's accuracy, ``look`` (B,) 1.0 where a ``<look>``
        block appears, ``count_correct`` (B,) 1.0 where the answer lists as many valid objects as
        there are targets.

    Raises:
        ValueError: a row's references are not grounding objects, or the lists differ in length.
    """
    if len(completions) != len(segment_references):
        raise ValueError(f"{len(completions)} completions but {len(segment_references)} reference rows")
    fmt, nonrep, raw, vr, look, count = [], [], [], [], [], []
    for text, refs in zip(completions, segment_references):
        targets = targets_from_references(refs)
        preds = parse_answer(text).objects
        fmt.append(format_reward(text, look_bonus=look_bonus))
        nonrep.append(non_repeat_reward(text))
        raw.append(drr_raw_metrics(preds, targets))
        vr.append(vision_reasoner_accuracy(preds, targets))
        look.append(float(has_look(text)))
        count.append(float(len(preds) == len(targets)))
    as_t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    return {"format": as_t(fmt), "non_repeat": as_t(nonrep), "raw": as_t(raw).reshape(-1, 3),
            "vision_reasoner": as_t(vr), "look": as_t(look), "count_correct": as_t(count)}


def make_reward_funcs(*, look_bonus: bool = True, drr: DistributionRankedReward | None = None):
    """TRL-signature reward functions ``[format, accuracy, non_repeat]`` (``(completions,
    segment_references, **kw) -> list[float]``).

    ``accuracy`` is the DRR (each call ranks its batch, then holds it for ``drr.update()``, the
    reference's query + enqueue) when ``drr`` is given, else VisionReasoner's accuracy. They are
    the names TRL logs (``rewards/format`` ...); :class:`DrSegTrainer` computes the same values in one
    pass with the raw metrics gathered across processes. Standalone (a plain ``GRPOTrainer``) they
    are correct in a single process only.
    """

    def format(completions, segment_references, **_):  # noqa: A001 - the reward's logged name
        return [format_reward(completion_text(c), look_bonus=look_bonus) for c in completions]

    def accuracy(completions, segment_references, **_):
        parts = reward_parts([completion_text(c) for c in completions], segment_references, look_bonus=look_bonus)
        if drr is None:
            return parts["vision_reasoner"].tolist()
        return drr(parts["raw"]).sum(1).tolist()

    def non_repeat(completions, segment_references, **_):
        return [non_repeat_reward(completion_text(c)) for c in completions]

    return [format, accuracy, non_repeat]


class _UpdateHistory(TrainerCallback):
    """Moves the DRR's pending rows into its history after every optimizer step."""

    def __init__(self, drr: DistributionRankedReward) -> None:
        self.drr = drr

    def on_step_end(self, args, state, control, **kwargs):
        self.drr.update()
        return control


# --------------------------------------------------------------------------- trainer


class DrSegTrainer(SegmentGRPOTrainer):
    """``SegmentGRPOTrainer`` with Dr. Seg's (or VisionReasoner's) rollout reward (module docstring).

    Args:
        model, segment_metric, train_dataset, **kwargs: as :class:`SegmentGRPOTrainer`
            (``segment_metric`` scores each ``Object k`` segment: ``iou`` for the grounding task).
        args: a :class:`DrSegConfig` (or :class:`VisionReasonerConfig`).

    Attributes:
        drr: the :class:`~segrl.rewards.grounding.DistributionRankedReward` (None for the
            VisionReasoner accuracy).

    Logged per step besides TRL's and the segment metrics: ``drseg/x{1,2,3}/mean`` (raw metrics),
    ``drseg/r{1,2,3}/mean`` (their DRR ranks), ``drseg/look_frac``, ``drseg/count_correct``,
    ``drseg/vision_reasoner/mean`` and ``drseg/history_size``.

    Raises:
        TypeError: ``args`` is not a :class:`DrSegConfig`.
        RewardError: a reward failed inside training (the batch is written to
            ``<output_dir>/reward_failure.jsonl`` first).
        ResumeError: resuming from a checkpoint without ``drr_state.pt``.
    """

    def __init__(self, model, segment_metric, args: DrSegConfig, train_dataset=None, **kwargs):
        if not isinstance(args, DrSegConfig):
            raise TypeError(f"args must be a DrSegConfig, got {type(args).__name__}")
        self.drr = (DistributionRankedReward(args.drr_capacity, args.drr_initial_zeros, args.drr_decimals)
                    if args.accuracy_reward == "drr" else None)
        super().__init__(model=model, segment_metric=segment_metric, args=args, train_dataset=train_dataset, **kwargs)
        self._warned_prompt = False
        if self.drr is not None:
            self.add_callback(_UpdateHistory(self.drr))

    def _reward_funcs(self, segment_metric, args: DrSegConfig) -> tuple[list, list[float]]:
        """Dr. Seg's three reward columns (format, accuracy, non-repeat), each weighted 1."""
        return make_reward_funcs(look_bonus=args.look_to_confirm, drr=self.drr), [1.0] * len(REWARD_NAMES)

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.drr is not None and self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            torch.save(self.drr.state_dict(), folder / DRR_STATE)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.drr is None:
            return
        path = Path(checkpoint) / DRR_STATE
        if not path.is_file():
            raise ResumeError(f"checkpoint {checkpoint} is incomplete, missing: {DRR_STATE} (the Dr. Seg reward history)")
        try:
            self.drr.load_state_dict(torch.load(path, weights_only=True))
        except ValueError as e:
            raise ResumeError(f"checkpoint {checkpoint}: {DRR_STATE} does not fit this run ({e})") from e

    # ------------------------------------------------------------------ rewards

    def score_batch(self, inputs, texts, completion_ids) -> ScoredBatch:
        """Dr. Seg's rollout reward R = format + accuracy + non-repeat (the raw DRR metrics gathered, so
        every process ranks the whole batch against the same history) and the per-object segment scores."""
        args: DrSegConfig = self.args
        refs = [x["segment_references"] for x in inputs]
        with self.profile(self._mode(), "timing/segment_scoring_s"), self.reward_failure_dump(inputs, texts):
            scores = score_segments(texts, [x["segment_labels"] for x in inputs], refs, self.segment_metric)
            parts = reward_parts(texts, refs, look_bonus=args.look_to_confirm)
        device = self.accelerator.device
        gathered = {k: self.accelerator.gather(v.to(device)) for k, v in parts.items()}
        ranks = None
        if self.drr is not None:
            raw = gathered["raw"].float().cpu()
            ranks = self.drr.rank(raw)
            if self.model.training:
                self.drr.add(raw)
            accuracy = ranks.sum(1).to(device)
        else:
            accuracy = gathered["vision_reasoner"]
        rewards = torch.stack([gathered["format"], accuracy, gathered["non_repeat"]], dim=1)
        self._log_drseg_metrics(self._mode(), gathered, ranks)
        return ScoredBatch(texts=list(texts), completion_ids=completion_ids, scores=scores, reward_columns=rewards,
                           holistic=rewards.sum(1))

    # ------------------------------------------------------------------ advantages

    def edit_prompt(self, prompt):
        """With ``look_to_confirm``, the prompt ending with the Look-to-Confirm instruction (warned once
        when the data lacked it: ``segrl eval`` reads prompts from the dataset)."""
        if not self.args.look_to_confirm:
            return prompt
        looked = add_look_to_confirm(prompt)
        if not self._warned_prompt and looked != prompt:
            logger.warning("look_to_confirm: the Look-to-Confirm instruction was added to prompts that lacked it; "
                           "`segrl eval` reads prompts from the dataset, so evaluate on data built with "
                           "--look-to-confirm to match training.")
            self._warned_prompt = True
        return looked

    def _log_drseg_metrics(self, mode: str, parts: dict, ranks: torch.Tensor | None) -> None:
        """Means over all processes' rollouts of the raw metrics, their ranks and the diagnostics."""
        m = self._metrics[mode]
        raw = parts["raw"].float()
        for j in range(3):
            m[f"drseg/x{j + 1}/mean"].append(raw[:, j].mean().item())
            if ranks is not None:
                m[f"drseg/r{j + 1}/mean"].append(ranks[:, j].mean().item())
        m["drseg/look_frac"].append(parts["look"].float().mean().item())
        m["drseg/count_correct"].append(parts["count_correct"].float().mean().item())
        m["drseg/vision_reasoner/mean"].append(parts["vision_reasoner"].float().mean().item())
        if self.drr is not None:
            m["drseg/history_size"].append(float(self.drr.history.shape[0]))


for _name, _config in (("drseg", DrSegConfig), ("vision_reasoner", VisionReasonerConfig)):
    ALGORITHMS.register_spec(AlgorithmSpec(
        _name, estimator="grpo", estimators=tuple(ESTIMATORS.names()), trl_options=None, estimator_options=None,
        ignored=("format_weight", "structure_weight"), trainer=DrSegTrainer, config=_config,
        summary="Dr. Seg: Look-to-Confirm and the Distribution-Ranked Reward" if _name == "drseg"
        else "VisionReasoner's grounding reward (Dr. Seg's baseline)"))
