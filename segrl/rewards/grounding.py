"""Reasoning-grounding rewards: VisionReasoner's, Dr. Seg's, and a per-object IoU segment reward.

A grounding completion reasons inside ``<think>...</think>`` and answers inside
``<answer>...</answer>`` with one box and one point per object it found, in segrl's canonical
format (one labelled line per object, so each object is a segment)::

    <think>... <look>the red circle is at (315, 315)</look> ...</think>
    <answer>
    Object 1: {"bbox_2d": [225, 225, 405, 405], "point_2d": [315, 315]}
    Object 2: {"bbox_2d": [...], "point_2d": [...]}
    </answer>

Sources:

* VisionReasoner (Liu et al., 2025, "VisionReasoner: Unified Visual Perception and Reasoning via
  Reinforcement Learning", arXiv 2505.12081), as implemented in the Dr. Seg code base
  (GitHub xVI-group-SCU/Dr-Seg, ``verl/utils/reward_score/vision_reasoner.py``): the thinking and
  answer format reward, the non-repeat reward, the Hungarian matching with cost
  ``3 - ([IoU > 0.5] + [L1 < 10] + [d < 30 and point in its box])`` over at most 120 objects,
  and the accuracy ``(3 * matches - sum of matched costs) / max(M, N)``.
* Dr. Seg ("Dr. Seg: Revisiting GRPO Training for Visual Large Language Models through
  Perception-Oriented Design", arXiv 2603.00152; code ``verl/utils/reward_score/dr_seg.py`` and
  ``drr_module/serve.py``): the Look-to-Confirm bonus (+1 for a non-empty ``<look>`` block in the
  think or answer body), the placeholder phrases in the non-repeat reward, and the
  Distribution-Ranked Reward (:class:`DistributionRankedReward`): raw metrics ``x1`` (mean matched
  IoU), ``x2`` (count fit ``min(M, N) / max(M, N)``), ``x3`` (mean point score), each replaced by
  its empirical-CDF rank against a FIFO history, rounded to one decimal.

Where this module departs from the reference code (on purpose):

1. The answer body may be segrl's labelled lines (``Object k: {json}``, any number of them) or
   the reference's JSON list; both are parsed (:func:`parse_answer`).
2. A coordinate must be a finite real number (the reference's format reward only checks the
   list lengths, and its accuracy feeds whatever is there to numpy); NaN, ``1e309`` and strings
   make the object invalid.
3. All or nothing, spelled out: if any object of an answer is invalid the answer has no
   predictions (``M = 0``). The reference drops every prediction when an item lacks a key (its
   list comprehension raises); when a box merely has the wrong length it keeps ``M`` for the
   count fit ``x2`` but scores ``x1 = x3 = 0`` (numpy raises) — here that case is ``M = 0`` too.
4. Degenerate boxes (``x2 < x1`` or ``y2 < y1``): the reference's pixel-inclusive areas
   ``(x2 - x1 + 1) * (y2 - y1 + 1)`` go negative and its IoU can come out negative or NaN; here
   each side length is clamped at 0 and the IoU is 0 when the union is not positive.
5. Tags are found with ``str.find`` (first ``<answer>``, first ``</answer>`` after it, exactly
   the reference's non-greedy regex) so a huge completion costs linear time.
6. The DRR history is an in-process object with ``state_dict`` / ``load_state_dict`` (saved in
   checkpoints, identical on every rank because the trainer gathers the raw metrics), not the
   reference's separate TCP service.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from segrl.grounding_objects import (
    GroundingObject,
    as_object,
    first_json_value,
    is_number_list,
    targets_from_references,
)

MAX_OBJECTS = 120
"""Predictions and targets beyond this many are ignored by the matching (reference: ``MAX_OBJECTS``)."""
IOU_THRESHOLD = 0.5
L1_THRESHOLD = 10.0
"""Pixels: the mean absolute difference of the four box coordinates must be below this."""
POINT_THRESHOLD = 30.0
"""Pixels: the point distance below which the matching counts a hit (and the point score is 1)."""
POINT_FAR = 200.0
"""Pixels: the point distance at and beyond which the DRR point score is 0."""
PLACEHOLDERS = (
    re.compile(r"\byour[\s\W]*reasoning[\s\W]*text\b", re.IGNORECASE),
    re.compile(r"\byour[\s\W]*visual[\s\W]*focus\b", re.IGNORECASE),
    re.compile(r"\bmore[\s\W]*reasoning[\s\W]*text\b", re.IGNORECASE),
)
"""Phrases of the Look-to-Confirm prompt's format example; a completion that copies one earns no
non-repeat reward (Dr. Seg ``dr_seg.py``)."""
_SENTENCE_END = re.compile(r"[.\u3002!?\uff1f\uff01\u2026]+")
_SENTENCE_STRIP = " \"'\u201c\u201d\u2018\u2019[](){}\uff0c,;:\u3001"
_WS = re.compile(r"\s*")
_OBJECT_MARKER = re.compile(
    r"^[ \t]*(?:[-*\u2022][ \t]+)?(?:\*\*[ \t]*)?Object[ \t]*\d+(?![0-9A-Za-z])[ \t]*(?:\*\*[ \t]*)?:(?:\*\*)?",
    re.IGNORECASE | re.MULTILINE,
)
"""A line-start ``Object k:`` marker (the segment parser's rule 1: bullets and bold allowed)."""


# ----------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedAnswer:
    """What :func:`parse_answer` read from a completion.

    Attributes:
        found: the completion has an ``<answer>...</answer>`` block.
        items: one entry per object the answer lists (a labelled line or a JSON-list item): the
            decoded JSON value (a dict when well formed) or None when it is not JSON.
        objects: the predictions: every item as a :class:`GroundingObject` when *all* items are
            valid, else ``[]`` (departure 3 of the module docstring).
    """

    found: bool
    items: list
    objects: list[GroundingObject]


def section(text: str, tag: str) -> str | None:
    """The body of the first ``<tag>...</tag>`` block (first opening tag, first closing tag after it),
    stripped of surrounding blanks; None when there is none. Same result as the reference's
    ``re.search(r"<tag>\\s*(.*?)\\s*</tag>", text, re.DOTALL)`` in linear time."""
    open_, close = f"<{tag}>", f"</{tag}>"
    i = text.find(open_)
    if i < 0:
        return None
    j = text.find(close, i + len(open_))
    if j < 0:
        return None
    return text[i + len(open_) : j].strip()


def parse_answer(completion: str) -> ParsedAnswer:
    """Read the objects of a completion's first ``<answer>`` block.

    The body is either labelled lines (``Object k: {"bbox_2d": [...], "point_2d": [...]}``, each
    object's text running to the next marker; text before the first marker is ignored) or, when it
    starts with ``[``, a JSON list (the VisionReasoner/Dr. Seg format). A malformed JSON list has no
    items. Never raises on a string.
    """
    if not isinstance(completion, str):
        completion = ""
    body = section(completion, "answer")
    if body is None:
        return ParsedAnswer(False, [], [])
    if body.startswith("["):
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, RecursionError, ValueError):
            data = None
        items = list(data) if isinstance(data, list) else []
    else:
        marks = list(_OBJECT_MARKER.finditer(body))
        items = [first_json_value(body[m.end() : marks[n + 1].start() if n + 1 < len(marks) else len(body)])
                 for n, m in enumerate(marks)]
    objects = [as_object(x) for x in items]
    valid = bool(objects) and all(o is not None for o in objects)
    return ParsedAnswer(True, items, objects if valid else [])


