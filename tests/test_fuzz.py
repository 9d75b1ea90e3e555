"""Fuzzing the segment parser and every reward: no model text may crash (or stall) a run.

Generated completions mix Unicode text of every category (surrogates excluded, as a Python
``str`` from a tokenizer never holds one), label look-alikes (``answer  1 :``, ``Answer 10:``,
``**Answer 1:**``, ``(a)``, fullwidth and Arabic-Indic digits, RTL marks and zero-width
joiners inside labels), nested tags, JSON fragments, repeated / out-of-order labels and
numbers in every format (``1e309``, ``nan``, ``-0``, ``1,2,3``, ``10^-400``, ``٣``), plus a
few completions of up to 200,000 characters. Properties:

* nothing raises; the same input gives the same output;
* parser: exactly K segments, in label order; a present segment's span lies inside the
  completion, spans do not overlap, the span is ``<marker><text>``, the text is the stripped
  rest of its line group (only blanks, then a new line, follow it); missing <=> ``(-1, -1)``;
  ``order`` / ``ordered`` agree with the spans; ``format_answer`` round-trips;
* metrics: accuracy in {0, 1}, BLEU-n in [0, 1], CIDEr-D in [0, 10]; ``None`` only for a
  reference without content; batch results equal one-pair calls; a reference scores itself
  1.0 (accuracy) or ~1.0 (BLEU-n with >= n tokens);
* format reward in [0, 1] and equal to its formula over the parse;
* ``score_segments``: shapes, masks, zeros where missing, scores equal to per-pair calls.

CIDEr-D's upper bound, from pycocoevalcap's ``CiderScorer.compute_cider`` (Vedantam et al.,
2015, Eq. 4-5 with the CIDEr-D clipping): for each order n the tf-idf weights are >= 0
(``idf = log(N_docs) - log(max(1, df))`` and ``df <= N_docs`` for corpus n-grams, 0 for unseen
ones), so the clipped term ``sum_g min(h_g, r_g) * r_g <= sum_g h_g r_g <= |h| |r|``
(Cauchy-Schwarz): each cosine is in [0, 1], the Gaussian length penalty is in (0, 1], the
mean over n and over references stays in [0, 1], and the score is 10 x that: **[0, 10]**.

Volume: the tests below draw >= 10,000 completions per run (``test_fuzz_volume`` checks it
when the whole file runs); the file takes about a minute on one core.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segrl.rewards import CiderD, format_reward, make_segment_reward, tokenize
from segrl.rewards.accuracy import normalize_answer
from segrl.rewards.format import UNCLEAN_FACTOR
from segrl.rewards.scorer import score_segments
from segrl.segments import format_answer, parse_segments

GENERATED: Counter[str] = Counter()
"""Completions drawn per test in this run (``test_fuzz_volume`` sums them)."""

# ---------------------------------------------------------------------------- strategies

UNICODE = st.characters(exclude_categories=("Cs",))
TEXT = st.text(UNICODE, max_size=30)

LOOKALIKES = [
    "Answer 1", "Answer 1:", "answer  1 :", "ANSWER 2:", "Answer 10:", "Answer 7:", "Answer 0:",
    "Answer 01:", "Answer -1:", "Answer1:", "Answer 1.", "Answer 1 -", "**Answer 1:**", "**Answer 2**:",
    "Answer 1 **:**", "- Answer 3:", "\u2022 Answer 1:", "* **Answer 2:**", "  -  Answer 1 :",
    "Answer \uff11:", "Answer \u0661:", "Answer \u0663:", "\uff21\uff4e\uff53\uff57\uff45\uff52 1:",
    "\u200fAnswer 1:", "Answer\u200b 1:", "Answer 1\u200d:", "An\u017fwer 1:", "\u212a1:",
    "(a)", "(a):", "(A)", "(b) ", "(z)", "(aa)", "((a))", "(a", "a)", "Answer 1: Answer 2:",
    "Q1:", "Panel A:", "Caption:", "Answer", ":", "**", "-", "\u2022",
]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f", "\u202e", "\u061c"]
LABEL_WORDS = ["Answer 1", "Answer 2", "Answer 3", "answer 4", "(a)", "(b)"]
TAGS = [
    "<answer>", "</answer>", "<think>", "</think>", "<answer><think>", "</think></answer>",
    "<answer>Answer 1: ", "<|im_end|>", "<image>", "```", "```json\n", "<", ">", "</",
]
NUMBERS = [
    "1e309", "-1e309", "1e-400", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-0", "+0", "0.0",
    "-0.0", "1,2,3", "1,234,567.89", "1,23", "10^-400", "10^400", "10^{-5}", "10^(3)", "2.5 x 10^3",
    "2.5\u00d710^(\u22123)", "\u0663", "\u0661\u0662\u066b\u0665", "\uff11\uff12", "\u00bd", "\u00b2",
    "1.2M", "3bn", "5 thousand", "$-3", "-$3", "\u22120.35", "17.5%", "17.5 percent", "1e-4", "0x1F",
    "1_000", "\u221e", "1/2", ".5", "5.", "1e", "e5", "--5", "+-5", "9" * 400, "0." + "0" * 400 + "1",
    "1e" + "9" * 50, "Two", "twenty", "zero", "(C)", "C.", "Option C", "The answer is B",
]
SEPARATORS = ["\n", "\r\n", "\r", " ", "\t", ": ", "\n\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c",
              "\x1c", "\x00", "\u3000", "\xa0", "\n  ", "\n- ", "\n**"]

zero_width_labels = st.builds(
    lambda lab, i, zw: lab[:i] + zw + lab[i:] + ":",
    st.sampled_from(LABEL_WORDS), st.integers(0, 8), st.sampled_from(ZERO_WIDTH),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["Answer 1", "answer", "(a)"]) | TEXT, inner, max_size=3),
    max_leaves=6,
)
json_fragments = st.builds(
    lambda v, ascii_only, cut: json.dumps(v, ensure_ascii=ascii_only)[: cut or None],
    json_values, st.booleans(), st.integers(0, 40),
)
numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.floats().map(repr),
    st.integers(-(10**40), 10**40).map(lambda n: f"{n:,}"),
    st.decimals().map(str),
    st.fractions().map(str),
)
label_lines = st.builds(
    lambda k, sep, t: f"{sep}Answer {k}:{t}",
    st.integers(0, 13), st.sampled_from(["\n", "", "\n**", "\n- ", "\n  "]), TEXT,
)
piece = st.one_of(
    TEXT, st.sampled_from(LOOKALIKES), zero_width_labels, st.sampled_from(TAGS), json_fragments,
    numbers, st.sampled_from(SEPARATORS), label_lines,
)
completions = st.lists(piece, max_size=20).map("".join)


def answers(k: int) -> list[str]:
    return [f"Answer {j}" for j in range(1, k + 1)]


label_lists = st.one_of(
    st.integers(1, 12).map(answers),
    st.integers(1, 8).map(lambda k: [f"({c})" for c in "abcdefgh"[:k]]),
    st.sampled_from([
        ["Q1", "Q2", "Q3"], ["Panel A", "Panel B"], ["Answer 1", "(b)"], ["Caption"],
        ["Answer 2", "Answer 1"], ["Answer 1", "Answer 10"], ["1", "2"], ["a", "a b"], ["(a)", "(a)(b)"],
    ]),
)
# Arbitrary labels too (a task may name its segments anything): non-blank, unique ignoring
# case and blanks; those with a blank other than space/tab must be refused with ValueError.
free_labels = st.lists(
    st.text(UNICODE, min_size=1, max_size=8).filter(str.strip), min_size=1, max_size=4,
    unique_by=lambda s: "".join(s.lower().split()),
)

REFERENCE_WORDS = ["A", "(C)", "C.", "red", "Blue", "a", "the", "", " ", "x-axis", "17.5%", "a red bar"]
references = st.lists(st.one_of(numbers, TEXT, st.sampled_from(REFERENCE_WORDS)), max_size=3)
CORPUS = [
    ["a red bar chart"], ["the blue line rises", "a rising blue line"], ["17.5"],
    ["two bars", "a pair of bars"],
    ["the x-axis shows years"], ["B"],
]
METRIC_NAMES = ("accuracy", "bleu1", "bleu2", "bleu3", "bleu4", "cider_d")
METRICS = {name: make_segment_reward(name, reference_corpus=CORPUS) for name in METRIC_NAMES}
RANGES = {"accuracy": (0.0, 1.0), "cider_d": (0.0, 10.0), **{f"bleu{n}": (0.0, 1.0) for n in (1, 2, 3, 4)}}
EPS = 1e-9  # float rounding at the top of a range (an identical pair can give 1 + 2e-16)

# ---------------------------------------------------------------------------- checks


def check_parse(completion: str, labels: list[str]) -> None:
    """Every parser invariant of the module docstring, for one (completion, labels) pair."""
    p = parse_segments(completion, labels)
    assert parse_segments(completion, labels) == p  # deterministic
    assert [s.label for s in p.segments] == list(labels)
    present = [k for k, s in enumerate(p.segments) if s.present]
    assert p.n_present == len(present)
    for s in p.segments:
        assert (s.text is None) == ((s.start, s.end) == (-1, -1))
        if s.text is None:
            continue
        assert 0 <= s.start <= s.end <= len(completion)
        span = completion[s.start:s.end]
        assert s.text == s.text.strip() and span.endswith(s.text)
        marker = span[: len(span) - len(s.text)]
        # The marker is the label (case- and blank-insensitive) with its colon / bold marks.
        assert "".join(marker.strip().strip(" \t*:").lower().split()) == "".join(s.label.lower().split())
        # A marker starts a line: only blanks, a bullet or ``**`` before it on its line.
        line_start = completion.rfind("\n", 0, s.start) + 1
        assert set(completion[line_start:s.start]) <= set(" \t-*\u2022")
    by_start = sorted(present, key=lambda k: p.segments[k].start)
    assert p.order == by_start and p.ordered == (by_start == sorted(by_start))
    for a, b in itertools.pairwise(by_start):  # spans do not overlap
        assert p.segments[a].end <= p.segments[b].start
    # The text is the *whole* stripped rest: after it come blanks, then a new line (or the end).
    for j, k in enumerate(by_start):
        stop = p.segments[by_start[j + 1]].start if j + 1 < len(by_start) else len(completion)
        rest = completion[p.segments[k].end:stop]
        blank = len(rest) - len(rest.lstrip())
        assert blank == len(rest) or "\n" in rest[:blank], (k, rest[:80])
    assert p.duplicates <= completion.count("\n") + 1 and p.unexpected <= completion.count("\n") + 1


def check_metric(name: str, preds: list[str], refs: list[list[str]]) -> list[float | None]:
    fn = METRICS[name]
    out = fn(preds, refs)
    assert fn(preds, refs) == out  # deterministic
    assert len(out) == len(preds)
    lo, hi = RANGES[name]
    for s, rs in zip(out, refs):
        if s is None:  # only a reference without content is unscorable
            if name == "accuracy":
                assert all(not normalize_answer(r) for r in rs), rs
            else:
                assert all(not tokenize(r) for r in rs), rs
            continue
        assert isinstance(s, float) and lo <= s <= hi + EPS, (name, s)
        if name == "accuracy":
            assert s in (0.0, 1.0)
    return out


def count(test: str, n: int) -> None:
    GENERATED[test] += n


def one_line_labels(labels: list[str]) -> bool:
    """The parser's label rule: non-blank, and no blank but spaces and tabs (a marker is one line)."""
    return all(lab.strip() and not re.search(r"[^\S \t]", lab) for lab in labels)


