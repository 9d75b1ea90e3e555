"""Score every segment of a batch of completions with one metric call.

The trainer, ``segrl eval`` and the benchmarks all go through :func:`score_segments`: it
parses each completion (:func:`segrl.segments.parse_segments`), flattens the present
segments of the whole batch into one ``metric(predictions, references)`` call (so batched
metrics such as CIDEr-D or METEOR see the batch at once), and puts the scores back in a
``(B, K)`` tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from segrl.segments import ParsedCompletion, parse_segments

Metric = Callable[..., list]


class RewardError(RuntimeError):
    """A reward function failed or returned a malformed result (a bug, never a model-output problem)."""


@dataclass(frozen=True)
class SegmentScores:
    """Per-segment scores of a batch.

    Attributes:
        rewards: ``(B, K)`` float. r[i, k] = the metric's score of segment k; 0.0 for a
            missing segment (it still counts in its group's statistics) and for padding. A
            non-finite score (NaN, ±inf) is kept as it is, never replaced by a default: see
            :attr:`nonfinite`.
        mask: ``(B, K)`` bool, True where segment k exists for the prompt (k < K_i) and its
            reference could be scored (the metric did not return None).
        present: ``(B, K)`` bool, True where the completion wrote segment k.
        parsed: the B parse results (texts and character spans).
    """

    rewards: torch.Tensor
    mask: torch.Tensor
    present: torch.Tensor
    parsed: list[ParsedCompletion]

    @property
    def nonfinite(self) -> torch.Tensor:
        """``(B, K)`` bool, True where a masked-in segment's score is NaN or ±inf."""
        return self.mask & ~torch.isfinite(self.rewards)

    def mean_reward(self) -> torch.Tensor:
        """``(B,)`` mean of r[i, k] over the masked-in segments (0 if none; NaN/inf propagate)."""
        m = self.mask.float()
        return (self.rewards * m).sum(1) / m.sum(1).clamp(min=1.0)


def score_segments(
    completions: Sequence[str],
    segment_labels: Sequence[Sequence[str]],
    segment_references: Sequence[Sequence[Sequence[str]]],
    metric: Metric,
    *,
    K: int | None = None,
) -> SegmentScores:
    """Parse and score a batch of completions segment by segment.

    Args:
        completions: B completion texts.
        segment_labels: B label lists (K_i labels each).
        segment_references: B lists of K_i reference lists.
        metric: ``metric(predictions: list[str], references: list[list[str]]) -> list[float | None]``.
        K: pad to this many segments (default: the batch's largest K_i).

    Returns:
        A :class:`SegmentScores` of shape ``(B, K)``.

    Raises:
        ValueError: if the three lists differ in length, or a row's labels and references differ.
        RewardError: if the metric raises or returns the wrong number of scores — never
            silently replaced by a default value. A non-finite score is not an error here: it
            is kept in ``rewards`` and flagged by :attr:`SegmentScores.nonfinite`; the trainer
            counts it and the step is skipped when it makes the gradient non-finite.
    """
    B = len(completions)
    if not (len(segment_labels) == len(segment_references) == B):
        raise ValueError(
            f"score_segments: {B} completions, {len(segment_labels)} label lists, "
            f"{len(segment_references)} reference lists"
        )
    for i, (labs, refs) in enumerate(zip(segment_labels, segment_references)):
        if len(labs) != len(refs):
            raise ValueError(f"row {i}: {len(labs)} segment_labels but {len(refs)} segment_references")
    K = max((len(x) for x in segment_labels), default=0) if K is None else K
    parsed = [parse_segments(c if isinstance(c, str) else "", labs) for c, labs in zip(completions, segment_labels)]

    rewards = torch.zeros(B, K)
    mask = torch.zeros(B, K, dtype=torch.bool)
    present = torch.zeros(B, K, dtype=torch.bool)
    where, preds, refs = [], [], []
    for i, p in enumerate(parsed):
        for k, seg in enumerate(p.segments):
            mask[i, k] = True
            if seg.present:
                present[i, k] = True
                where.append((i, k))
                preds.append(seg.text)
                refs.append([str(r) for r in segment_references[i][k]])
    # References that cannot be scored mask their segment for every rollout of the prompt,
    # present or not: ask the metric about missing segments' references too.
    missing = [(i, k) for i in range(B) for k in range(len(parsed[i].segments)) if not present[i, k]]
    probe_refs = [[str(r) for r in segment_references[i][k]] for i, k in missing]
    try:
        scores = list(metric(preds + [""] * len(missing), refs + probe_refs)) if (preds or missing) else []
    except Exception as e:  # re-raised with context, never swallowed
        name = getattr(metric, "__name__", type(metric).__name__)
        raise RewardError(f"segment reward {name!r} raised {type(e).__name__}: {e}") from e
    if len(scores) != len(preds) + len(missing):
        raise RewardError(f"segment reward returned {len(scores)} scores for {len(preds) + len(missing)} segments")
    for (i, k), s in zip(where + missing, scores):
        if s is None:
            mask[i, k] = False
            continue
        try:
            s = float(s)
        except (TypeError, ValueError) as e:
            raise RewardError(f"segment reward returned {s!r} for row {i}, segment {k}: not a number") from e
        if present[i, k]:
            rewards[i, k] = s
    return SegmentScores(rewards=rewards, mask=mask, present=present, parsed=parsed)


def joined_answer(parsed: ParsedCompletion) -> str:
    """The whole answer of a parsed completion: its present segments' texts in label order, one per line.

    Labels are left out (they are format, not content: the metric would otherwise reward ``Panel 1``
    n-grams), and text outside every segment (preamble, duplicates) too, as the segment rewards see it.
    """
    return "\n".join(s.text for s in parsed.segments if s.present)


def joined_references(segment_references: Sequence[Sequence[str]]) -> list[str]:
    """The whole references of one example: reference j joins every segment's j-th reference (its last
    one when it has fewer), one per line, in label order. ``[]`` when a segment has no reference."""
    if not segment_references or any(len(refs) == 0 for refs in segment_references):
        return []
    n = max(len(refs) for refs in segment_references)
    return ["\n".join(str(refs[min(j, len(refs) - 1)]) for refs in segment_references) for j in range(n)]


def score_holistic(
    parsed: Sequence[ParsedCompletion],
    segment_references: Sequence[Sequence[Sequence[str]]],
    metric: Metric,
) -> torch.Tensor:
    """The holistic reward: ``metric`` on the whole answer against the whole reference, one batched call.

    ``H[i] = metric(joined_answer(parsed[i]), joined_references(segment_references[i]))``: a score of
    the whole answer (cross-segment content such as captions that share context), not an average of
    segment scores (issue 15; EXPERIMENTS.md "A holistic reward is a score of the whole answer").
    The answer is what the segment parser extracted (:func:`joined_answer`), so the same text is
    scored as by the segment rewards.

    Args:
        parsed: B parse results (:attr:`SegmentScores.parsed`).
        segment_references: B lists of K_i reference lists.
        metric: ``metric(predictions, references) -> list[float | None]`` (e.g. the task's segment metric).

    Returns:
        ``(B,)`` float32; NaN where the whole reference cannot be scored (the metric returned None,
        or a segment has no reference). The trainer then uses ``R[i]`` for that rollout.

    Raises:
        ValueError: the two lists differ in length.
        RewardError: the metric raises, returns the wrong number of scores or a non-number.
    """
    if len(parsed) != len(segment_references):
        raise ValueError(f"score_holistic: {len(parsed)} completions but {len(segment_references)} reference lists")
    out = torch.full((len(parsed),), float("nan"))
    rows = [(i, joined_answer(p), joined_references(refs)) for i, (p, refs) in enumerate(zip(parsed, segment_references))]
    rows = [r for r in rows if r[2]]
    if not rows:
        return out
    try:
        scores = list(metric([a for _, a, _ in rows], [refs for _, _, refs in rows]))
    except Exception as e:  # re-raised with context, never swallowed
        name = getattr(metric, "__name__", type(metric).__name__)
        raise RewardError(f"holistic reward {name!r} raised {type(e).__name__}: {e}") from e
    if len(scores) != len(rows):
        raise RewardError(f"holistic reward returned {len(scores)} scores for {len(rows)} answers")
    for (i, _, _), s in zip(rows, scores):
        if s is None:
            continue
        try:
            out[i] = float(s)
        except (TypeError, ValueError) as e:
            raise RewardError(f"holistic reward returned {s!r} for row {i}: not a number") from e
    return out
