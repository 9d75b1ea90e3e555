"""Grounding objects: one box and one point in pixels, read from JSON (shared by the grounding task and its rewards).

Neutral ground below :mod:`segrl.tasks.grounding` (which writes targets) and
:mod:`segrl.rewards.grounding` (which scores predictions against them), so neither imports the other.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_WS = re.compile(r"\s*")


@dataclass(frozen=True)
class GroundingObject:
    """One object of an answer or a target.

    Attributes:
        bbox: ``(x1, y1, x2, y2)`` in pixels of the image (finite floats).
        point: ``(x, y)`` in pixels (finite floats).
    """

    bbox: tuple[float, float, float, float]
    point: tuple[float, float]

    def to_json(self) -> str:
        """``{"bbox_2d": [...], "point_2d": [...]}`` with integral coordinates written as integers."""
        def num(v: float):
            return int(v) if float(v).is_integer() else float(v)

        return json.dumps({"bbox_2d": [num(v) for v in self.bbox], "point_2d": [num(v) for v in self.point]})


def _is_number(v) -> bool:
    """A finite real JSON number (``True`` is not a number; an int too large for a float is not finite)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def is_number_list(v, n: int) -> bool:
    """``v`` is a list of ``n`` finite real numbers."""
    return isinstance(v, list) and len(v) == n and all(_is_number(x) for x in v)


def as_object(item) -> GroundingObject | None:
    """``item`` as a :class:`GroundingObject`: a dict whose ``bbox_2d`` holds 4 and ``point_2d`` 2 finite
    numbers (other keys ignored); None otherwise."""
    if not isinstance(item, dict):
        return None
    bbox, point = item.get("bbox_2d"), item.get("point_2d")
    if not (is_number_list(bbox, 4) and is_number_list(point, 2)):
        return None
    return GroundingObject(tuple(float(v) for v in bbox), tuple(float(v) for v in point))


def first_json_value(text: str):
    """The JSON value at the start of ``text`` (after blanks; anything after it is ignored), or None.

    Python's ``json`` accepts ``NaN`` / ``Infinity`` and maps ``1e309`` to ``inf``; such numbers are
    rejected later by :func:`as_object`. Never raises on a string.
    """
    if not isinstance(text, str):
        return None
    start = _WS.match(text).end()
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except (json.JSONDecodeError, RecursionError, ValueError):
        return None
    return value


def targets_from_references(segment_references: Sequence[Sequence[str]]) -> list[GroundingObject]:
    """The target objects of a row: the first JSON value of each segment's first reference.

    Raises:
        ValueError: a reference is not an object with a 4-number ``bbox_2d`` and a 2-number
            ``point_2d`` (a data bug; the message names the segment).
    """
    out = []
    for k, refs in enumerate(segment_references):
        obj = as_object(first_json_value(refs[0] if refs else ""))
        if obj is None:
            raise ValueError(f"segment {k + 1}: reference {list(refs)[:1]!r} is not a grounding object")
        out.append(obj)
    return out