# ---------------------------------------------------------------------------- parser


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completion=completions, labels=label_lists)
@example("Answer 1: a\nAnswer 1: b\nAnswer 10: c\n**Answer 2:** d", answers(2))
@example("\u200fAnswer 1: x\nAnswer\u200d 2: y\nAnswer \uff13: z", answers(3))
@example('<answer><think>Answer 1: {"a": [1e309, NaN]}</think>', answers(1))
def test_parser_invariants(completion, labels):
    count("parser", 1)
    check_parse(completion, labels)


@settings(max_examples=600, deadline=None)
@given(completion=completions, labels=free_labels)
@example("a: x\nA: y", ["a", "b"])
def test_parser_invariants_arbitrary_labels(completion, labels):
    count("parser_free_labels", 1)
    if not one_line_labels(labels):
        with pytest.raises(ValueError, match="spaces and tabs"):
            parse_segments(completion, labels)
        return
    check_parse(completion, labels)


@settings(max_examples=600, deadline=None)
@given(labels=st.one_of(label_lists, free_labels), data=st.data())
def test_format_answer_round_trips(labels, data):
    """The canonical answer parses back to its texts (what ``segrl validate`` checks on data)."""
    if not one_line_labels(labels):
        return
    texts = data.draw(st.lists(st.text(UNICODE.filter(lambda c: c != "\n"), max_size=20),
                               min_size=len(labels), max_size=len(labels)))
    count("round_trip", 1)
    p = parse_segments(format_answer(labels, texts), labels)
    assert p.texts == [t.strip() for t in texts]
    assert p.ordered and p.duplicates == 0 and p.unexpected == 0


