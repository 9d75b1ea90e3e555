"""The box-convention diagnostic on hand-made answers."""

from __future__ import annotations

import json

import pytest

from segrl.analysis.box_modes import box_modes


def _row(boxes):
    refs = [[json.dumps({"bbox_2d": b, "point_2d": [(b[0] + b[2]) // 2, (b[1] + b[3]) // 2]})] for b in boxes]
    return {"segment_references": refs, "meta": json.dumps({"image_size": [840, 840]})}


def _answer(boxes):
    lines = [f'Object {k + 1}: {json.dumps({"bbox_2d": b, "point_2d": [(b[0] + b[2]) // 2, (b[1] + b[3]) // 2]})}'
             for k, b in enumerate(boxes)]
    return "<think>x</think>\n<answer>\n" + "\n".join(lines) + "\n</answer>"


def test_exact_loose_and_other_boxes_by_hand():
    rows = {"a": _row([[372, 372, 468, 468], [652, 652, 748, 748]]), "b": _row([[372, 92, 468, 188]])}
    records = [
        # exact (L1 2 px), loose (loose_box: 348..492, here 1 px off), both matched
        {"id": "a", "completion": _answer([[370, 374, 470, 466], [629, 629, 771, 771]])},
        # a box in another cell, and an extra object the matching leaves out (one target)
        {"id": "b", "completion": _answer([[92, 92, 188, 188], [1, 1, 2, 2]])},
    ]
    assert box_modes(records, rows) == {"exact": 0.333, "loose": 0.333, "other": 0.333, "objects": 3}
    assert box_modes([], rows) == {"exact": 0.0, "loose": 0.0, "other": 0.0, "objects": 0}
    with pytest.raises(KeyError):
        box_modes([{"id": "nope", "completion": ""}], rows)
