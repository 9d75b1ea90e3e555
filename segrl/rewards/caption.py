"""Per-segment caption metrics: sentence BLEU-n and CIDEr-D, wrapping pycocoevalcap 1.2.

The n-gram statistics are pycocoevalcap's (``bleu/bleu_scorer.py``: Papineni et al., 2002,
"BLEU", as packaged by the coco-caption toolkit, Chen et al., 2015; ``cider/cider_scorer.py``:
Vedantam et al., 2015, "CIDEr", the CIDEr-D variant with clipped tf-idf and a Gaussian length
penalty, sigma = 6). This module only tokenises, batches, and fixes where the CIDEr-D
document frequencies come from. Known library details, kept as they are:

* BLEU: per-sentence scores add ``tiny = 1e-15`` / ``small = 1e-9`` to the n-gram counts
  (no other smoothing), so a sentence with no matching 4-gram has BLEU-4 near 0 (~1e-4 to
  1e-3), not exactly 0; the brevity penalty uses the reference closest in length.
* CIDEr-D: the Gaussian penalty's "length" is the number of *bigrams* (``counts2vec``
  counts ``n == 1``), the score is 10 x the mean over n of the clipped cosine similarity,
  averaged over the references; ``idf = log(N_docs) - log(max(1, df))``.

Tokenisation: coco-caption runs Stanford's PTBTokenizer (Java, slow) and then drops
punctuation tokens. We use :func:`tokenize` instead: lowercase; tokens are runs of word
characters, keeping ``'``, ``.`` or ``-`` between two word characters (``0.16``, ``x-axis``,
``don't`` stay whole); any other non-space character is a token of its own; quotes,
brackets and ``. , ; : ! ? -`` (and their Unicode forms) are dropped, as coco-caption drops
PTB's punctuation tokens. Scores are therefore close to, not identical with, the official
PTB-tokenised numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider import cider_scorer
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.cider.cider_scorer import CiderScorer

from segrl.rewards.accuracy import prepare_pairs

_TOKEN = re.compile(r"\w+(?:['.\-\u2019]\w+)*|[^\w\s]")
_DROPPED = frozenset("'\"`()[]{}.,;:!?-") | frozenset(
    "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00ab\u00bb"  # curly quotes, dashes, ellipsis, guillemets
)


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens of ``text``, punctuation dropped (rules in the module docstring).

    Example: ``"The x-axis shows 0.16 (log), right?"`` ->
    ``["the", "x-axis", "shows", "0.16", "log", "right"]``.
    """
    return [t for t in _TOKEN.findall(text.lower()) if t not in _DROPPED]


def _tokenized_pairs(
    predictions: Sequence[str], references: Sequence[Sequence[str]], metric: str
) -> tuple[list[int], list[str], list[list[str]]]:
    """Tokenise a batch; keep the pairs that have at least one reference with a token.

    Returns:
        ``(index, preds, refs)``: positions of the scorable pairs in the batch, and their
        prediction / references as space-joined token strings (what pycocoevalcap splits on).
    """
    preds, refs = prepare_pairs(predictions, references, metric)
    index, out_p, out_r = [], [], []
    for i, (p, rs) in enumerate(zip(preds, refs)):
        toks = [" ".join(tokenize(r)) for r in rs]
        toks = [t for t in toks if t]
        if toks:
            index.append(i)
            out_p.append(" ".join(tokenize(p)))
            out_r.append(toks)
    return index, out_p, out_r


def _scatter(n: int, index: list[int], values: Sequence[float]) -> list[float | None]:
    """A length-``n`` list with ``values`` at ``index`` and ``None`` elsewhere."""
    out: list[float | None] = [None] * n
    for i, v in zip(index, values):
        out[i] = float(v)
    return out


def bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, **kwargs
) -> list[float | None]:
    """Sentence-level BLEU-n of each (prediction, references) pair, via pycocoevalcap's BleuScorer.

    One ``BleuScorer`` holds the whole batch; ``compute_score(option="closest")`` returns, per
    order k, the list of per-sentence scores ``(prod_{j<=k} p_j)^(1/k) * BP`` with the
    sentence's own modified precisions ``p_j`` and brevity penalty ``BP = exp(1 - r/c)`` if
    ``c < r`` (``c`` = prediction length, ``r`` = closest reference length) — independent of
    the other pairs in the batch. We return order ``n``'s list.

    Args:
        predictions: N texts. references: N lists of reference texts. n: 1 to 4.
        **kwargs: ignored.

    Returns:
        N scores in [0, 1]; ``None`` where no reference has a token.

    Raises:
        ValueError: ``n`` outside 1..4 (pycocoevalcap counts n-grams up to 4), lengths differ.
        TypeError: a pair's references are a bare string.
    """
    if not isinstance(n, int) or not 1 <= n <= 4:
        raise ValueError(f"bleu: n must be an int in 1..4, got {n!r}")
    index, preds, refs = _tokenized_pairs(predictions, references, f"bleu{n}")
    if not index:
        return [None] * len(predictions)
    scorer = BleuScorer(n=n)
    for p, rs in zip(preds, refs):
        scorer += (p, rs)
    _, per_pair = scorer.compute_score(option="closest", verbose=0)
    return _scatter(len(predictions), index, per_pair[n - 1])