@st.composite
def planted(draw):
    """``(completion, K, first texts, duplicates, unexpected)``: lines of expected markers (some
    repeated, spelled ``Answer k:``, ``answer  k :``, ``Answer1:`` ...), markers of the family that are
    not expected (``Answer {K + j}:``) and plain lines, with the counts the parser must report."""
    K = draw(st.integers(1, 6))
    lines, first, counts, extra, owner = [], {}, [0] * K, 0, None
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["label", "label", "extra", "plain"]))
        text = draw(st.text(st.sampled_from(list("xyz 0123.,")), max_size=8)).strip()
        if kind == "label":
            k = draw(st.integers(1, K))
            spelling = draw(st.sampled_from(["Answer {k}:", "answer  {k} :", "Answer{k}:", "- **Answer {k}:**",
                                             "\tANSWER {k}:"]))
            lines.append(f"{spelling.format(k=k)} {text}")
            counts[k - 1] += 1
            owner = None if k - 1 in first else k - 1
            if owner is not None:
                first[owner] = [text]
        elif kind == "extra":
            lines.append(f"Answer{draw(st.sampled_from(['', ' ']))}{K + draw(st.integers(1, 3))}: {text}")
            extra += 1
            owner = None
        else:
            lines.append(f"note {text}")
            if owner is not None:  # a segment runs to the next marker
                first[owner].append(lines[-1])
    texts = ["\n".join(first[k]).strip() if k in first else None for k in range(K)]
    return "\n".join(lines), K, texts, sum(max(0, c - 1) for c in counts), extra


