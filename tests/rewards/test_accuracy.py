"""Relaxed chart-QA accuracy: hand-written cases in MultiChartQA's answer styles, real answers,
and model text that must never raise."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segrl.rewards import SEGMENT_REWARDS, make_segment_reward
from segrl.rewards.accuracy import accuracy, choice_letter, first_number, normalize_answer, parse_number
from segrl.segments import format_answer, parse_segments
from tests.conftest import require

SOURCE = Path(__file__).resolve().parents[2].parent / "shared/data/multichartqa"

CASES = [
    # (prediction, references, expected score)
    # --- numbers: |p - r| <= max(0.05 |r|, 1e-9), prediction's first number ----------------
    ("2", ["2"], 1.0),
    ("2.0", ["2"], 1.0),
    ("3", ["2"], 0.0),
    ("0.16", ["0.16"], 1.0),
    ("0.165", ["0.16"], 1.0),  # |0.005| <= 0.008
    ("0.17", ["0.16"], 0.0),  # |0.01| > 0.008
    ("-2", ["-2.0"], 1.0),
    ("\u22122.0", ["-2.0"], 1.0),  # Unicode minus sign
    ("2", ["-2.0"], 0.0),  # the sign counts
    ("1e-5", ["10^-5"], 1.0),
    ("0.00001", ["10^-5"], 1.0),
    ("10^{-5}", ["10^-5"], 1.0),
    ("10^-4", ["10^-5"], 0.0),
    ("5e-4", ["0.0005"], 1.0),
    ("1,234", ["1234"], 1.0),
    ("17.5%", ["17.5"], 1.0),  # "%" is a unit: 17.5, not 0.175
    ("$3", ["3"], 1.0),
    ("About 104 units", ["100"], 1.0),  # 4% off
    ("105", ["100"], 1.0),  # exactly 5%: inclusive
    ("106", ["100"], 0.0),  # 6% off
    ("0", ["0"], 1.0),
    ("0.001", ["0"], 0.0),  # reference 0: |p| <= 1e-9 (no rounding to 2 decimals)
    ("1.2 million", ["1.2M"], 1.0),
    ("1,200,000", ["1.2M"], 1.0),
    ("1.2", ["1.2M"], 0.0),  # the scale suffix is part of the value
    ("125,000", ["125k"], 1.0),
    ("-2000", ["-2k"], 1.0),
    ("5 charts, not 7", ["5"], 1.0),  # first number
    ("7, or maybe 5", ["5"], 0.0),  # only the first number counts
    ("Two.", ["2"], 1.0),  # a lone number word
    ("The answer is 3", ["3"], 1.0),
    ("Q3 2021: 25", ["2021"], 1.0),  # "Q3" is not a number (inside a word)
    ("2021", ["2022"], 1.0),  # one rule for all numbers: years are within 5% of each other
    ("none", ["0"], 0.0),
    ("", ["5"], 0.0),
    # --- multiple choice: reference a single letter A-H -----------------------------------
    ("C", ["C"], 1.0),
    ("(C)", ["C"], 1.0),
    ("C.", ["C"], 1.0),
    ("c", ["C"], 1.0),
    ("Option C", ["C"], 1.0),
    ("The answer is C", ["C"], 1.0),
    ("C) 2019 to 2021", ["C"], 1.0),
    ("I would pick (C) here", ["C"], 1.0),
    ("B", ["C"], 0.0),
    ("(A) or (C)", ["C"], 0.0),  # a hedge: two different bracketed letters
    ("A lot of charts", ["C"], 0.0),  # no letter chosen
    ("", ["C"], 0.0),
    # --- strings: SQuAD normalisation, whole text or first line -----------------------------
    ("Red", ["Red"], 1.0),
    ("red.", ["Red"], 1.0),
    ("The red", ["Red"], 1.0),  # article dropped
    ("Answer: Red", ["Red"], 1.0),
    ("Reddish", ["Red"], 0.0),
    ("The line is red", ["Red"], 0.0),  # no substring match
    ("CV SWKRLS-phase", ["CV SWKRLS-phase"], 1.0),
    ("cv swkrls phase", ["CV SWKRLS-phase"], 0.0),  # removing "-" joins the words: "swkrlsphase"
    ("CV SWKRLS", ["CV SWKRLS-phase"], 0.0),
    ("WD: 5e-4", ["WD: 5e-4"], 1.0),
    ("5e-4", ["WD: 5e-4"], 0.0),  # "WD: 5e-4" is not a number, so no numeric rule
    ("not applicable", ["Not Applicable"], 1.0),
    ("Not Applicable\nThe chart has no ticks.", ["Not Applicable"], 1.0),  # first line
    ("\n\n  Anomaly, Normal  \nbecause ...", ["Anomaly, Normal"], 1.0),
    ("Normal, Anomaly", ["Anomaly, Normal"], 0.0),  # order matters
    ("USA", ["United States", "USA"], 1.0),  # max over references
    ("US", ["United States", "USA"], 0.0),
    ("5", ["five", "5"], 1.0),
    ("Red", ["", "  ", "Red"], 1.0),  # blank references are ignored
    # --- references that cannot be scored -------------------------------------------------
    ("Red", [], None),
    ("Red", [""], None),
    ("Red", ["   "], None),
    ("Red", ["..."], None),  # nothing left after normalisation
]


@pytest.mark.parametrize("prediction,references,expected", CASES)
def test_hand_written_cases(prediction, references, expected):
    assert accuracy([prediction], [references]) == [expected]


def test_batched_call_equals_one_call_per_pair():
    preds = [c[0] for c in CASES]
    refs = [c[1] for c in CASES]
    assert accuracy(preds, refs) == [c[2] for c in CASES]
    assert accuracy([], []) == []


@pytest.mark.parametrize(
    "text,value",
    [("1,234", 1234.0), ("17.5%", 17.5), ("$3", 3.0), ("-0.35", -0.35), ("1e-4", 1e-4), ("10^-5", 1e-5),
     ("5e-4", 5e-4), ("2.5 x 10^3", 2500.0), ("125k", 125000.0), ("-2k", -2000.0), ("1.2M", 1.2e6),
     ("3.", 3.0), (".5", 0.5), ("0.10", 0.1)],
)
def test_parse_number_values(text, value):
    assert parse_number(text) == pytest.approx(value, rel=1e-12)


NOT_NUMBERS = ["Red", "WD: 5e-4", "18-29", "65+", "10G", "(4, 2)", "1 by 3", "Q3 2021", "", "C"]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_parse_number_rejects_non_numbers(text):
    assert parse_number(text) is None


def test_first_number_skips_overflow_and_words():
    assert first_number("1e999999 then 3") == 3.0  # an infinite value is not a number
    assert first_number("v2 has 3 lines") == 3.0
    assert first_number("no digits here") is None


@pytest.mark.parametrize(
    "text,letter",
    [("D", "D"), ("(b)", "B"), ("answer: D", "D"), ("B. Blue", "B"), ("The answer is a bit unclear", None),
     ("Optional", None), ("(A) or (B)", None)],
)
def test_choice_letter(text, letter):
    assert choice_letter(text) == letter


def test_normalize_answer_is_squad_style():
    assert normalize_answer("  The  Quick, brown-fox!  ") == "quick brownfox"
    assert normalize_answer("An apple a day") == "apple day"


def test_rel_tol_keyword():
    assert accuracy(["110"], [["100"]]) == [0.0]
    assert accuracy(["110"], [["100"]], rel_tol=0.1) == [1.0]
    assert accuracy(["0.004"], [["0"]], abs_tol=0.005) == [1.0]


def test_bad_calls_raise():
    with pytest.raises(ValueError, match="2 predictions but 1"):
        accuracy(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match="list of strings"):
        accuracy(["a"], ["a"])
    with pytest.raises(ValueError, match="rel_tol"):
        accuracy(["a"], [["a"]], rel_tol=-0.1)
    with pytest.raises(ValueError, match="abs_tol"):
        accuracy(["a"], [["a"]], abs_tol=float("nan"))


def test_non_string_prediction_scores_zero():
    assert accuracy([None, 5], [["5"], ["5"]]) == [0.0, 0.0]


HOSTILE = ["9" * 100_000, "(" * 10_000, "10^" + "9" * 5000, "1e" + "9" * 5000, "\x00\ufffd\U0001f600",
           "Answer 1: " * 1000, "-" * 10_000 + "5", "$" * 1000, "1," * 10_000, "." * 10_000]


@pytest.mark.parametrize("ref", ["5", "0", "C", "Red", "10^-5"])
def test_hostile_predictions_return_a_score(ref):
    scores = accuracy(HOSTILE, [[ref]] * len(HOSTILE))
    assert all(s in (0.0, 1.0) for s in scores)


REAL_STYLES = ["2", "-0.35", "10^-5", "C", "Red", "Not Applicable", "1.2M", "0"]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.sampled_from(REAL_STYLES))
def test_any_prediction_scores_zero_or_one(prediction, ref):
    (score,) = accuracy([prediction], [[ref]])
    assert score in (0.0, 1.0)


def _real_answers() -> list[str]:
    answers = []
    for f in sorted((SOURCE / "data").glob("*/chart-path_and_question-answer_pair.json")):
        for q in json.loads(f.read_text(encoding="utf-8")):
            answers.extend(a.strip() for a in str(q["answer"]).split(";"))
    return [a for a in answers if a]


def test_every_real_answer_matches_itself_inside_a_canonical_completion():
    require((SOURCE / "data").is_dir(), f"the real MultiChartQA sample at {SOURCE}")
    answers = _real_answers()
    assert len(answers) > 500
    labels = [f"Answer {k + 1}" for k in range(len(answers))]
    texts = parse_segments(format_answer(labels, answers), labels).texts
    assert accuracy(texts, [[a] for a in answers]) == [1.0] * len(answers)
    numeric = [a for a in answers if parse_number(a) is not None]
    assert 0.6 < len(numeric) / len(answers) < 0.95  # most MultiChartQA answers are numbers
    assert {"10^-5", "-2.0", "0.16", "1.2M"} <= set(numeric)
    assert parse_number("WD: 5e-4") is None and "WD: 5e-4" in answers


def test_registry_builds_accuracy():
    metric = make_segment_reward("accuracy", reference_corpus=[["unused"]])
    assert metric.__name__ == "accuracy"
    assert metric(["104", "C"], [["100"], ["B"]]) == [1.0, 0.0]
    assert make_segment_reward("accuracy", rel_tol=0.01)(["104"], [["100"]]) == [0.0]
    assert {"accuracy", "bleu1", "bleu2", "bleu3", "bleu4", "cider_d", "meteor", "rouge_l", "bertscore", "iou"} == set(
        SEGMENT_REWARDS.names()
    )
    with pytest.raises(ValueError, match="rel_tol"):
        make_segment_reward("accuracy", rel_tol=math.inf)
    with pytest.raises(TypeError):
        make_segment_reward("accuracy", rel_tl=0.1)  # a typo is not silently ignored
    with pytest.raises(KeyError, match="known: accuracy, bertscore, bleu1"):
        make_segment_reward("acc")
