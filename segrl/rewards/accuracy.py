"""Per-segment answer accuracy for chart QA (MultiChartQA / ChartQA-style relaxed accuracy).

Source and what we changed. MultiChartQA (Zhu et al., NAACL 2025) scores with code adapted
from MMMU (``code/mmmu_utils.py`` and ``code/calculate_acc.py`` in Zivenzhu/Multi-chart-QA):

* numbers: ChartQA's *relaxed accuracy* (Masry et al., 2022, end of Sec. 5.1, after Methani
  et al., 2020): a numeric answer is correct within 5% of the gold value; every number found
  in the response is tried, after rounding to 2 decimals;
* multiple choice: the response's option letter, found by MMMU's heuristics (a random letter
  when none is found);
* other answers: the lowercased gold string contained anywhere in the response.

This module keeps the rules but makes them deterministic and harder to game, because the
score is an RL reward, not only an evaluation number (a reconstruction, not their code):

* **numbers** — used when the whole reference reads as a number. Only the prediction's
  *first* number is compared (trying every number lets a policy list many). Correct when
  ``|p - r| <= max(rel_tol * |r|, abs_tol)`` (one rule for every number, years and counts
  included; ``r == 0`` needs ``|p| <= abs_tol``). No rounding to 2 decimals, so ``0.004``
  is not ``0``. Parsing: ``1,234``, ``17.5%`` (= 17.5: ``%`` is a unit and dropped, unlike
  ChartQA's divide-by-100, since MultiChartQA references are tick texts without units),
  ``$3``, ``-0.35`` (also with the Unicode minus), ``1e-4``, ``10^-5`` (= 1e-5),
  ``2.5 x 10^3``, and scale suffixes ``k``/``K``/``thousand``, ``M``/``mn``/``million``,
  ``B``/``bn``/``billion``, ``trillion`` (``1.2M`` = 1.2e6). A prediction with no digits
  that is exactly a number word (``"Two"``, zero to twenty) counts as that number.
* **multiple choice** — used when the reference is a single letter A-H (optionally ``(C)``
  or ``C.``). The prediction's letter is read from ``C``, ``(C)``, ``C.``, ``C) text``,
  ``Option C``, ``The answer is C``; several different bracketed letters, or none, score 0
  (no random guess).
* **strings** — SQuAD normalisation (Rajpurkar et al., 2016, ``normalize_answer`` in the
  official v1.1 evaluation script: lowercase, drop punctuation, drop articles a/an/the,
  collapse whitespace; we drop Unicode punctuation and symbols too). Correct when the
  normalised reference equals the normalised prediction, or its first non-empty line, either
  one also tried without a leading ``Answer:`` / ``The answer is``. No substring match.

Each prediction is scored against each of its references; the score is the maximum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

DEFAULT_REL_TOL = 0.05  # ChartQA / MultiChartQA relaxed accuracy: within 5% of the gold value
DEFAULT_ABS_TOL = 1e-9  # reference 0: |p| must be at most this

_MINUS = str.maketrans({"\u2212": "-", "\u2012": "-", "\ufe63": "-", "\uff0d": "-"})


def _exponent(name: str) -> str:
    """Regex for an exponent ``-5``, ``{-5}`` or ``(-5)`` captured as group ``name``."""
    return r"\{?\(?[ \t]*(?P<" + name + r">[-+]?\d+)[ \t]*\)?\}?"


_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+]?)(?:[$\u20ac\u00a3\u00a5][ \t]?)?(?P<sign2>[-+]?)"
    r"(?:10[ \t]*\^[ \t]*" + _exponent("pow10") + r"|"
    r"(?P<mant>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:[eE](?P<exp>[-+]?\d+)|[ \t]*[x\u00d7*\u00b7][ \t]*10[ \t]*\^[ \t]*" + _exponent("exp10") + r")?)"
    r"(?:[ \t]*(?:%|(?i:percent)\b)"
    r"|(?P<letter>[kKMB])(?!\w)"
    r"|[ \t]?(?P<abbr>bn|mn)(?!\w)"
    r"|[ \t]+(?P<word>(?i:thousand|million|billion|trillion))(?!\w))?"
)
_SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "mn": 1e6, "bn": 1e9,
          "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_NUMBER_WORDS = {
    w: float(i)
    for i, w in enumerate([
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ])
}

_CHOICE_REF = re.compile(r"\(?([A-H])\)?\.?")
_CHOICE_ALONE = re.compile(r"\(?([A-Ha-h])\)?[.:)]?")
_CHOICE_LEAD = re.compile(r"(?:\(([A-H])\)|([A-H])[.:)])")
# ``answer [is] [:] C``; each optional word owns the blanks after it (the earlier
# ``[ \t]*(?i:is)?[ \t]*:?[ \t]*`` backtracked cubically: "answer" + 5,000 spaces took minutes).
_CHOICE_KEYWORD = re.compile(
    r"(?i:answer|option|choice)[ \t]*(?:(?i:is)[ \t]*)?(?::[ \t]*)?\(?([A-H])\)?(?![A-Za-z])"
)
_CHOICE_BRACKET = re.compile(r"\(([A-H])\)")
_ANSWER_PREFIX = re.compile(
    r"^[ \t]*(?:(?:the[ \t]+)?(?:final[ \t]+|correct[ \t]+)?answer(?:[ \t]+is)?|option|choice)"
    r"\b[ \t]*:?[ \t]*",
    re.IGNORECASE,
)
_PUNCT = re.compile(r"[^\w\s]|_")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def check_tolerances(rel_tol: float, abs_tol: float) -> None:
    """Raise ``ValueError`` unless both tolerances are finite and non-negative (a config bug)."""
    for name, tol in (("rel_tol", rel_tol), ("abs_tol", abs_tol)):
        if not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise ValueError(f"accuracy: {name} must be a finite number >= 0, got {tol!r}")


def prepare_pairs(
    predictions: Sequence[object], references: Sequence[Sequence[object]], metric: str
) -> tuple[list[str], list[list[str]]]:
    """Validate a batch of (prediction, references) pairs; shared by every per-segment metric.

    Predictions that are not strings (model text gone wrong) become ``""``. References are
    converted with ``str``; ``None`` and blank references are dropped (a pair left with no
    reference is then one the metric reports as ``None``).

    Returns:
        ``(predictions, references)``: N strings and N lists of non-blank reference strings.

    Raises:
        ValueError: if the two lists differ in length.
        TypeError: if a pair's references are a bare string instead of a list of strings.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{metric}: {len(predictions)} predictions but {len(references)} reference lists")
    preds = [p if isinstance(p, str) else "" for p in predictions]
    refs: list[list[str]] = []
    for i, rs in enumerate(references):
        if isinstance(rs, (str, bytes)):
            raise TypeError(f"{metric}: references[{i}] must be a list of strings, got the string {rs!r}")
        refs.append([str(r) for r in (rs or []) if r is not None and str(r).strip()])
    return preds, refs


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 ``normalize_answer``: lowercase, drop punctuation/symbols, articles, extra spaces."""
    text = _PUNCT.sub("", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def _match_value(m: re.Match) -> float | None:
    """The value of one :data:`_NUMBER` match; ``None`` when it is not finite."""
    if m["pow10"] is not None:
        value = float("1e" + m["pow10"])
    else:
        mant = m["mant"].replace(",", "")
        exp = m["exp"] if m["exp"] is not None else m["exp10"]
        value = float(mant + ("e" + exp if exp is not None else ""))
    scale = m["letter"] or m["abbr"] or (m["word"] or "").lower()
    value *= _SCALE.get(scale, 1.0)
    if (m["sign"] + m["sign2"]).count("-") % 2:
        value = -value
    return value if math.isfinite(value) else None


def parse_number(text: str) -> float | None:
    """The value of ``text`` when the whole (stripped) string is one number, else ``None``.

    Examples: ``"1,234"`` -> 1234.0, ``"17.5%"`` -> 17.5, ``"10^-5"`` -> 1e-05, ``"1.2M"`` ->
    1.2e6, ``"Red"`` / ``"WD: 5e-4"`` / ``"18-29"`` -> None.
    """
    m = _NUMBER.fullmatch(text.translate(_MINUS).strip().rstrip("."))
    return _match_value(m) if m else None


def first_number(text: str) -> float | None:
    """The first finite number written in ``text`` (see :data:`_NUMBER`), or a lone number word."""
    text = text.translate(_MINUS)
    for m in _NUMBER.finditer(text):
        value = _match_value(m)
        if value is not None:
            return value
    return _NUMBER_WORDS.get(normalize_answer(_strip_answer_prefix(_first_line(text))))


def _first_line(text: str) -> str:
    """The first non-blank line of ``text`` (``""`` if none)."""
    return next((line for line in text.splitlines() if line.strip()), "")


def _strip_answer_prefix(text: str) -> str:
    """``text`` without a leading ``Answer:``, ``The answer is``, ``Option`` or ``Choice``."""
    return _ANSWER_PREFIX.sub("", text, count=1)


def choice_letter(text: str) -> str | None:
    """The option letter A-H a prediction chose, or ``None`` when there is none or it is ambiguous.

    Tried in order: the (prefix-stripped) text is just a letter (``C``, ``(c)``, ``C.``);
    ``None`` if it holds two different bracketed letters (``(A) or (B)``: a hedge); it starts
    with ``(C)`` / ``C.`` / ``C)`` / ``C:``; ``answer/option/choice [is] C`` anywhere; one
    bracketed letter ``(C)`` anywhere.
    """
    core = _strip_answer_prefix(text.strip()).strip()
    m = _CHOICE_ALONE.fullmatch(core)
    if m:
        return m[1].upper()
    bracketed = set(_CHOICE_BRACKET.findall(text))
    if len(bracketed) > 1:
        return None
    m = _CHOICE_LEAD.match(core)
    if m:
        return m[1] or m[2]
    m = _CHOICE_KEYWORD.search(text)
    if m:
        return m[1]
    return bracketed.pop() if bracketed else None


def _numbers_match(pred: float, ref: float, rel_tol: float, abs_tol: float) -> bool:
    """Relaxed accuracy: ``|pred - ref| <= max(rel_tol * |ref|, abs_tol)`` (ChartQA Sec. 5.1)."""
    return abs(pred - ref) <= max(rel_tol * abs(ref), abs_tol)


def _string_candidates(prediction: str) -> set[str]:
    """Normalised forms the prediction may match by: whole text and first line, with/without prefix."""
    forms = (prediction, _first_line(prediction))
    return {normalize_answer(f) for form in forms for f in (form, _strip_answer_prefix(form))}


def score_one(prediction: str, reference: str, rel_tol: float, abs_tol: float) -> float | None:
    """1.0/0.0 for one prediction against one reference; ``None`` if the reference has no content.

    The reference decides the rule: a number (relaxed accuracy on the prediction's first
    number), a single letter A-H (multiple choice), else a normalised string match.
    """
    ref_value = parse_number(reference)
    if ref_value is not None:
        pred_value = first_number(prediction)
        return float(pred_value is not None and _numbers_match(pred_value, ref_value, rel_tol, abs_tol))
    choice = _CHOICE_REF.fullmatch(reference.strip())
    if choice:
        return float(choice_letter(prediction) == choice[1])
    ref_norm = normalize_answer(reference)
    if not ref_norm:
        return None
    return float(ref_norm in _string_candidates(prediction))


def accuracy(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
    **kwargs,
) -> list[float | None]:
    """Answer accuracy of N segments (rules and sources in the module docstring).

    Args:
        predictions: N segment texts (any string; non-strings count as ``""``).
        references: N lists of acceptable answers; a pair scores the max over its references.
        rel_tol: relative tolerance for numbers (fraction, default 0.05 = 5%).
        abs_tol: absolute tolerance, which decides only when ``rel_tol * |ref|`` is smaller
            (a reference of 0).
        **kwargs: ignored (extra dataset columns a caller may pass).

    Returns:
        N scores in {0.0, 1.0}; ``None`` where no reference has content (empty list, blank
        or punctuation-only strings).

    Raises:
        ValueError: lengths differ, or a tolerance is negative or not finite.
        TypeError: a pair's references are a bare string.
    """
    check_tolerances(rel_tol, abs_tol)
    preds, refs = prepare_pairs(predictions, references, "accuracy")
    out: list[float | None] = []
    for pred, rs in zip(preds, refs):
        scores = [s for s in (score_one(pred, r, rel_tol, abs_tol) for r in rs) if s is not None]
        out.append(max(scores) if scores else None)
    return out
