"""ROUGE-L per segment: hand-computed LCS values, a plain-loop reference, pycocoevalcap agreement."""

from __future__ import annotations

import random

import pytest
from pycocoevalcap.rouge.rouge import Rouge

from segrl.rewards import make_segment_reward, tokenize
from segrl.rewards.rouge import rouge_l

BETA2 = 1.2**2


def f_lcs(p: float, r: float) -> float:
    return (1 + BETA2) * p * r / (r + BETA2 * p) if p and r else 0.0


def test_identical_and_reordered():
    assert rouge_l(["The cat, sat!"], [["the cat sat"]]) == [1.0]
    # "cat the" vs "the cat": LCS 1 of 2 tokens each -> P = R = 1/2 -> F = 1/2
    assert rouge_l(["cat the"], [["the cat"]])[0] == pytest.approx(0.5, abs=1e-12)


def test_hand_computed_lcs():
    # pred "the cat sat on the mat" (6) vs ref "the cat is on the mat" (6): LCS "the cat on the mat" = 5
    assert rouge_l(["the cat sat on the mat"], [["the cat is on the mat"]])[0] == pytest.approx(5 / 6, abs=1e-12)
    # Different lengths: pred "a red car parked" (4) vs ref "a big red car parked outside" (6): LCS 4
    # P = 4/4, R = 4/6 -> F = 2.44 * (2/3) / (2/3 + 1.44) = 0.772151...
    got = rouge_l(["a red car parked"], [["a big red car parked outside"]])[0]
    assert got == pytest.approx(2.44 * (2 / 3) / (2 / 3 + 1.44), abs=1e-12)
    assert got == pytest.approx(0.7721518987, abs=1e-9)


def test_precision_and_recall_maxima_from_different_references():
    # pred "one two three four" (4 tokens)
    # ref A "one three" (2): LCS 2 -> P = 2/4, R = 2/2 = 1
    # ref B "two four five six seven eight" (6): LCS 2 -> P = 2/4, R = 2/6
    # P_max = 1/2, R_max = 1 -> F = 2.44 * 0.5 / (1 + 0.72) = 0.709302...
    got = rouge_l(["one two three four"], [["one three", "two four five six seven eight"]])[0]
    assert got == pytest.approx(2.44 * 0.5 / 1.72, abs=1e-12)
    # ref X "one two three four five six seven eight" (8): LCS 4 -> P = 1, R = 1/2 (F alone 0.629)
    # ref Y "one" (1): LCS 1 -> P = 1/4, R = 1 (F alone 0.449)
    # the toolkit takes P_max = 1 from X and R_max = 1 from Y: F = 1.0, above either reference's own F
    got = rouge_l(["one two three four"], [["one two three four five six seven eight", "one"]])[0]
    assert got == pytest.approx(1.0, abs=1e-12)
    assert f_lcs(1.0, 0.5) == pytest.approx(0.6289, abs=1e-4) and f_lcs(0.25, 1.0) == pytest.approx(0.4485, abs=1e-4)


def test_no_overlap_empty_prediction_and_unscorable_references():
    assert rouge_l(["dogs bark"], [["a cat sleeps"]]) == [0.0]
    assert rouge_l(["", "...", None], [["a cat"], ["a cat"], ["a cat"]]) == [0.0, 0.0, 0.0]
    assert rouge_l(["a cat", "a cat", "a cat"], [[], ["", "  ", None], ["?!"]]) == [None, None, None]
    assert rouge_l([], []) == []


def test_errors():
    with pytest.raises(ValueError, match="2 predictions but 1"):
        rouge_l(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match="list of strings"):
        rouge_l(["a"], ["a"])


def lcs_loop(a: list[str], b: list[str]) -> int:
    """Plain dynamic-programming LCS length, independent of pycocoevalcap's my_lcs."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_plain_loop_reference_and_pycocoevalcap(seed):
    rng = random.Random(seed)
    vocab = ["the", "a", "red", "blue", "car", "dog", "runs", "sits", "on", "in", "park", "street", "of"]
    preds, refs = [], []
    for _ in range(40):
        preds.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 15))))
        refs.append([" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 15))) for _ in range(rng.randint(1, 3))])
    got = rouge_l(preds, refs)
    gts = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(tokenize(p))] for i, p in enumerate(preds)}
    _, lib = Rouge().compute_score(gts, res)
    for i, (p, rs) in enumerate(zip(preds, refs)):
        c = tokenize(p)
        lcs = [lcs_loop(c, tokenize(r)) for r in rs]
        expected = f_lcs(max(x / len(c) for x in lcs), max(x / len(tokenize(r)) for x, r in zip(lcs, rs)))
        assert got[i] == pytest.approx(expected, abs=1e-12)
        assert got[i] == pytest.approx(float(lib[i]), abs=1e-12)
    # each pair scored on its own: the batch equals one-by-one, and repeated pairs agree
    assert got == [rouge_l([p], [r])[0] for p, r in zip(preds, refs)]
    assert rouge_l(preds + preds, refs + refs) == got + got


def test_registry_entry():
    metric = make_segment_reward("rouge_l", reference_corpus=[["unused"]])
    assert metric.__name__ == "rouge_l"
    assert metric(["the cat sat on the mat"], [["the cat is on the mat"]])[0] == pytest.approx(5 / 6, abs=1e-12)