@settings(max_examples=800, deadline=None)
@given(case=planted())
def test_planted_markers_are_counted_exactly(case):
    """Every planted marker is found and counted once: its segment, a duplicate, or unexpected.

    Before the fix, ``Answer1:`` (no blank) matched the marker regex but no label key, so its
    segment was missing and the marker counted as unexpected."""
    completion, K, texts, duplicates, unexpected = case
    p = parse_segments(completion, answers(K))
    assert p.texts == texts
    assert (p.duplicates, p.unexpected) == (duplicates, unexpected)


def test_case_or_blank_variants_of_one_label_are_rejected():
    """Found by fuzzing: ``["a", "A"]`` passed the uniqueness check, and segment 0 could never be found."""
    for labels in (["a", "A"], ["Answer 1", "answer  1"], ["Answer 1", "Answer\t1 "], ["K", "\u212a"],
                   ["Answer 1", "Answer1"]):
        with pytest.raises(ValueError, match="unique"):
            parse_segments("a: x", labels)


@pytest.mark.parametrize("label", ["Answer\n1", "Answer\xa01", "Answer 1\x1c", "\x0cAnswer 1", "\u2028(a)"])
def test_labels_with_other_blanks_are_rejected(label):
    """Found by fuzzing: such a label never matched its own canonical line, so it was always missing."""
    with pytest.raises(ValueError, match="spaces and tabs"):
        parse_segments(format_answer([label], ["x"]), [label])


