"""The sight gate: does a policy's answer depend on its image? (``segrl check-sight``)

Three measurements on held-out rows of any task (row schema of :mod:`segrl.tasks.base`), all
teacher-forced on the reference answer (no generation, so they are cheap and deterministic):

1. **Image-swap TV.** Keep a row's prompt and reference, give it another row's images (the
   next row in the sample with the same number of images), and compare the next-token
   distributions at every answer position (the reference's tokens and EOS):
   ``TV_t = ½ Σ_v |p(v | x, img, y_<t) − p(v | x, img', y_<t)|``, averaged over positions and
   rows. A blind policy gives 0; the issue measured 0.0007 for the old demo SFT model.
   ``tv_blank`` is the same against the blank image.
2. **Content accuracy, true image vs blank image** (per segment). For segment ``k`` of row
   ``i`` the candidates are the reference and ``distractors`` copies of it whose segment ``k``
   is replaced by segment ``k`` of other sampled rows (different text, drawn with a seeded
   RNG; for typed questions, ``meta.templates``, answers of the same question template); the
   model is right when the reference has the highest total log-likelihood
   ``Σ_t log p(y_t | x, img, y_<t)`` among the candidates. This is the likelihood-ranking
   evaluation of multiple-choice benchmarks (e.g. lm-evaluation-harness's ``acc`` for
   ``multiple_choice`` tasks), with candidates built from the task's own segments so it
   serves every task (panels, charts, grounding, multi-image prompts) without a
   task-specific scorer. A policy whose scores do not depend on the image ranks the
   reference first at chance, ``1 / (distractors + 1)``, when the segment values are
   uniform (the probe); a skewed value distribution lets a text prior lift it a little,
   which the **blank** control (every image replaced by a uniform mid-grey one,
   :data:`BLANK_RGB`, same size) measures on the same candidates.
3. **The rule.** PASS iff ``acc_true − acc_blank ≥ min_gain`` (default 0.2) *and* an exact
   one-sided McNemar test on the paired outcomes (true right / blank wrong against the
   reverse; ``scipy.stats.binomtest`` on the discordant pairs) gives ``p < alpha`` (default
   0.01). Both are printed with the figures. A blind policy has ``acc_true = acc_blank``
   up to noise and fails.

Our choices where no paper fixes them: the swap partner is the next sampled row (so each
row's images are used once as a swap), the blank is mid-grey (a black or white image would
look like a probe colour to nobody, but grey is also the probe's background, so a blank probe
panel is "an empty panel"), and ties in the ranking earn fractional credit ``1 / #tied``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

BLANK_RGB = (128, 128, 128)


@dataclass
class SightReport:
    """Figures of :func:`check_sight` (all means over the sampled rows / segments).

    Attributes:
        n_rows (int): rows sampled. n_segments (int): segments ranked (per image condition).
        tv_swap (float): mean image-swap TV distance over answer tokens, in [0, 1].
        tv_swap_max (float): the largest per-position TV seen.
        tv_blank (float): mean TV between the true image and the blank image.
        acc_true (float): content accuracy (reference ranked first) with the true images.
        acc_blank (float): the same with blank images.
        chance (float): mean over ranked segments of ``1 / #candidates`` (``1 / (distractors + 1)``
            unless typed segments had fewer same-template distractors).
        mcnemar_p (float): one-sided exact McNemar p-value of true > blank.
        min_gain (float), alpha (float): the rule's thresholds.
        passed (bool): the verdict of the rule (module docstring).
        per_segment_true (list[float]), per_segment_blank (list[float]): accuracy by segment
            index (Panel 1, Panel 2, ...), over rows that have that segment.
    """

    n_rows: int
    n_segments: int
    tv_swap: float
    tv_swap_max: float
    tv_blank: float
    acc_true: float
    acc_blank: float
    chance: float
    mcnemar_p: float
    min_gain: float
    alpha: float
    passed: bool
    per_segment_true: list[float] = field(default_factory=list)
    per_segment_blank: list[float] = field(default_factory=list)

    @property
    def rule(self) -> str:
        """The pass rule with its thresholds, as printed."""
        return (f"PASS iff acc_true - acc_blank >= {self.min_gain:g} and one-sided exact McNemar "
                f"p(true > blank) < {self.alpha:g}")

    def to_dict(self) -> dict:
        return {**asdict(self), "rule": self.rule}

    def lines(self) -> list[str]:
        """Human-readable report, one figure per line."""
        gain = self.acc_true - self.acc_blank
        return [
            f"rows {self.n_rows}, segments ranked {self.n_segments}",
            f"image-swap TV over answer tokens: mean {self.tv_swap:.4f}, max {self.tv_swap_max:.4f}",
            f"true-vs-blank TV over answer tokens: mean {self.tv_blank:.4f}",
            f"content accuracy, true image: {self.acc_true:.3f}  "
            f"(per segment {', '.join(f'{a:.2f}' for a in self.per_segment_true)})",
            f"content accuracy, blank image: {self.acc_blank:.3f}  (chance {self.chance:.3f}; "
            f"per segment {', '.join(f'{a:.2f}' for a in self.per_segment_blank)})",
            f"gain {gain:+.3f}, McNemar p = {self.mcnemar_p:.2g}",
            f"rule: {self.rule}",
            f"verdict: {'PASS' if self.passed else 'FAIL'}",
        ]


def blank_like(image) -> object:
    """A uniform :data:`BLANK_RGB` RGB image of ``image``'s size."""
    from PIL import Image

    return Image.new("RGB", image.size, BLANK_RGB)


