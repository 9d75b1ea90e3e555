"""Per-segment rewards by name, and the format reward.

A per-segment metric has one batched signature::

    metric(predictions: list[str], references: list[list[str]], **kwargs) -> list[float | None]

one score per (segment text, its references) pair; ``None`` only when the *reference*
cannot be scored, never an exception on model text. :data:`SEGMENT_REWARDS` maps a name to
a *factory* that builds such a metric (``reference_corpus`` is offered to every factory;
only ``cider_d`` uses it); :func:`make_segment_reward` is the one entry point.

Names: ``accuracy`` (relaxed chart-QA accuracy, :mod:`segrl.rewards.accuracy`),
``bleu1`` .. ``bleu4`` (sentence BLEU-n) and ``cider_d`` (CIDEr-D with corpus document
frequencies), both in :mod:`segrl.rewards.caption`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from segrl.registry import Registry
from segrl.rewards.accuracy import DEFAULT_ABS_TOL, DEFAULT_REL_TOL, accuracy, check_tolerances
from segrl.rewards.caption import CiderD, bleu, cider_d_pycoco, tokenize
from segrl.rewards.format import format_reward

SegmentMetric = Callable[..., list]
"""``(predictions: list[str], references: list[list[str]], **kw) -> list[float | None]``."""

Corpus = Sequence[Sequence[str]]

SEGMENT_REWARDS: Registry[Callable[..., SegmentMetric]] = Registry("segment reward")


def _bind(fn: Callable[..., list], name: str, **bound) -> SegmentMetric:
    """``fn`` with keyword arguments fixed, named ``name`` (the scorer's error messages use it)."""

    def metric(predictions, references, **kwargs):
        return fn(predictions, references, **{**kwargs, **bound})

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = f"{name}: {fn.__name__}(predictions, references) with {bound or 'defaults'}."
    return metric


@SEGMENT_REWARDS.register("accuracy")
def _accuracy_factory(
    *,
    reference_corpus: Corpus | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
) -> SegmentMetric:
    """Relaxed accuracy (``reference_corpus`` unused). Raises ``ValueError`` on a bad tolerance."""
    check_tolerances(rel_tol, abs_tol)
    return _bind(accuracy, "accuracy", rel_tol=rel_tol, abs_tol=abs_tol)


def _bleu_factory(n: int) -> Callable[..., SegmentMetric]:
    """Factory of sentence BLEU-``n`` (``reference_corpus`` unused)."""

    def factory(*, reference_corpus: Corpus | None = None) -> SegmentMetric:
        return _bind(bleu, f"bleu{n}", n=n)

    factory.__name__ = f"_bleu{n}_factory"
    return factory


for _n in (1, 2, 3, 4):
    SEGMENT_REWARDS.add(f"bleu{_n}", _bleu_factory(_n))


@SEGMENT_REWARDS.register("cider_d")
def _cider_d_factory(
    *, reference_corpus: Corpus | None = None, sigma: float = 6.0, n: int = 4
) -> SegmentMetric:
    """CIDEr-D with df from ``reference_corpus``.

    Raises:
        ValueError: ``reference_corpus`` is None or has no document with a token.
    """
    if reference_corpus is None:
        raise ValueError(
            "cider_d needs reference_corpus= (the training split's segment references) for its "
            "document frequencies; got None"
        )
    return CiderD(reference_corpus, sigma=sigma, n=n)


def make_segment_reward(name: str, *, reference_corpus: Corpus | None = None, **kwargs) -> SegmentMetric:
    """A ready per-segment metric by registry name.

    Args:
        name: ``accuracy``, ``bleu1`` .. ``bleu4`` or ``cider_d``.
        reference_corpus: one reference list per training segment (required by ``cider_d``,
            ignored by the others).
        **kwargs: the metric's options (``rel_tol``/``abs_tol`` for accuracy, ``sigma``/``n``
            for cider_d); an unknown option raises ``TypeError``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        ValueError: ``cider_d`` without a usable corpus, or an invalid option value.
    """
    return SEGMENT_REWARDS.get(name)(reference_corpus=reference_corpus, **kwargs)


__all__ = [
    "SEGMENT_REWARDS",
    "CiderD",
    "SegmentMetric",
    "accuracy",
    "bleu",
    "cider_d_pycoco",
    "format_reward",
    "make_segment_reward",
    "tokenize",
]


# ---------------------------------------------------------------- METEOR, ROUGE-L, BERTScore
# Appended registrations. METEOR and BERTScore hold a Java process / a model: their factories
# return this process's shared instance, so the JVM starts and the model loads once however
# many rewards, trainers or evaluators ask for them.


@SEGMENT_REWARDS.register("meteor")
def _meteor_factory(*, reference_corpus: Corpus | None = None) -> SegmentMetric:
    """METEOR 1.5 from one long-lived Java process (``reference_corpus`` unused).

    The process starts at the first call; Java missing raises ``RuntimeError`` there.
    """
    from segrl.rewards.meteor import shared_meteor

    return shared_meteor()


@SEGMENT_REWARDS.register("rouge_l")
def _rouge_l_factory(*, reference_corpus: Corpus | None = None) -> SegmentMetric:
    """ROUGE-L F-measure, beta = 1.2 (``reference_corpus`` unused)."""
    from segrl.rewards.rouge import rouge_l

    return _bind(rouge_l, "rouge_l")


@SEGMENT_REWARDS.register("bertscore")
def _bertscore_factory(
    *,
    reference_corpus: Corpus | None = None,
    model_type: str | None = None,
    num_layers: int | None = None,
    batch_size: int = 64,
    idf: bool = False,
    lang: str = "en",
    device: str | None = None,
) -> SegmentMetric:
    """BERTScore F1 (default model: the packaged MiniLM, offline).

    With ``idf=True`` the idf weights come from ``reference_corpus`` (every reference text).

    Raises:
        ValueError: ``idf=True`` without ``reference_corpus``; see :class:`segrl.rewards.bertscore.BERTScore`.
        RuntimeError: the default model's package is missing or its hash differs.
    """
    from segrl.rewards.bertscore import shared_bertscore

    idf_sents = None
    if idf:
        if reference_corpus is None:
            raise ValueError("bertscore: idf=True needs reference_corpus= (the training references)")
        idf_sents = [str(r) for refs in reference_corpus for r in refs if r is not None and str(r).strip()]
    return shared_bertscore(model_type, num_layers, batch_size, idf, lang, idf_sents=idf_sents, device=device)


@SEGMENT_REWARDS.register("iou")
def _iou_factory(*, reference_corpus: Corpus | None = None) -> SegmentMetric:
    """Per-object box IoU of a grounding answer's ``Object k`` segment with target k (``reference_corpus``
    unused; :func:`segrl.rewards.grounding.object_iou`)."""
    from segrl.rewards.grounding import object_iou

    return _bind(object_iou, "iou")
