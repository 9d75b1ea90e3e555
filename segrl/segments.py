"""Parse a long-form completion into its labelled segments.

Every task writes answers in one canonical format (``../shared/DESIGN.md``): one segment per
line group, each starting at the beginning of a line with its label, e.g.::

    Answer 1: 17.5
    Answer 2: Blue
    (a) A scatter plot of ...      # MMSci keeps its own "(a)" labels; the colon is optional

:func:`parse_segments` maps a completion to, for every expected label, the segment's text
and its character span, or "missing". It never raises on a string (any ``str`` is a valid
input); only a malformed *label list* (a programming error) raises.

Rules (the contract the rewards, the token mapping and the format reward rely on):

1. **Marker.** A label counts only at the start of a line (after optional spaces, markdown
   bullets ``-``/``*``/``•`` and bold ``**``), matched case-insensitively and with any blanks
   (or none) between its words (``Answer1:`` is ``Answer 1``), followed by a colon
   (optional for parenthesised labels such as ``(a)``). A label inside other text
   ("... as in Answer 1: ...") is text, not a marker. ``Answer 1:`` never matches
   ``Answer 10:``.
2. **Family.** Lines that look like a label of the same family but are not expected
   (``Answer 7:`` when 4 answers are expected, ``(z)``) are *unexpected markers*: they end
   the segment before them and their text is assigned to no segment.
3. **Duplicates.** Only the first occurrence of a label starts its segment. A later
   occurrence is a boundary: it ends the segment before it, and its text is assigned to no
   segment (counted in ``duplicates``).
4. **Order.** Labels may appear in any order; each is still parsed. ``ordered`` says whether
   the present labels appear in the expected order (the format reward uses it).
5. **Text and span.** A segment's text runs from after its marker (and colon) to the next
   marker of any kind or the end of the completion, stripped of surrounding whitespace.
   Its span ``[start, end)`` covers the marker itself through the end of the stripped text,
   so the label's tokens belong to the segment. An empty text is still *present*
   (the model wrote the label); a label that never appears is *missing*
   (``text is None``, ``start == end == -1``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# Each optional piece owns the blanks after it, so no two ``[ \t]*`` are adjacent: a line of
# 200k spaces is matched in linear time (``[ \t]*(?:\*\*)?[ \t]*`` backtracked quadratically).
_PREFIX = r"^[ \t]*(?:[-*\u2022][ \t]+)?(?:\*\*[ \t]*)?"


@dataclass(frozen=True)
class Segment:
    """One expected segment of a completion.

    Attributes:
        label: the expected label, e.g. ``"Answer 2"``.
        text: the segment's content without its label, stripped; ``None`` when missing.
        start: character offset (inclusive) of the label marker in the completion; -1 if missing.
        end: character offset (exclusive) of the end of the content; -1 if missing.
    """

    label: str
    text: str | None
    start: int = -1
    end: int = -1

    @property
    def present(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class ParsedCompletion:
    """The result of :func:`parse_segments`.

    Attributes:
        segments: one :class:`Segment` per expected label, in the expected order.
        ordered: True when the present labels appear in the expected order.
        duplicates: number of repeated markers of an expected label (rule 3).
        unexpected: number of same-family markers that are not expected (rule 2).
    """

    segments: list[Segment]
    ordered: bool = True
    duplicates: int = 0
    unexpected: int = 0
    order: list[int] = field(default_factory=list)

    @property
    def texts(self) -> list[str | None]:
        return [s.text for s in self.segments]

    @property
    def n_present(self) -> int:
        return sum(s.present for s in self.segments)

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [(s.start, s.end) for s in self.segments]


def _label_key(label: str) -> str:
    """What a label is compared by: lowercased, every blank removed.

    The marker regex allows any blanks between a label's words (``Answer1:``, ``Answer  1:``), so
    the key must ignore them all; a key that kept one space matched ``Answer1`` to no label and
    counted it as unexpected."""
    return re.sub(r"\s+", "", label.lower())


def _label_body(label: str) -> str:
    """Regex for one label: escaped, whitespace-tolerant."""
    return r"[ \t]*".join(re.escape(part) for part in label.split())


def _family_body(label: str) -> str:
    """Regex for labels of the same family: digit runs -> ``\\d+``, ``(x)`` -> any letter."""
    if re.fullmatch(r"\([A-Za-z]\)", label):
        return r"\([A-Za-z]{1,2}\)"
    parts = []
    for part in label.split():
        parts.append(r"\d+".join(re.escape(p) for p in re.split(r"\d+", part)))
    return r"[ \t]*".join(parts)


def _marker_regex(body: str, parenthesised: bool) -> str:
    # Same language as ``[ \t]*(?:\*\*)?[ \t]*:`` without two adjacent ``[ \t]*`` (linear time).
    colon = r"[ \t]*(?:\*\*[ \t]*)?:?" if parenthesised else r"[ \t]*(?:\*\*[ \t]*)?:"
    # A word label must not be followed by more of its word/number (Answer 1 vs Answer 10).
    guard = "" if parenthesised else r"(?![0-9A-Za-z])"
    return _PREFIX + "(" + body + ")" + guard + colon + r"(?:\*\*)?"


def parse_segments(completion: str, labels: Sequence[str]) -> ParsedCompletion:
    """Split ``completion`` into the segments named by ``labels`` (rules in the module docstring).

    Args:
        completion: any string (empty, garbage and huge strings are fine).
        labels: the K expected labels, in order, e.g. ``["Answer 1", "Answer 2"]``.

    Returns:
        A :class:`ParsedCompletion` with exactly ``len(labels)`` segments.

    Raises:
        ValueError: if ``labels`` is empty, has an empty label, two labels that differ only in
            case or blanks (``"a"``/``"A"``: the second would take every marker of the first),
            or a label holding a blank other than a space or tab (a line break, NBSP, ``\\x1c``
            ...: a marker is matched on one line with ``[ \\t]`` between words, so such a label
            could never be found). A data bug, never a model-output problem.
    """
    if not labels:
        raise ValueError("parse_segments: the label list is empty")
    keys = [_label_key(str(lab)) for lab in labels]
    if len(set(keys)) != len(keys) or not all(keys):
        raise ValueError(
            "parse_segments: labels must be unique (ignoring case and blanks) and non-empty, "
            f"got {list(labels)!r}"
        )
    unmatchable = [lab for lab in labels if re.search(r"[^\S \t]", lab)]
    if unmatchable:
        raise ValueError(
            f"parse_segments: labels may hold only spaces and tabs as blanks, got {unmatchable!r}"
        )
    if not isinstance(completion, str):
        completion = "" if completion is None else str(completion)

    norm = {key: k for k, key in enumerate(keys)}
    bodies = {_label_body(lab) for lab in labels}
    families = {_family_body(lab) for lab in labels}
    paren = all(re.fullmatch(r"\(.+\)", lab) for lab in labels)
    # Expected labels first, longest first, then the family patterns: Python's alternation takes
    # the first branch that fits, and with parenthesised labels (no guard after them) a shorter
    # branch tried first cut ``(a)(b):`` to ``(a)`` (found by fuzzing; sorting every pattern by
    # its regex length put the family ``\([A-Za-z]{1,2}\)`` before the label ``\(a\)\(b\)``).
    def longest_first(patterns: set[str]) -> list[str]:
        return sorted(patterns, key=lambda b: (-len(b), b))

    branches = longest_first(bodies) + longest_first(families - bodies)
    pattern = re.compile(_marker_regex("|".join(branches), paren), re.IGNORECASE | re.MULTILINE)

    # (line_start, label_start, content_start, label index or -1 for unexpected)
    markers: list[tuple[int, int, int, int]] = []
    for m in pattern.finditer(completion):
        found = _label_key(m.group(1))
        k = norm.get(found, -1)
        markers.append((m.start(), m.start(1), m.end(), k))

    first: dict[int, int] = {}
    duplicates = unexpected = 0
    for idx, (_, _, _, k) in enumerate(markers):
        if k < 0:
            unexpected += 1
        elif k in first:
            duplicates += 1
        else:
            first[k] = idx

    segments: list[Segment] = []
    for k, lab in enumerate(labels):
        if k not in first:
            segments.append(Segment(lab, None))
            continue
        idx = first[k]
        _, mstart, cstart, _ = markers[idx]
        cend = markers[idx + 1][0] if idx + 1 < len(markers) else len(completion)
        raw = completion[cstart:cend]
        text = raw.strip()
        lead = len(raw) - len(raw.lstrip())
        end = cstart + lead + len(text) if text else cstart
        segments.append(Segment(lab, text, mstart, end))

    order = [k for k, _ in sorted(first.items(), key=lambda kv: kv[1])]
    return ParsedCompletion(
        segments=segments,
        ordered=order == sorted(order),
        duplicates=duplicates,
        unexpected=unexpected,
        order=order,
    )


def format_answer(labels: Sequence[str], texts: Sequence[str]) -> str:
    """Render segments in the canonical format: ``"<label>: <text>"`` lines (inverse of the parser).

    Raises:
        ValueError: if the numbers of labels and texts differ.
    """
    if len(labels) != len(texts):
        raise ValueError(f"format_answer: {len(labels)} labels but {len(texts)} texts")
    return "\n".join(f"{lab}: {txt}" for lab, txt in zip(labels, texts))