def _encode(processor, row: dict, images: list, completions: Sequence[str]) -> dict:
    """Right-padded batch: ``prompt(images) + completion_c`` for each completion, and the answer mask.

    Returns ``{"input_ids": (C, L), "attention_mask": (C, L), "pixel_values": (C * n_img, 3, H, W),
    "answer_mask": (C, L) bool}``; ``answer_mask[c, t]`` marks positions whose *next* token is
    an answer token (so ``logits[:, t]`` predicts it).
    """
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    tok = getattr(processor, "tokenizer", processor)
    messages = prepare_multimodal_messages(row["prompt"], images=images or None)
    prompt_text = apply_chat_template({"prompt": messages}, processor)["prompt"]
    kwargs = {"text": [prompt_text], "return_tensors": "pt"}
    if images:
        kwargs["images"] = [images]
    enc = processor(**kwargs)
    prompt_ids = enc["input_ids"][0].tolist()
    seqs, answer = [], []
    for c in completions:
        ids = tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(prompt_ids + ids)
        answer.append([False] * (len(prompt_ids) - 1) + [True] * len(ids) + [False])
    length = max(len(s) for s in seqs)
    pad = tok.pad_token_id
    input_ids = torch.tensor([s + [pad] * (length - len(s)) for s in seqs])
    attention = torch.tensor([[1] * len(s) + [0] * (length - len(s)) for s in seqs])
    mask = torch.tensor([m + [False] * (length - len(m)) for m in answer])[:, :length]
    out = {"input_ids": input_ids, "attention_mask": attention, "answer_mask": mask}
    if images:
        out["pixel_values"] = enc["pixel_values"].repeat(len(completions), 1, 1, 1)
    return out


@torch.no_grad()
def answer_logprobs(model, processor, row: dict, images: list, completions: Sequence[str]):
    """Teacher-forced next-token log-probabilities over each completion's tokens (and EOS).

    Args:
        model: an image-text-to-text ``PreTrainedModel``. processor: its processor.
        row: a dataset row (its ``prompt`` is used). images: the images to show (any, e.g. swapped).
        completions: C answer strings.

    Returns:
        ``(logp, mask, targets)``: ``logp`` (C, L-1, V) log-softmax of the logits predicting
        positions 1..L-1, ``mask`` (C, L-1) bool of answer positions, ``targets`` (C, L-1) the
        token ids there.
    """
    batch = _encode(processor, row, images, completions)
    mask = batch.pop("answer_mask")
    batch = {k: v.to(model.device) for k, v in batch.items()}
    logits = model(**batch).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    return logp, mask[:, :-1].to(logp.device), batch["input_ids"][:, 1:]


