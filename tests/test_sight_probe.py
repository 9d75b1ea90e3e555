"""The vision probe task (segrl.tasks.probe): one coloured shape per panel image."""

from __future__ import annotations

import json

import pytest

from segrl.tasks import TASKS
from segrl.tasks.panels import COLOURS
from segrl.tasks.probe import BACKGROUND, PROBE_COLOURS, PROBE_SHAPES, build, probe_row, render_object


def test_render_object_centre_and_corner():
    im = render_object("blue", "square", 56)
    assert im.size == (56, 56)
    assert im.getpixel((28, 28)) == COLOURS["blue"] and im.getpixel((0, 0)) == BACKGROUND
    # extent 0.32 of 56 px: a square of half-side 0.85 * 8.96 = 7.6 px around the centre
    assert im.getpixel((28 + 7, 28)) == COLOURS["blue"] and im.getpixel((28 + 9, 28)) == BACKGROUND


def test_row_schema_panels_keep_resolution():
    for k in (1, 4):
        row = probe_row(3, panels=k, panel_side=56, seed=0)
        assert len(row["images"]) == k and row["segment_labels"] == [f"Panel {j}" for j in range(1, k + 1)]
        blocks = row["prompt"][0]["content"]
        assert [b["type"] for b in blocks] == ["image"] * k + ["text"]
        meta = json.loads(row["meta"])
        answers = [f"{o['colour']} {o['shape']}" for o in meta["objects"]]
        assert [r[0] for r in row["segment_references"]] == answers
        assert row["reference"] == "\n".join(f"Panel {j}: {a}" for j, a in enumerate(answers, 1))
        assert all(o["colour"] in PROBE_COLOURS and o["shape"] in PROBE_SHAPES for o in meta["objects"])
    # every panel is its own 56-px image at any K (the processor does not shrink it)
    assert {len(v["bytes"]) > 0 for v in probe_row(0, panels=4, panel_side=56, seed=0)["images"]} == {True}
    inter = probe_row(0, panels=2, panel_side=56, seed=0, layout="interleaved")["prompt"][0]["content"]
    assert [b["type"] for b in inter] == ["text", "image", "text", "image", "text"] and inter[0]["text"] == "Panel 1:"


def test_build_deterministic_split_and_registered(tmp_path):
    ds = build(None, tmp_path / "a", panels=2, count=20)
    again = build(None, tmp_path / "b", panels=2, count=20)
    assert len(ds["train"]) == 16 and len(ds["test"]) == 4
    assert ds["train"]["reference"] == again["train"]["reference"]
    assert TASKS.get("probe").segment_reward == "accuracy"


@pytest.mark.parametrize("option", [{"panels": 0}, {"count": 1}, {"panel_side": 8}, {"layout": "grid"},
                                    {"extent": 0.0}, {"test_fraction": 2.0}])
def test_bad_options_named(tmp_path, option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=name):
        build(None, tmp_path / "x", **option)
    assert not (tmp_path / "x").exists()
