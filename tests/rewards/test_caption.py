"""BLEU-n and CIDEr-D per segment: hand-computed values, pycocoevalcap agreement, batch
independence, and model text that must never raise."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocoevalcap.cider.cider import Cider

from segrl.rewards import CiderD, bleu, cider_d_pycoco, make_segment_reward, tokenize

CAPTIONS = [
    ["a red car parked on the street", "a red car next to the road"],
    ["two dogs play with a ball in the park"],
    ["a man rides a bicycle down a hill", "a cyclist going down a steep hill"],
    ["a plate of pasta with tomato sauce"],
    ["the bar chart shows sales rising from 2019 to 2021"],
    ["a cat sleeps on a sofa", "a grey cat asleep on the couch"],
]
PREDICTIONS = [
    "a red car parked on a road",
    "dogs playing in a park",
    "a man on a bike",
    "a plate of pasta with tomato sauce",
    "sales fall in the chart",
    "a cat on a sofa",
]


def test_tokenize():
    expected = ["the", "x-axis", "shows", "0.16", "log", "right"]
    assert tokenize("The x-axis shows 0.16 (log), right?") == expected
    assert tokenize("Costs: $3 + 17.5%!") == ["costs", "$", "3", "+", "17.5", "%"]
    assert tokenize("\u201cQuoted\u201d \u2014 done\u2026") == ["quoted", "done"]
    assert tokenize("") == [] and tokenize(" ... !? ") == []


# ----------------------------------------------------------------------------------- BLEU


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bleu_of_identical_pair_is_one(n):
    (score,) = bleu(["A red car parked on the street."], [["a red car parked on the street"]], n=n)
    assert score == pytest.approx(1.0, abs=1e-9)


def test_bleu_hand_computed():
    # pred "the cat sat on the mat" vs ref "the cat is on the mat" (6 tokens each, BP = 1):
    #   unigrams: the x2 (clipped 2), cat, sat (0), on, mat -> p1 = 5/6
    #   bigrams:  the-cat, cat-sat, sat-on, on-the, the-mat; matches the-cat, on-the, the-mat -> p2 = 3/5
    #   trigrams: only on-the-mat matches -> p3 = 1/4;  no 4-gram matches -> p4 = 0
    #   BLEU-1 = 5/6, BLEU-2 = sqrt(5/6 * 3/5) = sqrt(1/2), BLEU-3 = (5/6 * 3/5 * 1/4)^(1/3) = 1/2
    pred, refs = ["the cat sat on the mat"], [["the cat is on the mat"]]
    assert bleu(pred, refs, n=1)[0] == pytest.approx(5 / 6, abs=1e-8)
    assert bleu(pred, refs, n=2)[0] == pytest.approx(math.sqrt(0.5), abs=1e-8)
    assert bleu(pred, refs, n=3)[0] == pytest.approx(0.5, abs=1e-8)
    # BLEU-4 only has pycocoevalcap's tiny = 1e-15 for p4: (1/8 * 1e-15/3)^(1/4) ~ 8e-5
    assert bleu(pred, refs, n=4)[0] == pytest.approx((1 / 8 * 1e-15 / 3) ** 0.25, rel=1e-3)


def test_bleu_brevity_penalty_hand_computed():
    # pred "the cat" (c = 2) vs ref of r = 6 tokens: p1 = p2 = 1, BP = exp(1 - r/c) = exp(-2)
    pred, refs = ["the cat"], [["the cat sat on the mat"]]
    assert bleu(pred, refs, n=1)[0] == pytest.approx(math.exp(-2), abs=1e-8)
    assert bleu(pred, refs, n=2)[0] == pytest.approx(math.exp(-2), abs=1e-8)


def test_bleu_uses_the_closest_reference_length():
    # pred "a b c" (c = 3); refs of 2 and 5 tokens: the closest is 2 < c, so BP = 1, and every
    # unigram is in some reference -> BLEU-1 = 1. ("average" length 3.5 would give BP = 0.846.)
    assert bleu(["a b c"], [["a b", "a b c d e"]], n=1)[0] == pytest.approx(1.0, abs=1e-9)


def test_bleu_zero_overlap_and_empty_prediction():
    assert bleu(["dogs run fast"], [["a red car parked"]], n=1)[0] < 1e-12
    assert bleu(["dogs run fast"], [["a red car parked"]], n=4)[0] < 1e-12
    assert bleu(["", "!!!"], [["a red car"], ["a red car"]], n=2) == [0.0, 0.0]


def test_bleu_unscorable_references_are_none():
    assert bleu(["a car", "a car", "a car", "a car"], [[], [""], ["  ", "..."], ["a car"]], n=1) == [
        None, None, None, pytest.approx(1.0, abs=1e-9)]


def test_bleu_is_per_pair_whatever_the_batch():
    batch = bleu(PREDICTIONS, CAPTIONS, n=4)
    alone = [bleu([p], [r], n=4)[0] for p, r in zip(PREDICTIONS, CAPTIONS)]
    assert batch == pytest.approx(alone, abs=1e-12)
    assert batch[3] == pytest.approx(1.0, abs=1e-9)  # the identical caption


def test_bleu_bad_calls_raise():
    for n in (0, 5, 2.0):
        with pytest.raises(ValueError, match="n must be"):
            bleu(["a"], [["a"]], n=n)
    with pytest.raises(ValueError, match="1 predictions but 2"):
        bleu(["a"], [["a"], ["b"]])
    with pytest.raises(TypeError):
        bleu(["a"], ["a"])


# -------------------------------------------------------------------------------- CIDEr-D


def _pycoco_reference(preds, refs):
    """pycocoevalcap's Cider on our tokenisation, called directly (df from this very set)."""
    gts = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(tokenize(p))] for i, p in enumerate(preds)}
    return [float(s) for s in Cider().compute_score(gts, res)[1]]


