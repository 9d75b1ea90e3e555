"""SRPO's structure: block finding, blanking before the answer parse, the graded structure reward."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segrl.rewards.srpo_format import blank_blocks, parse_structure, structure_reward
from segrl.segments import parse_segments

L2 = ["Answer 1", "Answer 2"]
P, R = "<perception>red; blue</perception>", "<reasoning>read them off</reasoning>"
ANSWERS = "Answer 1: red\nAnswer 2: blue"

CASES = [
    # (completion, expected structure reward)
    (f"{P}\n{R}\n{ANSWERS}", 1.0),  # clean
    (f"{P}{R}{ANSWERS}", 1.0),  # no line breaks: the labels follow blanked blocks on the same line
    (f"{P}\n{ANSWERS}", 0.5),  # reasoning missing
    (f"<perception>  \n </perception>\n{R}\n{ANSWERS}", 0.5),  # empty perception
    (f"{R}\n{P}\n{ANSWERS}", 0.5),  # both, out of order: 1.0 * 0.5
    (f"{P}\n{P}\n{R}\n{ANSWERS}", 0.5),  # a tag repeated
    (f"{ANSWERS}\n{P}\n{R}", 0.5),  # answers before the blocks
    (f"<perception>red\n{R}\n{ANSWERS}", 0.25),  # unclosed perception: reasoning only, unclean
    (f"<perception>red <reasoning>so</reasoning></perception>\n{ANSWERS}", 0.5),  # nested
    (f"</perception>red<perception>\n{R}\n{ANSWERS}", 0.25),  # close before open: no perception block
    ("", 0.0),
    (ANSWERS, 0.0),
    ("<Perception>red</Perception>\n<REASONING>so</REASONING>", 0.0),  # tags are matched exactly
]


@pytest.mark.parametrize(("completion", "expected"), CASES)
def test_structure_reward_cases(completion, expected):
    assert structure_reward([completion], [L2]) == [expected]


def test_complete_structure_and_blanking():
    text = f"{P}\n<reasoning>\nAnswer 1: green\n</reasoning>\n{ANSWERS}"
    st_ = parse_structure(text)
    assert st_.complete
    assert st_.perception.span == (0, len(P)) and text[slice(*st_.perception.content)] == "red; blue"
    assert text[slice(*st_.reasoning.content)] == "Answer 1: green"
    blanked = blank_blocks(text, st_)
    assert len(blanked) == len(text) and [i for i, c in enumerate(blanked) if c == "\n"] == [
        i for i, c in enumerate(text) if c == "\n"]
    # Without blanking, the label inside the reasoning would be taken as the answer.
    assert parse_segments(text, L2).texts == ["green\n</reasoning>", "blue"]
    assert parse_segments(blanked, L2).texts == ["red", "blue"]
    assert structure_reward([text], [L2]) == [1.0]
    for incomplete in (f"{P}\n{ANSWERS}", f"{R}\n{P}\n{ANSWERS}", f"{P}\n{P}\n{R}", "<perception></perception>" + R):
        assert not parse_structure(incomplete).complete
    assert blank_blocks(ANSWERS, parse_structure(ANSWERS)) == ANSWERS


def test_structure_reward_checks_lengths():
    with pytest.raises(ValueError, match="2 completions but 1 label lists"):
        structure_reward(["a", "b"], [L2])


def test_many_open_tags_are_linear_time():
    text = "<perception>" * 50_000 + "<reasoning>" * 50_000
    t0 = time.perf_counter()
    assert structure_reward([text], [L2]) == [0.0]
    assert time.perf_counter() - t0 < 2.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["<perception>", "</perception>", "<reasoning>", "</reasoning>", "Answer 1:",
                                 "Answer 2:", "\n", " ", "red", "\u00a0", "é"]), max_size=30).map("".join))
def test_structure_reward_is_bounded_and_blanking_keeps_positions(text):
    (score,) = structure_reward([text], [L2])
    assert score in {0.0, 0.25, 0.5, 1.0}
    blanked = blank_blocks(text, parse_structure(text))
    assert len(blanked) == len(text) and blanked.count("\n") == text.count("\n")
