"""Format reward: fraction of labels present, halved when the labels are not written cleanly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segrl.rewards import format_reward
from segrl.rewards.format import format_score
from segrl.segments import format_answer

L4 = ["Answer 1", "Answer 2", "Answer 3", "Answer 4"]
PANELS = ["(a)", "(b)", "(c)"]

CASES = [
    # (completion, labels, expected)
    (format_answer(L4, ["2", "Red", "C", "0.16"]), L4, 1.0),  # all present, in order
    ("Answer 1: 2\nAnswer 3: C", L4, 0.5),  # 2 of 4, in order
    ("Answer 1: 2\nAnswer 2: Red\nAnswer 3: C", L4, 0.75),
    ("Answer 2: Red\nAnswer 1: 2\nAnswer 3: C\nAnswer 4: 0.16", L4, 0.5),  # all, out of order
    ("Answer 3: C\nAnswer 1: 2", L4, 0.25),  # 2 of 4, out of order: 0.5 * 0.5
    ("Answer 1: 2\nAnswer 1: 3\nAnswer 2: Red\nAnswer 3: C\nAnswer 4: 0", L4, 0.5),  # a duplicate
    ("Answer 1: 2\nAnswer 2: Red\nAnswer 3: C\nAnswer 4: 0\nAnswer 5: extra", L4, 0.5),  # unexpected label
    ("Answer 1:\nAnswer 2:\nAnswer 3:\nAnswer 4:", L4, 1.0),  # empty texts still count as present
    ("", L4, 0.0),
    ("   \n\t", L4, 0.0),
    ("The answers are 2, Red, C and 0.16.", L4, 0.0),  # labels only inside text
    ("\x00\ufffd}{)(*&^%$#@!", L4, 0.0),
    ("Answer 7: nope", L4, 0.0),  # nothing expected is present
    ("- **Answer 1:** 2\n- **Answer 2:** Red\n- **Answer 3:** C\n- **Answer 4:** 0", L4, 1.0),  # markdown
    ("(a) A red car.\n(b) A dog.\n(c) A cat.", PANELS, 1.0),
    ("(a) A red car.\n(c) A cat.", PANELS, pytest.approx(2 / 3)),
    ("Answer: 5", ["Answer"], 1.0),
]


@pytest.mark.parametrize("completion,labels,expected", CASES)
def test_format_cases(completion, labels, expected):
    assert format_reward([completion], [labels]) == [expected]


def test_batch_matches_single_calls():
    completions = [c[0] for c in CASES]
    labels = [c[1] for c in CASES]
    assert format_reward(completions, labels) == [format_score(c, lab) for c, lab in zip(completions, labels)]
    assert format_reward([], []) == []


def test_non_string_completion_scores_zero_and_extra_columns_are_ignored():
    extra = {"segment_references": [[["x"]] * 4] * 2, "prompts": None}
    assert format_reward([None, 3], [L4, L4], **extra) == [0.0, 0.0]


def test_data_bugs_raise():
    with pytest.raises(ValueError, match="2 completions but 1"):
        format_reward(["a", "b"], [L4])
    with pytest.raises(ValueError, match="empty"):
        format_reward(["Answer 1: x"], [[]])


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("Answer 1234:()abc-*\n x")), max_size=120))
def test_any_completion_scores_in_unit_interval(completion):
    (score,) = format_reward([completion], [L4])
    assert 0.0 <= score <= 1.0
    assert score in {k / 4 for k in range(5)} | {k / 8 for k in range(5)}