def test_cider_d_with_the_batch_as_corpus_equals_pycocoevalcap():
    expected = _pycoco_reference(PREDICTIONS, CAPTIONS)
    assert CiderD(CAPTIONS)(PREDICTIONS, CAPTIONS) == pytest.approx(expected, abs=1e-9)
    assert cider_d_pycoco(PREDICTIONS, CAPTIONS) == pytest.approx(expected, abs=1e-9)
    assert max(expected) > 1.0  # a real spread of values, not all zeros


def test_cider_d_hand_computed_identical_captions():
    # Every n-gram below occurs in fewer than all N = 3 documents, so every idf > 0 and an
    # identical caption has cosine 1 at each order that exists; the length penalty is 1.
    # 3 tokens: orders 1-3 exist, no 4-gram -> 10 * (1 + 1 + 1 + 0) / 4 = 7.5. 4 tokens -> 10.
    corpus = [["a red car parked"], ["a blue bird"], ["two dogs"]]
    metric = CiderD(corpus)
    assert metric(["a red car", "a red car parked"], [["a red car"], ["a red car parked"]]) == pytest.approx(
        [7.5, 10.0], abs=1e-9)


def test_cider_d_orders_identical_partial_unrelated():
    ref = [["a red car parked on the street"]]
    metric = CiderD(CAPTIONS)
    same, partial, unrelated = metric(
        ["a red car parked on the street", "a red car on a road", "two dogs play"], ref * 3)
    assert same > partial > unrelated
    assert unrelated == 0.0 and partial > 0.0


def test_cider_d_empty_prediction_and_unscorable_references():
    metric = CiderD(CAPTIONS)
    scores = metric(["", "a car", "a car", "a car"], [["a red car"], [], [""], ["?!"]])
    assert scores == [0.0, None, None, None]
    assert metric([], []) == []


def test_cider_d_is_per_pair_with_fixed_df_unlike_pycocoevalcap():
    metric = CiderD(CAPTIONS)
    batch = metric(PREDICTIONS, CAPTIONS)
    alone = [metric([p], [r])[0] for p, r in zip(PREDICTIONS, CAPTIONS)]
    assert batch == pytest.approx(alone, abs=1e-12)
    # pycocoevalcap's own df depends on the batch: the same pair scores differently alone
    assert cider_d_pycoco(PREDICTIONS[:1], CAPTIONS[:1])[0] != pytest.approx(
        cider_d_pycoco(PREDICTIONS, CAPTIONS)[0], abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cider_d_chunks_when_the_batch_outnumbers_the_corpus(seed):
    rng = random.Random(seed)
    corpus = CAPTIONS[:2]  # N_docs = 2: a batch of 9 pairs is scored in chunks of 2
    idx = [rng.randrange(len(CAPTIONS)) for _ in range(9)]
    preds = [PREDICTIONS[rng.randrange(len(PREDICTIONS))] for _ in idx]
    refs = [CAPTIONS[i] for i in idx]
    metric = CiderD(corpus)
    assert metric(preds, refs) == pytest.approx([metric([p], [r])[0] for p, r in zip(preds, refs)], abs=1e-12)


def test_cider_d_does_not_grow_its_document_frequencies():
    metric = CiderD(CAPTIONS)
    before = dict(metric.document_frequency)
    metric(["completely novel words never seen before"], [["a red car"]])
    assert dict(metric.document_frequency) == before


def test_cider_d_bad_corpus_raises():
    with pytest.raises(ValueError, match="no document with a token"):
        CiderD([[], [""], ["..."]])
    with pytest.raises(TypeError, match="list of strings"):
        CiderD(["a red car"])  # a list of strings, not of reference lists
    with pytest.raises(ValueError, match="sigma"):
        CiderD(CAPTIONS, sigma=0.0)


def test_registry_builds_caption_metrics():
    b2 = make_segment_reward("bleu2", reference_corpus=CAPTIONS)
    assert b2.__name__ == "bleu2"
    (score,) = b2(["the cat sat on the mat"], [["the cat is on the mat"]])
    assert score == pytest.approx(math.sqrt(0.5), abs=1e-8)
    cider = make_segment_reward("cider_d", reference_corpus=CAPTIONS)
    assert cider(PREDICTIONS, CAPTIONS) == pytest.approx(CiderD(CAPTIONS)(PREDICTIONS, CAPTIONS), abs=1e-12)
    with pytest.raises(ValueError, match="reference_corpus"):
        make_segment_reward("cider_d")
    with pytest.raises(TypeError):
        make_segment_reward("bleu4", n=2)


HOSTILE = ["", " ", "\x00\ufffd\U0001f600", "a " * 5000, "(" * 2000, "car car car car car car car",
           "Ünïcödé ß 汽车"]


@pytest.mark.parametrize("name", ["bleu1", "bleu4", "cider_d"])
def test_hostile_predictions_score_in_range(name):
    metric = make_segment_reward(name, reference_corpus=CAPTIONS)
    hi = 10.0 if name == "cider_d" else 1.0
    scores = metric(HOSTILE, [CAPTIONS[0]] * len(HOSTILE))
    assert all(isinstance(s, float) and 0.0 <= s <= hi + 1e-9 for s in scores)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=4))
def test_any_prediction_scores_in_range(preds):
    refs = [CAPTIONS[i % len(CAPTIONS)] for i in range(len(preds))]
    for s in bleu(preds, refs, n=4):
        assert 0.0 <= s <= 1.0 + 1e-9
    for s in CiderD(CAPTIONS)(preds, refs):
        assert 0.0 <= s <= 10.0 + 1e-9