def segment_templates(row: dict) -> list[str] | None:
    """The question template of each segment (``meta.templates``, one per segment; charts), or None."""
    import json

    try:
        meta = json.loads(row.get("meta") or "{}")
    except (TypeError, ValueError):
        return None
    templates = meta.get("templates") if isinstance(meta, dict) else None
    if isinstance(templates, list) and len(templates) == len(row["segment_labels"]):
        return [str(t) for t in templates]
    return None


def _candidates(rows: list[dict], i: int, k: int, distractors: int, rng: random.Random,
                render=None) -> list[str] | None:
    """[reference, distractor_1, ...] for segment ``k`` of row ``i`` (None if too few distinct values).

    Distractors are other sampled rows' segment-``k`` values (``distractors`` of them; None when
    fewer exist). Rows whose segments are typed questions (``meta.templates``, charts) draw them
    from the answers of the **same template** at any position instead, up to ``distractors``
    (at least 1): an answer of another question type ("Chart 2" to "How many series?") would be
    ruled out by the question text alone, so a blind policy would rank the reference first almost
    always (measured on the chart SFT start: 0.81 with the true and with a blank image).
    ``render(labels, values) -> str`` writes a candidate (default: the canonical answer,
    :func:`segrl.segments.format_answer`).
    """
    from segrl.segments import format_answer

    render = render or format_answer
    labels = rows[i]["segment_labels"]
    values = [refs[0] for refs in rows[i]["segment_references"]]
    templates = segment_templates(rows[i])
    if templates is not None:
        pool = sorted({ref[0] for r in rows for t, ref in zip(segment_templates(r) or (), r["segment_references"])
                       if t == templates[k] and ref} - {values[k]})
        n = min(distractors, len(pool))
        if n == 0:
            return None
    else:
        pool = sorted({r["segment_references"][k][0] for r in rows
                       if len(r["segment_references"]) > k and r["segment_labels"][k] == labels[k]} - {values[k]})
        if len(pool) < distractors:
            return None
        n = distractors
    out = [render(labels, values)]
    for v in rng.sample(pool, n):
        out.append(render(labels, values[:k] + [v] + values[k + 1:]))
    return out


def _rank_credit(scores: torch.Tensor) -> float:
    """1 / #tied if candidate 0 has the (tied-)highest score, else 0."""
    top = scores.max()
    if scores[0] < top:
        return 0.0
    return 1.0 / int((scores == top).sum())