# ---------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("name", METRIC_NAMES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(completions, references), min_size=1, max_size=6))
def test_segment_metric(name, batch):
    count(f"metric_{name}", len(batch))
    preds = [p for p, _ in batch]
    refs = [r for _, r in batch]
    out = check_metric(name, preds, refs)
    # One pair at a time gives the same scores (no batch dependence, CIDEr-D included).
    assert [METRICS[name]([p], [r])[0] for p, r in batch] == pytest.approx(out, abs=1e-12)


@pytest.mark.parametrize("name", ["accuracy", "bleu1", "bleu4"])
@settings(max_examples=300, deadline=None)
@given(reference=st.one_of(numbers, completions, st.sampled_from(REFERENCE_WORDS)))
def test_a_reference_scores_itself_the_max(name, reference):
    count(f"self_{name}", 1)
    (s,) = check_metric(name, [reference], [[reference]])
    if s is None:
        return
    if name == "accuracy":
        assert s == 1.0, reference
    elif len(tokenize(reference)) >= int(name[-1]):
        assert s == pytest.approx(1.0, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(corpus=st.lists(references, max_size=5), preds=st.lists(completions, min_size=1, max_size=3))
def test_cider_d_any_corpus(corpus, preds):
    """A corpus without a token is refused up front; any other corpus scores in [0, 10]."""
    count("cider_corpus", len(preds))
    if not any(tokenize(r) for doc in corpus for r in doc):
        with pytest.raises(ValueError, match="no document with a token"):
            CiderD(corpus)
        return
    scores = CiderD(corpus)(preds, [corpus[0]] * len(preds))
    for s in scores:
        assert s is None or 0.0 <= s <= 10.0 + EPS


# ---------------------------------------------------------------------------- format reward


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(st.tuples(completions, label_lists), min_size=1, max_size=6))
def test_format_reward(batch):
    count("format", len(batch))
    comps = [c for c, _ in batch]
    labels = [lab for _, lab in batch]
    out = format_reward(comps, labels)
    assert format_reward(comps, labels) == out and len(out) == len(batch)
    for c, lab, f in zip(comps, labels, out):
        assert isinstance(f, float) and 0.0 <= f <= 1.0
        p = parse_segments(c, lab)
        clean = p.ordered and p.duplicates == 0 and p.unexpected == 0
        assert f == pytest.approx(p.n_present / len(lab) * (1.0 if clean else UNCLEAN_FACTOR))


# ---------------------------------------------------------------------------- batch scorer


@st.composite
def scorer_batches(draw):
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        labels = draw(st.one_of(st.integers(1, 5).map(answers),
                                st.integers(1, 4).map(lambda k: [f"({c})" for c in "abcd"[:k]])))
        refs = draw(st.lists(references, min_size=len(labels), max_size=len(labels)))
        rows.append((draw(completions), labels, refs))
    return rows