# ------------------------------------------------------------------------- format, non-repeat


def thinking_format(completion: str) -> float:
    """1.0 if the whole completion is ``<think>...</think>``, blanks, ``<answer>...</answer>``, else 0.0.

    Same language as the reference's ``re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?</answer>",
    s, re.DOTALL)``: starts with ``<think>``, ends with ``</answer>``, and some ``</think>`` is
    followed, after blanks only, by an ``<answer>`` that ends before that final ``</answer>``.
    Linear time (each ``</think>`` is followed by its own run of blanks).
    """
    if not isinstance(completion, str) or not completion.startswith("<think>") or not completion.endswith(
        "</answer>"
    ):
        return 0.0
    last = len(completion) - len("</answer>")
    p = completion.find("</think>", len("<think>"))
    while p >= 0:
        q = _WS.match(completion, p + len("</think>")).end()
        if completion.startswith("<answer>", q) and q + len("<answer>") <= last:
            return 1.0
        p = completion.find("</think>", p + 1)
    return 0.0


def object_format(completion: str) -> float:
    """Answer-format score in [0, 2]: the mean over the answer's items of
    ``1[bbox_2d is 4 numbers] + 1[point_2d is 2 numbers]``; 0 with no items (VisionReasoner's
    ``segmentation_format``)."""
    items = parse_answer(completion).items
    if not items:
        return 0.0
    total = 0.0
    for item in items:
        if isinstance(item, dict):
            total += float(is_number_list(item.get("bbox_2d"), 4)) + float(is_number_list(item.get("point_2d"), 2))
    return total / len(items)


