"""``structure_weight``: SRPO's structure score as a term of every arm's reward (issue 16, item 4).

Hand-computed rewards; the grpo arm and the srpo arm must get the same R on the same completions.
"""

import pytest
import torch

from segrl.models import load_policy
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.drseg import DrSegConfig
from segrl.trainers.segment_grpo import SegmentGRPOTrainer
from segrl.trainers.srpo import SRPOConfig, SRPOTrainer

COMMON = dict(num_generations=3, per_device_train_batch_size=3, max_completion_length=8, report_to="none",
              use_cpu=True, bf16=False, save_strategy="no")

TEXTS = [
    # complete, clean structure; the answer "red" scores 3/10 under text_length
    "<perception>red</perception>\n<reasoning>so</reasoning>\nAnswer 1: red",
    # no structure
    "Answer 1: blue",
    # perception only (structure 0.5); its inner "Answer 1: x" is blanked, so it is no answer and no duplicate
    "<perception>\nAnswer 1: x\n</perception>\nAnswer 1: blue",
]
# R = text_length(answer) + 0.5 * format + 0.5 * structure
SEGMENT = [0.3, 0.4, 0.4]
FORMAT = [1.0, 1.0, 1.0]
STRUCTURE = [1.0, 0.0, 0.5]
R = [s + 0.5 * f + 0.5 * t for s, f, t in zip(SEGMENT, FORMAT, STRUCTURE)]  # [1.3, 0.9, 1.15]


def text_length(predictions, references):
    return [min(len(p), 10) / 10 for p in predictions]


def make(cls, config, tmp_path, model_path, data, **kw):
    model, processor = load_policy(str(model_path))
    args = config(output_dir=str(tmp_path / cls.__name__), **COMMON, **kw)
    return cls(model=model, segment_metric=text_length, args=args, train_dataset=data, processing_class=processor)


@pytest.fixture(scope="module")
def rows(colour_data):
    return [colour_data[i] for i in (0, 2, 4)]  # one image, one label ("Answer 1") each


def test_grpo_and_srpo_get_the_same_hand_computed_reward_with_a_structure_term(
        tmp_path, colour_tiny_model, colour_data, rows):
    grpo = make(SegmentGRPOTrainer, SegmentGRPOConfig, tmp_path, colour_tiny_model, colour_data, algo="grpo",
                structure_weight=0.5)
    srpo = make(SRPOTrainer, SRPOConfig, tmp_path, colour_tiny_model, colour_data, algo="srpo",
                structure_weight=0.5, srpo_instruction="")
    ids = [[1, 2]] * 3
    a, b = grpo.score_batch(rows, TEXTS, ids), srpo.score_batch(rows, TEXTS, ids)
    for scored in (a, b):
        assert scored.holistic.tolist() == pytest.approx(R)
        assert scored.rollout_terms.tolist() == pytest.approx([0.5 * f + 0.5 * t for f, t in zip(FORMAT, STRUCTURE)])
        assert torch.allclose(scored.reward_columns, torch.tensor([SEGMENT, FORMAT, STRUCTURE]).T)
    assert torch.equal(a.holistic, b.holistic) and torch.equal(a.scores.rewards, b.scores.rewards)
    # TRL weighs the columns with the same weights, so its logged reward is R too
    assert grpo.reward_weights.tolist() == [1.0, 0.5, 0.5]
    assert [f.__name__ for f in grpo.reward_funcs] == ["segments", "format", "structure"]
    assert grpo.reward_funcs[2](TEXTS, [r["segment_labels"] for r in rows]) == STRUCTURE


def test_without_a_structure_term_grpo_scores_the_text_as_written(tmp_path, colour_tiny_model, colour_data, rows):
    """Default (0): no structure column; the third completion's inner label counts (duplicate: format 0.5)."""
    grpo = make(SegmentGRPOTrainer, SegmentGRPOConfig, tmp_path, colour_tiny_model, colour_data, algo="grpo")
    scored = grpo.score_batch(rows, TEXTS, [[1, 2]] * 3)
    assert scored.reward_columns.shape == (3, 2)
    assert scored.reward_columns[:2, 1].tolist() == [1.0, 1.0] and scored.reward_columns[2, 1].item() == 0.5


def test_structure_weight_is_validated_and_refused_where_it_is_not_read():
    with pytest.raises(ValueError, match="structure_weight must be >= 0"):
        SegmentGRPOConfig(output_dir="x", algo="grpo", structure_weight=-0.1, **COMMON)
    with pytest.raises(ValueError, match="does not use structure_weight"):
        DrSegConfig(output_dir="x", structure_weight=0.5, **COMMON)