class _DocumentFrequency(dict):
    """A df table that answers 0 for an unseen n-gram without storing it.

    ``CiderScorer.compute_cider`` reads ``self.document_frequency[ngram]``; with the library's
    ``defaultdict`` every unseen n-gram of every scored prediction would be inserted into the
    corpus table, which would grow for the whole training run.
    """

    def __missing__(self, key) -> float:
        return 0.0


class CiderD:
    """CIDEr-D with document frequencies fixed once, from a reference corpus.

    pycocoevalcap's ``Cider`` takes the df (and ``N_docs``) from the set it is asked to score,
    so on a small batch common words look rare and scores inflate (e.g. ~7 on three
    captions); in RL the batch changes every step, so the reward scale would too. Here the df
    comes from ``reference_corpus`` (the training references: one document per segment, as in
    coco-caption's "corpus" df mode of CIDEr-D) and stays fixed.

    How the library is reused: ``CiderScorer.compute_doc_freq`` builds the df from the
    corpus; scoring builds a ``CiderScorer`` with that df and calls its ``compute_cider``,
    which sets ``ref_len = log(len(self.crefs))``. So that this is ``log(N_docs)``, the
    scored references are padded with empty documents up to ``N_docs`` (``compute_cider``
    zips them with the predictions, so padding is never scored), in chunks of at most
    ``N_docs`` pairs.

    Args:
        reference_corpus: one list of reference texts per document; documents without a
            token are left out.
        sigma: standard deviation of the Gaussian length penalty (CIDEr-D: 6).
        n: largest n-gram order (CIDEr-D: 4).

    Raises:
        ValueError: no document in the corpus has a token; ``n < 1``; ``sigma <= 0``.
    """

    def __init__(self, reference_corpus: Sequence[Sequence[str]], sigma: float = 6.0, n: int = 4) -> None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"CiderD: n must be an int >= 1, got {n!r}")
        if not sigma > 0:
            raise ValueError(f"CiderD: sigma must be > 0, got {sigma!r}")
        _, _, docs = _tokenized_pairs([""] * len(reference_corpus), reference_corpus, "CiderD corpus")
        if not docs:
            raise ValueError("CiderD: the reference corpus has no document with a token")
        self.n, self.sigma, self.n_docs = n, float(sigma), len(docs)
        counter = CiderScorer(n=n, sigma=sigma)
        counter.crefs = [cider_scorer.cook_refs(refs, n) for refs in docs]
        counter.compute_doc_freq()
        self.document_frequency = _DocumentFrequency(counter.document_frequency)
        self.__name__ = "cider_d"

    def __call__(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]], **kwargs
    ) -> list[float | None]:
        """CIDEr-D of each pair against the corpus df.

        Returns:
            N scores >= 0 (at most 10); ``None`` where no reference has a token.

        Raises:
            ValueError: lengths differ. TypeError: a pair's references are a bare string.
        """
        index, preds, refs = _tokenized_pairs(predictions, references, "cider_d")
        scores: list[float] = []
        for lo in range(0, len(index), self.n_docs):
            scores.extend(self._score_chunk(preds[lo:lo + self.n_docs], refs[lo:lo + self.n_docs]))
        return _scatter(len(predictions), index, scores)

    def _score_chunk(self, preds: list[str], refs: list[list[str]]) -> list[float]:
        """``compute_cider`` on at most ``n_docs`` tokenised pairs, with the corpus df and ``log(N_docs)``."""
        scorer = CiderScorer(n=self.n, sigma=self.sigma)
        scorer.document_frequency = self.document_frequency
        scorer.ctest = [cider_scorer.cook_test(p, self.n) for p in preds]
        cooked = [cider_scorer.cook_refs(rs, self.n) for rs in refs]
        scorer.crefs = cooked + [[]] * (self.n_docs - len(cooked))
        return [float(s) for s in scorer.compute_cider()]


def cider_d_pycoco(
    predictions: Sequence[str], references: Sequence[Sequence[str]], **kwargs
) -> list[float | None]:
    """Plain pycocoevalcap ``Cider().compute_score``: df and ``N_docs`` from the scored pairs themselves.

    For comparison and tests (batch-dependent; use :class:`CiderD` as a reward). Same
    tokenisation as :class:`CiderD`; n = 4 and sigma = 6 (the library's ``cook_*`` count
    4-grams whatever ``Cider(n=...)`` says).

    Returns:
        N scores; ``None`` where no reference has a token (those pairs are not in the set).
    """
    index, preds, refs = _tokenized_pairs(predictions, references, "cider_d_pycoco")
    if not index:
        return [None] * len(predictions)
    gts = {k: rs for k, rs in enumerate(refs)}
    res = {k: [p] for k, p in enumerate(preds)}
    _, scores = Cider().compute_score(gts, res)
    return _scatter(len(predictions), index, list(scores))