def has_look(completion: str) -> bool:
    """A non-empty ``<look>...</look>`` block inside the think or the answer body (Dr. Seg's
    ``look_format``: ``<look>\\s*\\S[\\s\\S]*?</look>``)."""
    if not isinstance(completion, str):
        return False
    for body in (section(completion, "think"), section(completion, "answer")):
        if body is None:
            continue
        i = body.find("<look>")
        if i < 0:
            continue
        j = _WS.match(body, i + len("<look>")).end()
        if j < len(body) and body.find("</look>", j + 1) >= 0:
            return True
    return False


def format_reward(completion: str, *, look_bonus: bool = True) -> float:
    """Dr. Seg format reward in [0, 4] (VisionReasoner's in [0, 3] with ``look_bonus=False``).

    ``thinking_format + object_format + look_bonus * 1[has_look]`` (``dr_seg.py``,
    ``vision_reasoner_format_reward``).
    """
    score = thinking_format(completion) + object_format(completion)
    if look_bonus and has_look(completion):
        score += 1.0
    return score


def non_repeat_reward(completion: str) -> float:
    """0.0 if a prompt placeholder phrase appears or two sentences repeat an earlier one, else 1.0.

    Sentences are split at ``. ! ? ...`` (and their CJK forms), stripped of quotes, brackets and
    commas, blanks collapsed, lowercased; the second repeat (of any sentence) gives 0 (Dr. Seg
    ``vision_reasoner_non_repeat_reward``).
    """
    if not isinstance(completion, str):
        return 1.0
    if any(p.search(completion) for p in PLACEHOLDERS):
        return 0.0
    seen: set[str] = set()
    repeats = 0
    for part in _SENTENCE_END.split(completion):
        s = " ".join(part.strip().strip(_SENTENCE_STRIP).split()).lower()
        if not s:
            continue
        if s in seen:
            repeats += 1
            if repeats >= 2:
                return 0.0
        seen.add(s)
    return 1.0


