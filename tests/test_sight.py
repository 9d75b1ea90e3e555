"""The sight gate (segrl.sight, `segrl check-sight`) and the alignment stage that makes the tiny LLaVA see.

The end-to-end test trains the embedded default twice on the K = 1 vision probe with the same
SFT budget: with the old defaults (no alignment stage) the policy stays blind and the gate
fails; with the new defaults (alignment, then SFT) it passes.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from segrl.sight import BLANK_RGB, _candidates, _rank_credit, _tv, blank_like, check_sight
from segrl.trainers.sft import _pool_groups

SFT_STEPS = 100


def test_tv_hand_computed():
    p = torch.log(torch.tensor([[0.5, 0.5, 0.0 + 1e-30], [1.0, 1e-30, 1e-30]]))
    q = torch.log(torch.tensor([[0.25, 0.25, 0.5], [1.0, 1e-30, 1e-30]]))
    tv = _tv(p, q, torch.tensor([True, True]))
    assert tv.tolist() == pytest.approx([0.5, 0.0], abs=1e-6)
    assert _tv(p, q, torch.tensor([False, True])).tolist() == pytest.approx([0.0], abs=1e-6)


def test_rank_credit_ties_share():
    assert _rank_credit(torch.tensor([-1.0, -2.0, -3.0])) == 1.0
    assert _rank_credit(torch.tensor([-2.0, -1.0, -3.0])) == 0.0
    assert _rank_credit(torch.tensor([-1.0, -1.0, -3.0, -1.0])) == pytest.approx(1 / 3)


def test_candidates_replace_one_segment_only():
    rows = [{"segment_labels": ["Panel 1", "Panel 2"], "segment_references": [[a], [b]]}
            for a, b in [("red star", "blue circle"), ("green square", "red star"), ("blue circle", "blue circle"),
                         ("red star", "green square")]]
    cands = _candidates(rows, 0, 1, 2, random.Random(0))
    assert cands[0] == "Panel 1: red star\nPanel 2: blue circle"
    assert len(cands) == 3 and len(set(cands)) == 3
    for c in cands[1:]:
        first, second = c.split("\n")
        assert first == "Panel 1: red star" and second in ("Panel 2: red star", "Panel 2: green square")
    assert _candidates(rows, 0, 1, 3, random.Random(0)) is None  # only 2 other values exist


def test_typed_segments_draw_distractors_from_the_same_template():
    """Charts: a "count" answer's distractors are other counts (at any position), never "Chart 2" or "up"."""
    def row(templates, answers):
        return {"segment_labels": [f"Answer {j + 1}" for j in range(len(answers))],
                "segment_references": [[a] for a in answers], "meta": json.dumps({"templates": templates})}

    rows = [row(["count", "highest"], ["2", "Chart 1"]), row(["trend", "count"], ["up", "3"]),
            row(["highest", "trend"], ["Chart 2", "down"]), row(["count", "count"], ["1", "2"])]
    cands = _candidates(rows, 0, 0, 3, random.Random(0))
    assert sorted(c.split("\n")[0] for c in cands[1:]) == ["Answer 1: 1", "Answer 1: 3"]  # only 2 other counts
    assert all(c.split("\n")[1] == "Answer 2: Chart 1" for c in cands)
    trend = _candidates(rows, 1, 0, 3, random.Random(0))
    assert trend == ["Answer 1: up\nAnswer 2: 3", "Answer 1: down\nAnswer 2: 3"]
    # no other value of the template: not ranked
    assert _candidates([row(["type"], ["bar"]), row(["type"], ["bar"])], 0, 0, 3, random.Random(0)) is None


def test_blank_like_is_uniform_grey_of_same_size():
    im = blank_like(Image.new("RGB", (30, 20), (1, 2, 3)))
    assert im.size == (30, 20) and set(im.getdata()) == {BLANK_RGB}