@pytest.mark.parametrize("name", ["accuracy", "cider_d"])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=scorer_batches())
def test_score_segments(name, rows):
    count(f"scorer_{name}", len(rows))
    comps, labels, refs = map(list, zip(*rows))
    metric = METRICS[name]
    s = score_segments(comps, labels, refs, metric)
    B, K = len(rows), max(len(lab) for lab in labels)
    assert s.rewards.shape == s.mask.shape == s.present.shape == (B, K)
    assert torch.isfinite(s.rewards).all()
    lo, hi = RANGES[name]
    assert ((s.rewards >= lo) & (s.rewards <= hi + 1e-5)).all()
    again = score_segments(comps, labels, refs, metric)
    assert torch.equal(again.rewards, s.rewards) and torch.equal(again.mask, s.mask)
    for i in range(B):
        for k in range(K):
            if k >= len(labels[i]):  # padding
                assert not s.mask[i, k] and not s.present[i, k] and s.rewards[i, k] == 0
                continue
            seg = s.parsed[i].segments[k]
            assert bool(s.present[i, k]) == seg.present
            alone = metric([seg.text if seg.present else ""], [refs[i][k]])[0]
            assert bool(s.mask[i, k]) == (alone is not None)
            expected = alone if (seg.present and alone is not None) else 0.0
            assert float(s.rewards[i, k]) == pytest.approx(expected, rel=1e-6, abs=1e-6)


# ---------------------------------------------------------------------------- huge inputs

PATHOLOGICAL = {
    # The parser took ~200 s on the 200k-space lines, accuracy minutes on "answer" + 5,000 spaces
    # (cubic: hours at 200k) before the fixes.
    "spaces": " " * 200_000 + "x",
    "tabs": "\t" * 200_000,
    "bullet_then_spaces": "-" + " " * 200_000 + "x",
    "label_then_spaces": "Answer 1" + " " * 200_000 + "x",
    "paren_label_then_spaces": "(a)" + " " * 200_000,
    "answer_word_then_spaces": "answer" + " " * 200_000 + "x",
    "answer_is_then_spaces": "answer is" + " " * 200_000 + "x",
    "many_labels": "Answer 1:\n" * 20_000,
    "digits": "1" * 200_000,
    "commas": "1," * 100_000,
    "stars": "**" * 100_000,
    "open_parens": "(" * 200_000,
}


def run_everything(completion: str, refs: list[str]) -> None:
    """Parser (both label styles), format reward, every metric and the batch scorer on one completion."""
    for labels in (answers(4), ["(a)", "(b)"]):
        check_parse(completion, labels)
        assert 0.0 <= format_reward([completion], [labels])[0] <= 1.0
    for name in METRIC_NAMES:
        check_metric(name, [completion], [refs])
    score_segments([completion], [answers(2)], [[refs, refs]], METRICS["accuracy"])


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_inputs_run_in_linear_time(name):
    """Regression: catastrophic regex backtracking, fixed in ``_PREFIX`` and the colon pattern of
    ``segrl/segments.py`` and ``_CHOICE_KEYWORD`` of ``segrl/rewards/accuracy.py``."""
    count("pathological", 1)
    t0 = time.perf_counter()
    for refs in (["A"], ["17.5"], ["a red bar"]):  # multiple-choice, number and string rules
        run_everything(PATHOLOGICAL[name], refs)
    assert time.perf_counter() - t0 < 20.0  # ~1-4 s here; the old regexes took minutes to hours


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(chunk=completions.filter(bool), length=st.integers(10_000, 200_000), refs=references)
def test_huge_completions(chunk, length, refs):
    count("huge", 1)
    run_everything((chunk * (length // len(chunk) + 1))[:length], refs)


# ---------------------------------------------------------------------------- volume

FUZZ_TESTS = {
    "parser", "parser_free_labels", "round_trip", "cider_corpus", "format", "pathological", "huge",
    *(f"metric_{n}" for n in METRIC_NAMES), *(f"self_{n}" for n in ("accuracy", "bleu1", "bleu4")),
    *(f"scorer_{n}" for n in ("accuracy", "cider_d")),
}


def test_fuzz_volume():
    """At least 10,000 generated completions per run (when every fuzz test above ran)."""
    if set(GENERATED) != FUZZ_TESTS:
        pytest.skip(f"only {sorted(GENERATED)} ran; the volume is checked on a whole-file run")
    assert sum(GENERATED.values()) >= 10_000, GENERATED
