"""The segment parser: canonical answers, and malformed completions that must never raise."""

import pytest

from segrl.segments import format_answer, parse_segments

L3 = ["Answer 1", "Answer 2", "Answer 3"]


def texts(completion, labels=L3):
    return parse_segments(completion, labels).texts


def test_canonical_round_trip_and_spans():
    ans = format_answer(L3, ["17.5", "Blue", "C"])
    p = parse_segments(ans, L3)
    assert p.texts == ["17.5", "Blue", "C"]
    assert p.ordered and p.duplicates == 0 and p.unexpected == 0
    for seg in p.segments:  # the span covers "<label>: <text>"
        assert ans[seg.start:seg.end] == f"{seg.label}: {seg.text}"


MALFORMED = [
    # (completion, expected texts, ordered, duplicates, unexpected)
    ("", [None, None, None], True, 0, 0),
    ("   \n\n\t", [None, None, None], True, 0, 0),
    ("no labels at all, just rambling", [None, None, None], True, 0, 0),
    ("The Answer 1: is hidden in text", [None, None, None], True, 0, 0),
    ("Answer 1 17", [None, None, None], True, 0, 0),  # no colon: not a marker
    ("Answer 1:", ["", None, None], True, 0, 0),  # present but empty
    ("Answer 1: a\nAnswer 1: b", ["a", None, None], True, 1, 0),  # duplicate: first wins
    ("Answer 2: x\nAnswer 1: y", ["y", "x", None], False, 0, 0),  # out of order
    ("Answer 3: c\nAnswer 2: b\nAnswer 1: a", ["a", "b", "c"], False, 0, 0),
    ("Answer 10: ten\nAnswer 1: one", ["one", None, None], True, 0, 1),  # Answer 10 is not Answer 1
    ("Answer 1: a\nAnswer 7: extra\nAnswer 2: b", ["a", "b", None], True, 0, 1),
    ("answer 1: lower\nANSWER 2: UPPER", ["lower", "UPPER", None], True, 0, 0),
    ("**Answer 1:** bold\n- Answer 2: bullet\n  * Answer 3: star", ["bold", "bullet", "star"], True, 0, 0),
    ("Answer 1: multi\nline answer\nAnswer 2: b", ["multi\nline answer", "b", None], True, 0, 0),
    ("Answer 1: a; Answer 2: b", ["a; Answer 2: b", None, None], True, 0, 0),  # mid-line label is text
    ("Answer 1: a\r\nAnswer 2: b\r\n", ["a", "b", None], True, 0, 0),
    ("Answer  2 : spaced", [None, "spaced", None], True, 0, 0),
    ("Answer 1: \u00e9\u00e8 \U0001F600\nAnswer 2: \u4e2d\u6587", ["\u00e9\u00e8 \U0001F600", "\u4e2d\u6587", None], True, 0, 0),
    ('{"Answer 1": 3}', [None, None, None], True, 0, 0),  # JSON fragment
    ("Answer 1: " + "x" * 100_000, ["x" * 100_000, None, None], True, 0, 0),  # huge
    ("Answer 1: a\nAnswer 2: b\nAnswer 1: c\nAnswer 3: d", ["a", "b", "d"], True, 1, 0),
    ("Answer 3: only the last", [None, None, "only the last"], True, 0, 0),
    ("<answer>Answer 1: tagged</answer>", [None, None, None], True, 0, 0),
    ("\x00\x01Answer 1: ctrl", [None, None, None], True, 0, 0),
    ("Answer 1:a\nAnswer 2:b\nAnswer 3:c", ["a", "b", "c"], True, 0, 0),
]


@pytest.mark.parametrize("completion,expected,ordered,dups,unexpected", MALFORMED)
def test_malformed_completions(completion, expected, ordered, dups, unexpected):
    p = parse_segments(completion, L3)
    assert p.texts == expected
    assert (p.ordered, p.duplicates, p.unexpected) == (ordered, dups, unexpected)
    for seg in p.segments:
        if seg.present:
            assert 0 <= seg.start <= seg.end <= len(completion)
            assert completion[seg.start:seg.end].rstrip().endswith(seg.text) or seg.text == ""
        else:
            assert (seg.start, seg.end) == (-1, -1)


def test_mmsci_parenthesised_labels_colon_optional():
    p = parse_segments("(a) A plot of x.\n(b): Bars.\n(c) stray", ["(a)", "(b)"])
    assert p.texts == ["A plot of x.", "Bars."]
    assert p.unexpected == 1


def test_non_str_inputs_do_not_raise():
    assert parse_segments(None, L3).texts == [None] * 3  # type: ignore[arg-type]
    assert parse_segments(12345, L3).texts == [None] * 3  # type: ignore[arg-type]


@pytest.mark.parametrize("labels", [[], ["Answer 1", "Answer 1"], ["Answer 1", " "]])
def test_bad_label_lists_raise(labels):
    with pytest.raises(ValueError):
        parse_segments("Answer 1: x", labels)


def test_format_answer_length_mismatch():
    with pytest.raises(ValueError, match="2 labels but 1 texts"):
        format_answer(["a", "b"], ["x"])


def test_a_label_written_without_its_blank_is_that_label():
    """``Answer1: 17`` matched the marker regex but not the label key: the segment scored 0 and the
    marker counted as unexpected."""
    p = parse_segments("Answer1: 17\nAnswer  2 : blue\nAnswer3: x", ["Answer 1", "Answer 2"])
    assert p.texts == ["17", "blue"]
    assert (p.unexpected, p.duplicates, p.ordered) == (1, 0, True)
    assert p.spans[0] == (0, 11)