def test_pool_groups_pairs_images_panels_or_whole():
    im = Image.new("RGB", (56, 56))
    multi = {"images": [im, im], "segment_references": [["a"], ["b"]], "meta": "{}"}
    assert _pool_groups(multi, 16, 4) == [([0], None, "a"), ([1], None, "b")]
    # a 1x2 grid 56 wide: left panel box [0, 0, 28, 56] holds patch columns 0-1, right 2-3
    grid = {"images": [im], "segment_references": [["left"], ["right"]],
            "meta": json.dumps({"panel_boxes": [[0, 0, 28, 56], [28, 0, 56, 56]]})}
    (g1, p1, t1), (g2, p2, t2) = _pool_groups(grid, 16, 4)
    assert (g1, t1, g2, t2) == ([0], "left", [0], "right")
    assert p1 == [0, 1, 4, 5, 8, 9, 12, 13] and p2 == [2, 3, 6, 7, 10, 11, 14, 15]
    charts = {"images": [im, im, im], "segment_references": [["17"], ["yes"]], "meta": "{}"}
    assert _pool_groups(charts, 16, 4) == [([0, 1, 2], None, "17 yes")]
    # per-image descriptions win over every other pairing (charts: 2 charts, 2 questions not about chart k)
    described = {"images": [im, im], "segment_references": [["Chart 2"], ["up"]],
                 "meta": json.dumps({"image_descriptions": ["bar 2 red blue", "line 1 green"]})}
    assert _pool_groups(described, 16, 4) == [([0], None, "bar 2 red blue"), ([1], None, "line 1 green")]
    # a description list of the wrong length is not used
    wrong = {**described, "meta": json.dumps({"image_descriptions": ["bar 2 red blue"]})}
    assert _pool_groups(wrong, 16, 4) == [([0], None, "Chart 2"), ([1], None, "up")]


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """K = 1 probe (defaults: a docci-sized object, images first) and an untrained tiny model."""
    from datasets import load_from_disk

    from segrl.models import build_tiny_vlm, texts_from_dataset
    from segrl.tasks.probe import build

    root = tmp_path_factory.mktemp("sight")
    build(None, root / "probe", panels=1, count=300)
    ds = load_from_disk(str(root / "probe"))
    tiny = build_tiny_vlm(list(texts_from_dataset(ds)), root / "tiny", vocab_size=400)
    return root, ds, tiny


def _trained(probe, name, **kwargs):
    from segrl.models import load_policy
    from segrl.trainers.sft import warm_start

    root, ds, tiny = probe
    result = warm_start(str(tiny), ds["train"], root / name, max_steps=SFT_STEPS, learning_rate=3e-3,
                        logging_steps=SFT_STEPS, **kwargs)
    model, processor = load_policy(str(root / name))
    return model, processor, result


def test_old_default_is_blind_and_fails_the_gate(probe):
    """SFT alone (the old warm start) on the probe: the answer does not depend on the image."""
    model, processor, _ = _trained(probe, "old", align_steps=0, freeze_vision=False)
    report = check_sight(model, processor, probe[1]["test"], n_rows=24)
    assert not report.passed, report.lines()
    assert report.acc_true - report.acc_blank < 0.2
    assert report.tv_swap < 0.01  # measured 0.0000
    # the CLI prints the figures, the rule and the verdict, and exits 1 on a blind policy
    from segrl.cli import app

    out = CliRunner().invoke(app, ["check-sight", str(probe[0] / "old"), str(probe[0] / "probe"), "--rows", "8"])
    assert out.exit_code == 1, out.output
    assert "verdict: FAIL" in out.output and "rule: PASS iff" in out.output and "image-swap TV" in out.output


def test_new_default_sees_and_passes_the_gate(probe):
    """Alignment stage + the same SFT budget: the colour/shape words follow the image."""
    model, processor, result = _trained(probe, "new")
    assert result["align"]["steps"] > 0 and result["align"]["bag_accuracy_last"] > 0.5, result["align"]
    report = check_sight(model, processor, probe[1]["test"], n_rows=24)
    assert report.passed, report.lines()
    assert report.acc_true > 0.8 and report.tv_swap > 0.1
    assert abs(report.acc_blank - report.chance) < 0.2  # the blank control sits near chance (1/4)
