"""Per-segment ROUGE-L, wrapping pycocoevalcap 1.2's ``Rouge.calc_score``.

ROUGE-L (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of Summaries", section 3.1) as
the coco-caption toolkit computes it (``pycocoevalcap/rouge/rouge.py``): for a candidate c and
references r_1..r_m (whitespace-split tokens), with ``LCS`` the longest common subsequence,

    P = max_j LCS(c, r_j) / |c|,   R = max_j LCS(c, r_j) / |r_j|   (maxima taken separately)
    ROUGE-L = (1 + beta^2) P R / (R + beta^2 P),   beta = 1.2,   0 if P or R is 0.

The maxima of P and R may come from different references; this is the toolkit's definition,
kept as it is. Tokens are :func:`segrl.rewards.caption.tokenize`'s (as for BLEU, CIDEr-D and
METEOR), joined by single spaces so the library's ``split(" ")`` recovers them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycocoevalcap.rouge.rouge import Rouge

from segrl.rewards.accuracy import prepare_pairs
from segrl.rewards.caption import tokenize

_ROUGE = Rouge()  # stateless apart from beta = 1.2


def rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]], **kwargs) -> list[float | None]:
    """ROUGE-L F-measure (beta = 1.2) of each (prediction, references) pair.

    Each pair is scored on its own (the score does not depend on the rest of the batch);
    a pair repeated in the batch (identical tokens), common among a group's rollouts, is
    computed once.

    Args:
        predictions: N texts (a non-string counts as empty).
        references: N lists of reference texts. **kwargs: ignored.

    Returns:
        N scores in [0, 1]: ``None`` where no reference has a token; ``0.0`` where the
        prediction has none.

    Raises:
        ValueError: lengths differ. TypeError: a pair's references are a bare string.
    """
    preds, refs = prepare_pairs(predictions, references, "rouge_l")
    out: list[float | None] = []
    seen: dict[tuple[str, tuple[str, ...]], float] = {}
    for p, rs in zip(preds, refs):
        rt = tuple(t for t in (" ".join(tokenize(r)) for r in rs) if t)
        if not rt:
            out.append(None)
            continue
        h = " ".join(tokenize(p))
        if not h:
            out.append(0.0)
            continue
        key = (h, rt)
        if key not in seen:
            seen[key] = float(_ROUGE.calc_score([h], list(rt)))
        out.append(seen[key])
    return out


__all__ = ["rouge_l"]