def _tv(p: torch.Tensor, q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-position TV ``½ Σ_v |exp p − exp q|`` at ``mask`` positions; p, q (L, V) log-probs."""
    return 0.5 * (p.exp() - q.exp()).abs().sum(-1)[mask]


def check_sight(
    model,
    processor,
    dataset,
    *,
    n_rows: int = 32,
    distractors: int = 3,
    seed: int = 0,
    min_gain: float = 0.2,
    alpha: float = 0.01,
    render=None,
) -> SightReport:
    """Run the sight gate (module docstring) on ``n_rows`` rows of ``dataset``.

    Args:
        model, processor: the policy (e.g. from :func:`segrl.models.loading.load_policy`).
        dataset: a ``datasets.Dataset`` in the row schema (held-out split); rows need images.
        n_rows: rows sampled (seeded); all rows when the dataset is smaller.
        distractors: distractor answers per ranked segment (chance = 1 / (distractors + 1)).
        seed: sampling seed (rows and distractors).
        min_gain, alpha: the rule's thresholds.
        render: ``render(labels, values) -> str`` writes the reference and every candidate from the
            segment values, for a policy trained on another answer layout (SRPO's structured answers,
            :func:`segrl.eval.srpo_testbed.structured_check_sight`); default None: the row's
            ``reference`` and the canonical candidates.

    Returns:
        A :class:`SightReport`.

    Raises:
        ValueError: fewer than 2 rows, rows without images, no row with a swap partner, or
            ``distractors`` < 1.
    """
    from scipy.stats import binomtest

    if distractors < 1:
        raise ValueError(f"distractors must be >= 1, got {distractors}")
    if len(dataset) < 2:
        raise ValueError(f"the sight gate needs at least 2 rows, got {len(dataset)}")
    rng = random.Random(f"sight:{seed}")
    idx = sorted(rng.sample(range(len(dataset)), min(n_rows, len(dataset))))
    rows = [dataset[i] for i in idx]
    if any(not r.get("images") for r in rows):
        raise ValueError("the sight gate needs rows with images (column 'images' is empty in some rows)")
    for r in rows:
        r["images"] = [im.convert("RGB") for im in r["images"]]
    model.eval()
    tv_swap, tv_blank = [], []
    credit_true: dict[int, list[float]] = {}
    credit_blank: dict[int, list[float]] = {}
    pairs = []  # (true credit, blank credit)
    chances = []  # 1 / #candidates of each ranked segment
    for i, row in enumerate(rows):
        reference = ([row["reference"]] if render is None else
                     [render(row["segment_labels"], [refs[0] for refs in row["segment_references"]])])
        partner = next((rows[(i + d) % len(rows)] for d in range(1, len(rows))
                        if len(rows[(i + d) % len(rows)]["images"]) == len(row["images"])), None)
        blank = [blank_like(im) for im in row["images"]]
        lp_true, mask, _ = answer_logprobs(model, processor, row, row["images"], reference)
        lp_blank, _, _ = answer_logprobs(model, processor, row, blank, reference)
        tv_blank.append(_tv(lp_true[0], lp_blank[0], mask[0]))
        if partner is not None:
            swapped = [im.resize(own.size) for im, own in zip(partner["images"], row["images"])]
            lp_swap, _, _ = answer_logprobs(model, processor, row, swapped, reference)
            tv_swap.append(_tv(lp_true[0], lp_swap[0], mask[0]))
        for k in range(len(row["segment_labels"])):
            cands = _candidates(rows, i, k, distractors, rng, render)
            if cands is None:
                continue
            chances.append(1.0 / len(cands))
            got = []
            for images in (row["images"], blank):
                lp, m, tgt = answer_logprobs(model, processor, row, images, cands)
                scores = (lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) * m).sum(-1)
                got.append(_rank_credit(scores))
            credit_true.setdefault(k, []).append(got[0])
            credit_blank.setdefault(k, []).append(got[1])
            pairs.append(got)
    if not tv_swap:
        raise ValueError("no two sampled rows have the same number of images: nothing to swap")
    swap = torch.cat(tv_swap)
    n = len(pairs)
    acc_true = sum(p[0] for p in pairs) / n if n else float("nan")
    acc_blank = sum(p[1] for p in pairs) / n if n else float("nan")
    # McNemar on rounded outcomes (fractional tie credit counts as right when >= 0.5).
    b = sum(1 for t, z in pairs if t >= 0.5 > z)
    c = sum(1 for t, z in pairs if z >= 0.5 > t)
    p_value = binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
    passed = bool(n and (acc_true - acc_blank) >= min_gain and p_value < alpha)
    keys = sorted(credit_true)
    return SightReport(
        n_rows=len(rows),
        n_segments=n,
        tv_swap=float(swap.mean()),
        tv_swap_max=float(swap.max()),
        tv_blank=float(torch.cat(tv_blank).mean()),
        acc_true=acc_true,
        acc_blank=acc_blank,
        chance=sum(chances) / len(chances) if chances else 1.0 / (distractors + 1),
        mcnemar_p=float(p_value),
        min_gain=min_gain,
        alpha=alpha,
        passed=passed,
        per_segment_true=[sum(credit_true[k]) / len(credit_true[k]) for k in keys],
        per_segment_blank=[sum(credit_blank[k]) / len(credit_blank[k]) for k in keys],
    )


__all__ = ["BLANK_RGB", "SightReport", "answer_logprobs", "blank_like", "check_sight"]
