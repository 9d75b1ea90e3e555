"""The batch segment scorer: one metric call per batch, missing = 0, unscorable = masked, errors loud."""

import pytest
import torch

from segrl.rewards import make_segment_reward
from segrl.rewards.scorer import RewardError, score_segments


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, predictions, references, **kw):
        self.calls += 1
        return self.fn(predictions, references)


def test_scores_missing_and_padding():
    acc = Counting(make_segment_reward("accuracy"))
    completions = ["Answer 1: 3\nAnswer 2: red", "Answer 2: blue", "Answer 1: (B)"]
    labels = [["Answer 1", "Answer 2"], ["Answer 1", "Answer 2"], ["Answer 1"]]
    refs = [[["3"], ["Red"]], [["3"], ["Red"]], [["B"]]]
    s = score_segments(completions, labels, refs, acc)
    assert acc.calls == 1  # the whole batch in one call
    assert torch.equal(s.rewards, torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]]))
    # Row 1 did not write Answer 1: reward 0 but still in the statistics (mask True);
    # row 2 has one segment: k=1 is padding (mask False).
    assert s.mask.tolist() == [[True, True], [True, True], [True, False]]
    assert s.present.tolist() == [[True, True], [False, True], [True, False]]
    torch.testing.assert_close(s.mean_reward(), torch.tensor([1.0, 0.0, 1.0]))


def test_unscorable_reference_masks_the_segment_for_every_rollout():
    acc = make_segment_reward("accuracy")
    s = score_segments(["Answer 1: x\nAnswer 2: 5", "Answer 2: 5"], [["Answer 1", "Answer 2"]] * 2,
                       [[[""], ["5"]]] * 2, acc)
    assert s.mask.tolist() == [[False, True], [False, True]]
    assert s.rewards.tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_metric_failures_are_loud_not_zero():
    def boom(predictions, references):
        raise ZeroDivisionError("bad parser")

    with pytest.raises(RewardError, match="boom.*ZeroDivisionError"):
        score_segments(["Answer 1: x"], [["Answer 1"]], [[["x"]]], boom)
    with pytest.raises(RewardError, match="returned 0 scores for 1"):
        score_segments(["Answer 1: x"], [["Answer 1"]], [[["x"]]], lambda p, r: [])
    with pytest.raises(RewardError, match="not a number"):
        score_segments(["Answer 1: x"], [["Answer 1"]], [[["x"]]], lambda p, r: ["oops"])


def test_nonfinite_scores_are_kept_and_flagged_not_replaced():
    labels, refs = [["Answer 1", "Answer 2"]] * 2, [[["x"], ["y"]]] * 2
    completions = ["Answer 1: x\nAnswer 2: y", "Answer 1: x"]  # row 1 misses segment 2
    scores = score_segments(completions, labels, refs, lambda p, r: [float("nan"), 1.0, 0.5, 0.0])
    assert torch.isnan(scores.rewards[0, 0]) and scores.rewards[0, 1] == 1.0 and scores.rewards[1, 0] == 0.5
    assert scores.nonfinite.tolist() == [[True, False], [False, False]]
    mean = scores.mean_reward()
    assert torch.isnan(mean[0]) and mean[1] == 0.25


def test_input_length_mismatches_raise():
    with pytest.raises(ValueError, match="2 completions, 1 label lists"):
        score_segments(["a", "b"], [["Answer 1"]], [[["x"]]], make_segment_reward("accuracy"))
    with pytest.raises(ValueError, match="row 0: 1 segment_labels but 2 segment_references"):
        score_segments(["a"], [["Answer 1"]], [[["x"], ["y"]]], make_segment_reward("accuracy"))


def test_score_holistic_scores_the_joined_answer_against_the_joined_reference():
    from segrl.rewards.scorer import joined_answer, joined_references, score_holistic
    from segrl.segments import parse_segments

    seen = []

    def exact(predictions, references):  # 1 when the whole answer equals one whole reference
        seen.append((list(predictions), [list(r) for r in references]))
        return [None if r == ["?"] else float(p in r) for p, r in zip(predictions, references)]

    labels = ["Panel 1", "Panel 2"]
    parsed = [parse_segments(t, labels) for t in ("Panel 1: a red box\nPanel 2: a cat",
                                                  "Panel 1: a red box\nPanel 1: dup\nPanel 2: a dog",
                                                  "Panel 2: a cat", "Panel 1: x")]
    refs = [[["a red box", "red box"], ["a cat"]]] * 3 + [[["?"]]]
    assert joined_references(refs[0]) == ["a red box\na cat", "red box\na cat"]
    assert joined_answer(parsed[1]) == "a red box\na dog"  # labels and the duplicate's text left out
    H = score_holistic(parsed, refs, exact)
    assert H[:3].tolist() == [1.0, 0.0, 0.0] and torch.isnan(H[3])  # unscorable whole reference: NaN
    assert len(seen) == 1 and len(seen[0][0]) == 4  # one batched call
    with pytest.raises(RewardError, match="holistic reward"):
        score_holistic(parsed, refs, lambda p, r: [1.0])