# ------------------------------------------------------------------------------------ matching


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes with pixel-inclusive corners (VisionReasoner ``batch_iou``).

    ``inter = max(0, min(x2) - max(x1) + 1) * max(0, min(y2) - max(y1) + 1)``, each area
    ``max(0, x2 - x1 + 1) * max(0, y2 - y1 + 1)`` (clamped: departure 4), IoU 0 where the union is
    not positive.

    Args:
        a: ``(M, 4)`` boxes ``x1, y1, x2, y2``. b: ``(N, 4)``.

    Returns:
        ``(M, N)`` float64 in [0, 1].
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)

    def area(x):
        return np.clip(x[:, 2] - x[:, 0] + 1, 0, None) * np.clip(x[:, 3] - x[:, 1] + 1, 0, None)

    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1, 0, None)
        ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1, 0, None)
        inter = iw * ih
        union = area(a)[:, None] + area(b)[None, :] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    # Coordinates near the float limit overflow to inf (inf * 0 = NaN): score such pairs 0.
    return np.clip(np.nan_to_num(iou, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)


@dataclass(frozen=True)
class Match:
    """A Hungarian matching of M predictions to N targets.

    Attributes:
        rows: ``(P,)`` matched prediction indices, ``P = min(M, N)`` (after the 120-object cap).
        cols: ``(P,)`` matched target indices.
        cost: ``(M, N)`` cost ``3 - ([IoU > 0.5] + [L1 < 10] + [d < 30 and point in its own box])``.
        iou: ``(M, N)`` box IoU (:func:`box_iou`).
        dist: ``(M, N)`` Euclidean distance between predicted and target points (pixels).
        n_pred: M. n_target: N.
    """

    rows: np.ndarray
    cols: np.ndarray
    cost: np.ndarray
    iou: np.ndarray
    dist: np.ndarray
    n_pred: int
    n_target: int


def match_objects(predictions: Sequence[GroundingObject], targets: Sequence[GroundingObject]) -> Match:
    """Hungarian assignment (``scipy.optimize.linear_sum_assignment``) of predictions to targets.

    Cost (VisionReasoner ``vision_reasoner_accuracy_reward``):
    ``3 - ([IoU > 0.5] + [mean |box - box'| < 10] + [point distance < 30 and the predicted point
    inside its own predicted box])``. Only the first :data:`MAX_OBJECTS` of each list count.

    Returns:
        A :class:`Match`; with no prediction or no target, ``rows`` and ``cols`` are empty.
    """
    from scipy.optimize import linear_sum_assignment

    preds, gts = list(predictions)[:MAX_OBJECTS], list(targets)[:MAX_OBJECTS]
    M, N = len(preds), len(gts)
    pb = np.array([p.bbox for p in preds], dtype=np.float64).reshape(M, 4)
    pp = np.array([p.point for p in preds], dtype=np.float64).reshape(M, 2)
    gb = np.array([g.bbox for g in gts], dtype=np.float64).reshape(N, 4)
    gp = np.array([g.point for g in gts], dtype=np.float64).reshape(N, 2)
    iou = box_iou(pb, gb)
    with np.errstate(over="ignore", invalid="ignore"):  # coordinates near the float limit: inf distances
        l1 = np.abs(pb[:, None, :] - gb[None, :, :]).mean(axis=2) if M and N else np.zeros((M, N))
        dist = np.sqrt(((pp[:, None, :] - gp[None, :, :]) ** 2).sum(axis=2)) if M and N else np.zeros((M, N))
    inside = (pp[:, 0] >= pb[:, 0]) & (pp[:, 0] <= pb[:, 2]) & (pp[:, 1] >= pb[:, 1]) & (pp[:, 1] <= pb[:, 3])
    hits = (iou > IOU_THRESHOLD).astype(float) + (l1 < L1_THRESHOLD) + ((dist < POINT_THRESHOLD) & inside[:, None])
    cost = 3.0 - hits
    if M and N:
        rows, cols = linear_sum_assignment(cost)
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
    return Match(rows, cols, cost, iou, dist, M, N)


def vision_reasoner_accuracy(predictions: Sequence[GroundingObject], targets: Sequence[GroundingObject]) -> float:
    """VisionReasoner accuracy in [0, 3]: ``(3 * P - sum of matched costs) / max(M, N)``, 0 when M or N is 0.

    Source: VisionReasoner (arXiv 2505.12081), ``vision_reasoner_accuracy_reward`` in the Dr. Seg code.
    """
    m = match_objects(predictions, targets)
    if not (m.n_pred and m.n_target):
        return 0.0
    return float(3.0 * len(m.rows) - m.cost[m.rows, m.cols].sum()) / max(m.n_pred, m.n_target)


def point_score(d: np.ndarray | float) -> np.ndarray:
    """Dr. Seg's point score: 1 for ``d <= 30``, ``(200 - d) / 170`` for ``30 < d < 200``, 0 beyond.

    Args:
        d: distances in pixels, any shape. Returns: the same shape, in [0, 1].
    """
    d = np.asarray(d, dtype=np.float64)
    return np.where(d <= POINT_THRESHOLD, 1.0, np.clip((POINT_FAR - d) / (POINT_FAR - POINT_THRESHOLD), 0.0, 1.0))


def drr_raw_metrics(predictions: Sequence[GroundingObject], targets: Sequence[GroundingObject]) -> tuple[float, float, float]:
    """Dr. Seg's raw metrics ``(x1, x2, x3)`` of one answer, each in [0, 1].

    ``x1``: mean IoU of the matched pairs (:func:`match_objects`), 0 without a match;
    ``x2 = min(M, N) / max(M, N)``, 1 when both are 0; ``x3``: mean :func:`point_score` of the
    matched pairs' point distances (no inside-the-box condition), 0 without a match.
    Source: ``vision_reasoner_accuracy_reward`` in Dr. Seg's ``dr_seg.py``.
    """
    m = match_objects(predictions, targets)
    x2 = 1.0 if m.n_pred == m.n_target == 0 else min(m.n_pred, m.n_target) / max(m.n_pred, m.n_target)
    if not len(m.rows):
        return 0.0, float(x2), 0.0
    x1 = float(m.iou[m.rows, m.cols].mean())
    x3 = float(point_score(m.dist[m.rows, m.cols]).mean())
    return x1, float(x2), x3


# ------------------------------------------------------------------- distribution-ranked reward


class DistributionRankedReward:
    """Dr. Seg's Distribution-Ranked Reward: raw metrics scored by their rank in a FIFO history.

    For a batch of raw metrics ``x`` (``(B, D)``, D = 3 here), the reward of metric j is its
    empirical-CDF rank against the history, rounded to ``decimals`` places::

        r[i, j] = round(#{h in history[:, j] : h <= x[i, j]} / len(history), decimals)

    (``torch.searchsorted(..., right=True)`` on the sorted column, float32 like the reference;
    Python's ``round``). The accuracy reward is ``r.sum(1)``. New metrics are first held in a
    pending buffer (:meth:`add`) and only enter the history at :meth:`update` — the trainer calls
    it after each policy update — so every rollout of a batch is ranked against the same
    history. The history keeps the newest ``capacity`` rows; it starts as ``initial_zeros`` rows
    of zeros. Source: Dr. Seg ``drr_module/serve.py`` (``QuantileCore``: ``MAX_LENGTH = 2048``,
    ``INIT = 128``, ``MAX_DIGITS = 1``; query, enqueue, flush).

    Args:
        capacity: the most history rows kept (>= 1).
        initial_zeros: zero rows the history starts with (0 .. capacity).
        decimals: rounding of a rank (>= 0).
        dims: D, metrics per rollout (>= 1).

    Raises:
        ValueError: an argument outside its range.
    """

    def __init__(self, capacity: int = 2048, initial_zeros: int = 128, decimals: int = 1, dims: int = 3):
        if capacity < 1 or not 0 <= initial_zeros <= capacity or decimals < 0 or dims < 1:
            raise ValueError(
                f"DistributionRankedReward: need capacity >= 1, 0 <= initial_zeros <= capacity, decimals >= 0, "
                f"dims >= 1; got capacity={capacity}, initial_zeros={initial_zeros}, decimals={decimals}, dims={dims}"
            )
        self.capacity, self.decimals, self.dims = int(capacity), int(decimals), int(dims)
        self.history = torch.zeros(int(initial_zeros), self.dims, dtype=torch.float32)
        self.pending = torch.zeros(0, self.dims, dtype=torch.float32)

    def _check(self, x: torch.Tensor, what: str) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32).detach().cpu()
        if x.dim() != 2 or x.shape[1] != self.dims:
            raise ValueError(f"DistributionRankedReward.{what}: expected (B, {self.dims}), got {tuple(x.shape)}")
        return x

    def rank(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` ranks in [0, 1] of ``x`` ``(B, D)`` against the current history (0 when it is empty)."""
        x = self._check(x, "rank")
        n = self.history.shape[0]
        if n == 0:
            return torch.zeros_like(x)
        counts = torch.stack(
            [torch.searchsorted(torch.sort(self.history[:, j]).values, x[:, j].contiguous(), right=True)
             for j in range(self.dims)], dim=1)
        return torch.tensor([[round(min(max(int(c) / n, 0.0), 1.0), self.decimals) for c in row]
                             for row in counts.tolist()], dtype=torch.float32).reshape(x.shape)

    def add(self, x: torch.Tensor) -> None:
        """Hold ``x`` ``(B, D)`` until the next :meth:`update` (non-finite rows are rejected)."""
        x = self._check(x, "add")
        if not torch.isfinite(x).all():
            raise ValueError("DistributionRankedReward.add: non-finite raw metrics")
        self.pending = torch.cat([self.pending, x])

    def update(self) -> dict[str, int]:
        """Move the pending rows into the history (FIFO, newest ``capacity`` kept).

        Returns:
            ``{"added": rows moved, "dropped": oldest rows removed, "size": history length}``.
        """
        added = self.pending.shape[0]
        merged = torch.cat([self.history, self.pending])
        dropped = max(0, merged.shape[0] - self.capacity)
        self.history = merged[dropped:].clone()
        self.pending = torch.zeros(0, self.dims, dtype=torch.float32)
        return {"added": int(added), "dropped": int(dropped), "size": int(self.history.shape[0])}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Rank ``x`` then hold it for the next update (the reference's enqueue + query); returns ``(B, D)``."""
        ranks = self.rank(x)
        self.add(x)
        return ranks

    def state_dict(self) -> dict:
        """Everything needed to continue: history, pending rows and the settings."""
        return {"history": self.history.clone(), "pending": self.pending.clone(), "capacity": self.capacity,
                "decimals": self.decimals, "dims": self.dims}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            ValueError: a key is missing, the settings differ from this object's, or a tensor has
                the wrong shape (the message says which).
        """
        missing = [k for k in ("history", "pending", "capacity", "decimals", "dims") if k not in state]
        if missing:
            raise ValueError(f"DRR state: missing {missing}")
        for key in ("capacity", "decimals", "dims"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(f"DRR state: {key}={state[key]} but this reward has {key}={getattr(self, key)}")
        history, pending = (torch.as_tensor(state[k], dtype=torch.float32) for k in ("history", "pending"))
        for name, t in (("history", history), ("pending", pending)):
            if t.dim() != 2 or t.shape[1] != self.dims:
                raise ValueError(f"DRR state: {name} has shape {tuple(t.shape)}, expected (L, {self.dims})")
        if history.shape[0] > self.capacity:
            raise ValueError(f"DRR state: history has {history.shape[0]} rows, more than capacity {self.capacity}")
        self.history, self.pending = history.clone(), pending.clone()


# -------------------------------------------------------------------- per-object IoU segment reward


def object_iou(predictions: Sequence[str], references: Sequence[Sequence[str]], **_) -> list[float | None]:
    """Per-segment reward: box IoU of the object a segment writes with its target object.

    Segment ``Object k`` of the answer is scored against target k (targets in reading order, as the
    prompt states); its text's first JSON value must be a valid object (:func:`as_object`), else 0.0.
    With several references the best IoU counts. IoU as in :func:`box_iou` (pixel-inclusive).

    Args:
        predictions: segment texts (``{"bbox_2d": [...], "point_2d": [...]}`` plus anything after).
        references: per segment, its reference texts (the target object's JSON).

    Returns:
        One float in [0, 1] per segment; None when no reference is a valid object.

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(f"object_iou: {len(predictions)} predictions but {len(references)} reference lists")
    out: list[float | None] = []
    for pred, refs in zip(predictions, references):
        targets = [t for t in (as_object(first_json_value(r)) for r in refs) if t is not None]
        if not targets:
            out.append(None)
            continue
        obj = as_object(first_json_value(pred))
        if obj is None:
            out.append(0.0)
            continue
        out.append(float(box_iou(np.array([obj.bbox]), np.array([t.bbox for t in targets])).max()))
    return out


# ------------------------------------------------------------------------------- evaluation


def union_iou(predictions: Sequence[GroundingObject], targets: Sequence[GroundingObject],
              image_size: tuple[int, int]) -> float:
    """Per-image IoU of the pixels covered by the predicted boxes and by the target boxes.

    The boxes' union is rasterised on the ``W x H`` pixel grid (corners pixel-inclusive, clipped to
    the image), like ReasonSeg's gIoU on masks (VisionReasoner ``evaluation/calculate_iou_with_bbox.py``:
    ``intersection / union`` per image, 0 when the union is empty).

    Args:
        image_size: ``(W, H)`` in pixels.
    """
    W, H = int(image_size[0]), int(image_size[1])

    def mask(objs):
        m = np.zeros((H, W), dtype=bool)
        for o in objs:
            x1, y1 = max(0, math.ceil(o.bbox[0])), max(0, math.ceil(o.bbox[1]))
            x2, y2 = min(W - 1, math.floor(o.bbox[2])), min(H - 1, math.floor(o.bbox[3]))
            if x2 >= x1 and y2 >= y1:
                m[y1 : y2 + 1, x1 : x2 + 1] = True
        return m

    p, t = mask(predictions), mask(targets)
    union = int((p | t).sum())
    return int((p & t).sum()) / union if union else 0.0


def grounding_metrics(completion: str, targets: Sequence[GroundingObject], image_size: tuple[int, int]) -> dict:
    """Evaluation metrics of one answer.

    Returns:
        ``giou`` (:func:`union_iou`), ``count_correct`` (1.0 when the answer lists exactly as many
        valid objects as there are targets), ``matched_iou`` and ``point_score`` (Dr. Seg's ``x1``
        and ``x3``), ``vr_accuracy`` (:func:`vision_reasoner_accuracy`), ``thinking_format``.
    """
    preds = parse_answer(completion).objects
    x1, _, x3 = drr_raw_metrics(preds, targets)
    return {
        "giou": union_iou(preds, targets, image_size),
        "count_correct": float(len(preds) == len(targets)),
        "matched_iou": x1,
        "point_score": x3,
        "vr_accuracy": vision_reasoner_accuracy(preds, targets),
        "thinking_format": thinking_format(completion),
    }


# --- evaluation ---------------------------------------------------------------------------------
EXAMPLE_METRICS = ("giou", "count_accuracy", "matched_iou", "point_score", "vr_accuracy", "thinking_format")


def _example_means(records: list[dict], rows: dict, where: Path, data, split: str) -> dict[str, float]:
    """Means over ``records`` (``{"id", "completion"}``) of :func:`grounding_metrics` against ``rows[id]``."""
    per: dict[str, list[float]] = {k: [] for k in EXAMPLE_METRICS}
    for pred in records:
        if pred["id"] not in rows:
            raise KeyError(f"{where}: id {pred['id']!r} is not in {data}[{split}]")
        row = rows[pred["id"]]
        m = grounding_metrics(pred["completion"], targets_from_references(row["segment_references"]),
                              tuple(json.loads(row["meta"])["image_size"]))
        m["count_accuracy"] = m.pop("count_correct")
        for k in EXAMPLE_METRICS:
            per[k].append(m[k])
    return {k: (sum(v) / len(v) if v else 0.0) for k, v in per.items()}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def add_grounding_metrics(eval_dir: str | Path, data: str | Path) -> dict[str, float]:
    """Add example-level metrics to a ``segrl eval grounding`` run (``metrics.json`` updated in place).

    For every prediction of ``<eval_dir>/predictions.jsonl`` (greedy):
    :func:`grounding_metrics` against the row's targets (its
    ``segment_references``) at its ``meta.image_size``; the means over examples are written into
    ``metrics.json``'s ``metrics`` as ``giou`` (mean per-image IoU of the box unions),
    ``count_accuracy``, ``matched_iou``, ``point_score``, ``vr_accuracy`` and ``thinking_format``
    (so ``segrl report`` tables can use them). When the run was also evaluated sampled
    (``predictions_sampled.jsonl``, ``metrics.sampled``), the same metrics of each sample index j
    (completion j of every prompt) are averaged over examples, and ``metrics.sampled`` gets their
    mean over the samples and, with several, ``<name>_sample_std`` (the n - 1 std across samples),
    as :func:`segrl.eval.evaluate.mean_over_samples` does for the segment metrics; a report reads
    them as ``sampled_<name>``. Running it again recomputes the same values.

    Returns:
        The added greedy metrics, and ``sampled`` (the added sampled ones) when there are samples.

    Raises:
        FileNotFoundError: ``metrics.json``/``predictions.jsonl`` or the dataset is missing, or
            ``metrics.json`` has ``sampled`` but ``predictions_sampled.jsonl`` is missing.
        KeyError: a prediction's id is not in the evaluated split, or the split is missing.
    """
    from datasets import load_from_disk

    out = Path(eval_dir)
    metrics_path, preds_path, sampled_path = out / "metrics.json", out / "predictions.jsonl", \
        out / "predictions_sampled.jsonl"
    for p in (metrics_path, preds_path, Path(data)):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found")
    result = json.loads(metrics_path.read_text())
    split = result.get("split", "test")
    ds = load_from_disk(str(data))
    if split not in ds:
        raise KeyError(f"split {split!r} not in {data}; available: {list(ds)}")
    rows = {r["id"]: r for r in ds[split].select_columns(["id", "segment_references", "meta"]).to_list()}
    added: dict = _example_means(_read_jsonl(preds_path), rows, preds_path, data, split)
    result["metrics"].update(added)
    if isinstance(result["metrics"].get("sampled"), dict):
        if not sampled_path.exists():
            raise FileNotFoundError(f"{sampled_path} not found (metrics.json has a sampled evaluation)")
        by_sample: dict[int, list[dict]] = {}
        for rec in _read_jsonl(sampled_path):
            by_sample.setdefault(int(rec["sample"]), []).append(rec)
        per_sample = [_example_means(by_sample[j], rows, sampled_path, data, split) for j in sorted(by_sample)]
        sampled = {}
        for k in EXAMPLE_METRICS:
            vals = [s[k] for s in per_sample]
            mean = sum(vals) / len(vals)
            sampled[k] = mean
            if len(vals) > 1:
                sampled[f"{k}_sample_std"] = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5
        result["metrics"]["sampled"].update(sampled)
        added = {**added, "sampled": sampled}
    metrics_path.write_text(json.dumps(result, indent=2) + "\n")
    return added
