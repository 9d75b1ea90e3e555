"""Grounding task: synthetic scenes, the VisionReasoner/ReasonSeg loader on fixtures in those layouts, bad input."""

from __future__ import annotations

import io
import json

import pytest
from datasets import Dataset, DatasetDict, Features, List, Value, load_from_disk
from datasets import Image as ImageFeature
from PIL import Image

from segrl.prompts import LOOK_INSTRUCTION, add_look_to_confirm
from segrl.rewards.grounding import (
    GroundingObject,
    add_grounding_metrics,
    format_reward,
    non_repeat_reward,
    parse_answer,
    vision_reasoner_accuracy,
)
from segrl.segments import parse_segments
from segrl.tasks import TASKS
from segrl.tasks.base import FEATURES, DataError
from segrl.tasks.grounding import (
    BACKGROUND,
    COLOURS,
    RELATIONS,
    SceneObject,
    anchor_names,
    build,
    is_loose_demonstration,
    loose_box,
    object_labels,
    render_scene,
    synthetic_row,
)


def _meta(row) -> dict:
    return json.loads(row["meta"])


def scene_object(shape, colour, size, cx, cy, r):
    return SceneObject(shape, colour, size, 0, (cx - r, cy - r, cx + r, cy + r), (cx, cy))


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_rows_are_exact_and_deterministic(tmp_path):
    ds = build(None, tmp_path / "a", count=6, image_side=120)
    again = build(None, tmp_path / "b", count=6, image_side=120)
    other = build(None, tmp_path / "c", count=6, image_side=120, seed=1)
    assert TASKS.get("grounding").build is build
    assert ds["train"].features == FEATURES and (len(ds["train"]), len(ds["test"])) == (5, 1)
    assert ds["train"].to_list() == again["train"].to_list()  # images included
    assert list(ds["train"]["meta"]) != list(other["train"]["meta"])
    assert list(load_from_disk(str(tmp_path / "a"))["test"]["id"]) == list(ds["test"]["id"])
    for row in ds["train"]:
        meta = _meta(row)
        n = len(meta["objects"])
        assert row["segment_labels"] == object_labels(n)
        parsed = parse_segments(row["reference"], row["segment_labels"])
        assert parsed.texts == [r[0] for r in row["segment_references"]] and parsed.ordered
        assert row["segment_references"][-1][0].endswith("\n</answer>")
        # The reference answer earns every Dr. Seg reward, and its objects are the meta's targets in order.
        assert format_reward(row["reference"]) == 4.0 and non_repeat_reward(row["reference"]) == 1.0
        objects = [GroundingObject(tuple(map(float, o["bbox_2d"])), tuple(map(float, o["point_2d"])))
                   for o in meta["objects"]]
        assert parse_answer(row["reference"]).objects == objects
        centres = [((o.bbox[1] + o.bbox[3]) / 2, (o.bbox[0] + o.bbox[2]) / 2) for o in objects]
        assert centres == sorted(centres)  # reading order
        scene = [SceneObject(**{**o, "box": tuple(o["box"]), "point": tuple(o["point"])}) for o in meta["scene"]]
        assert [scene[k].box for k in meta["targets"]] == [tuple(map(int, o.bbox)) for o in objects]
        anchor = scene[meta["anchor"]]
        assert any(meta["query"].endswith(n) for n in anchor_names(anchor, scene))
        rel = next(r for r in RELATIONS if r.text == meta["relation"])
        colour = meta["query"].split()[1] if "{colour}" in rel.text else ""
        expected = {k for k, o in enumerate(scene) if k != meta["anchor"] and rel.holds(o, anchor, colour)}
        assert set(meta["targets"]) == expected
        [image] = row["images"]
        assert image.size == (120, 120) and meta["image_size"] == [120, 120]
        for o in scene:  # each object's point is painted in its colour
            assert image.convert("RGB").getpixel(o.point) == COLOURS[o.colour]


def test_example_does_not_depend_on_count():
    a = synthetic_row(3, seed=0, side=120)
    assert a == synthetic_row(3, seed=0, side=120)
    assert json.loads(a["meta"])["index"] == 3 and a["id"] == "synthetic-0-00003"


def test_anchor_names_and_relations_by_hand():
    big_red_circle = scene_object("circle", "red", "large", 50, 50, 20)
    small_red_circle = scene_object("circle", "red", "small", 150, 50, 5)
    blue_square = scene_object("square", "blue", "medium", 250, 150, 10)
    scene = [big_red_circle, small_red_circle, blue_square]
    assert anchor_names(big_red_circle, scene) == ["the large circle", "the largest circle", "the largest object"]
    assert anchor_names(blue_square, scene) == ["the blue square", "the medium square"]
    right_of = next(r for r in RELATIONS if r.text == "every object right of {anchor}")
    assert [o for o in scene if o is not big_red_circle and right_of.holds(o, big_red_circle, "")] == [
        small_red_circle, blue_square]
    smaller_red = next(r for r in RELATIONS if r.text == "every {colour} thing smaller than {anchor}")
    assert [o for o in scene if smaller_red.holds(o, blue_square, "red")] == [small_red_circle]


def test_render_is_pixel_inclusive():
    square = scene_object("square", "blue", "small", 30, 30, 5)
    image = render_scene([square], 60)
    assert image.getpixel((35, 35)) == COLOURS["blue"] and image.getpixel((25, 25)) == COLOURS["blue"]
    assert image.getpixel((36, 35)) == BACKGROUND and image.getpixel((24, 30)) == BACKGROUND


def test_look_to_confirm_prompt():
    plain, look = synthetic_row(0, seed=0, side=120, look_to_confirm=False), synthetic_row(0, seed=0, side=120)
    assert add_look_to_confirm(plain["prompt"]) == look["prompt"]
    assert add_look_to_confirm(look["prompt"]) == look["prompt"]  # idempotent
    assert look["prompt"][0]["content"][1]["text"].endswith(LOOK_INSTRUCTION)
    assert "<look>" not in plain["reference"] and "<look>" in look["reference"]
    assert format_reward(plain["reference"], look_bonus=False) == 3.0
    with pytest.raises(ValueError, match="no text block"):
        add_look_to_confirm([{"role": "user", "content": [{"type": "image", "text": None}]}])


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="source_kind"):
        build(None, tmp_path / "x", source_kind="coco")
    with pytest.raises(ValueError, match="count"):
        build(None, tmp_path / "x", count=1)
    with pytest.raises(ValueError, match="max_targets"):
        build(None, tmp_path / "x", count=4, max_targets=0)
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- VisionReasoner / ReasonSeg


def _png(size, colour=(10, 200, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


VR_FEATURES = Features({"id": Value("string"), "problem": Value("string"), "solution": Value("string"),
                        "image": ImageFeature(), "img_height": Value("int64"), "img_width": Value("int64")})


def vr_rows():
    """Three rows in the VisionReasoner training layout (objects deliberately not in reading order)."""
    sol0 = [{"bbox_2d": [60, 40, 80, 70], "point_2d": [70, 55]}, {"bbox_2d": [10, 5, 30, 25], "point_2d": [20, 15]}]
    sol1 = [{"bbox_2d": [0, 0, 9, 9], "point_2d": [4, 4]}]
    sol2 = [{"bbox_2d": [1.5, 2, 3.5, 4], "point_2d": [2.5, 3]}]
    return [
        {"id": "vr-0", "problem": "The Dogs next to the bench.", "solution": json.dumps(sol0),
         "image": {"bytes": _png((100, 80)), "path": None}, "img_height": 80, "img_width": 100},
        {"id": "vr-1", "problem": "a cup", "solution": json.dumps(sol1),
         "image": {"bytes": _png((20, 20), (1, 2, 3)), "path": None}, "img_height": 20, "img_width": 20},
        {"id": "vr-2", "problem": "the   lamp", "solution": json.dumps(sol2),
         "image": {"bytes": _png((8, 8)), "path": None}, "img_height": 8, "img_width": 8},
    ]


def test_visionreasoner_save_to_disk_layout(tmp_path):
    rows = vr_rows()
    Dataset.from_list(rows, features=VR_FEATURES).save_to_disk(str(tmp_path / "vr"))  # a single Dataset = train
    ds = build(str(tmp_path / "vr"), tmp_path / "out", source_kind="visionreasoner", test_fraction=0.34, look_to_confirm=False)
    assert sorted([*ds["train"]["id"], *ds["test"]["id"]]) == ["vr-0", "vr-1", "vr-2"] and len(ds["test"]) == 1
    row = next(r for split in ds.values() for r in split if r["id"] == "vr-0")
    meta = _meta(row)
    assert meta["query"] == "the dogs next to the bench" and meta["image_size"] == [100, 80]
    assert meta["layout"] == "visionreasoner" and meta["source_split"] == "train" and meta["source_index"] == 0
    # Reordered to reading order: the object centred at y = 15 first.
    assert row["segment_references"] == [['{"bbox_2d": [10, 5, 30, 25], "point_2d": [20, 15]}'],
                                         ['{"bbox_2d": [60, 40, 80, 70], "point_2d": [70, 55]}\n</answer>']]
    assert '"the dogs next to the bench"' in row["prompt"][0]["content"][1]["text"]
    assert "100x80 image" in row["prompt"][0]["content"][1]["text"]
    # The original image bytes are kept (no re-encoding).
    stored = load_from_disk(str(tmp_path / "out")).cast_column("images", List(ImageFeature(decode=False)))
    by_id = {r["id"]: r for split in stored.values() for r in split}
    assert by_id["vr-1"]["images"][0]["bytes"] == rows[1]["image"]["bytes"]
    lamp = next(r for split in ds.values() for r in split if r["id"] == "vr-2")
    assert lamp["segment_references"] == [['{"bbox_2d": [1.5, 2, 3.5, 4], "point_2d": [2.5, 3]}\n</answer>']]


def test_parquet_snapshot_with_test_split_and_reasonseg_layout(tmp_path):
    root = tmp_path / "snap" / "data"
    root.mkdir(parents=True)
    Dataset.from_list(vr_rows()[:2], features=VR_FEATURES).to_parquet(str(root / "train-00000-of-00001.parquet"))
    reasonseg = Features({"image": ImageFeature(), "text": Value("string"), "bbox": [Value("int64")],
                          "image_id": Value("string"), "ann_id": Value("string")})
    Dataset.from_list([{"image": {"bytes": _png((50, 40)), "path": None}, "text": "What can hold water?",
                        "bbox": [10, 10, 21, 30], "image_id": "img7", "ann_id": "3"}],
                      features=reasonseg).to_parquet(str(root / "test-00000-of-00001.parquet"))
    ds = build(str(tmp_path / "snap"), tmp_path / "out", source_kind="visionreasoner")
    assert list(ds["train"]["id"]) == ["vr-0", "vr-1"] and list(ds["test"]["id"]) == ["img7-3"]
    row = ds["test"][0]
    assert _meta(row)["layout"] == "reasonseg" and _meta(row)["query"] == "what can hold water?"
    # ReasonSeg gives no point: the box centre (15.5 -> 16 by round-half-even, 20).
    assert row["segment_references"] == [['{"bbox_2d": [10, 10, 21, 30], "point_2d": [16, 20]}\n</answer>']]
    assert "<look>" in row["reference"] and format_reward(row["reference"]) == 4.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"solution": '[{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]'}, r"\[train\]\[1\]: field 'solution'"),
        ({"solution": '[{"bbox_2d": [9, 2, 3, 4], "point_2d": [2, 3]}]'}, r"\[train\]\[1\].*x2 < x1"),
        ({"solution": "[]"}, r"\[train\]\[1\]: no target object"),
        ({"problem": "  "}, r"\[train\]\[1\]: field 'problem' is empty"),
        ({"image": {"bytes": b"not a png", "path": None}}, r"\[train\]\[1\]: field 'image': unreadable"),
        ({"id": "vr-0"}, r"\[train\]\[1\]: duplicate id 'vr-0'"),
    ],
)
def test_bad_visionreasoner_rows_name_the_row_and_write_nothing(tmp_path, edit, message):
    rows = vr_rows()
    rows[1] = {**rows[1], **edit}
    DatasetDict({"train": Dataset.from_list(rows, features=VR_FEATURES)}).save_to_disk(str(tmp_path / "vr"))
    with pytest.raises(DataError, match=message):
        build(str(tmp_path / "vr"), tmp_path / "out", source_kind="visionreasoner")
    assert not (tmp_path / "out").exists()


def test_missing_source_and_unknown_layout(tmp_path):
    with pytest.raises(DataError, match="not found"):
        build(str(tmp_path / "nope"), tmp_path / "out", source_kind="visionreasoner")
    with pytest.raises(DataError, match="needs a source"):
        build(None, tmp_path / "out", source_kind="visionreasoner")
    Dataset.from_list([{"question": "q", "answer": "a"}]).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(DataError, match=r"match no known layout.*'problem', 'solution', 'image'"):
        build(str(tmp_path / "other"), tmp_path / "out", source_kind="visionreasoner")


# ----------------------------------------------------------------------------- evaluation


def test_add_grounding_metrics(tmp_path):
    ds = build(None, tmp_path / "data", count=4, image_side=120)
    run = tmp_path / "eval"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"split": "train", "metrics": {"iou": 0.5}}))
    rows = ds["train"]
    preds = [{"id": rows[0]["id"], "completion": rows[0]["reference"]}, {"id": rows[1]["id"], "completion": ""}]
    (run / "predictions.jsonl").write_text("\n".join(json.dumps(p) for p in preds) + "\n")
    added = add_grounding_metrics(run, tmp_path / "data")
    # The reference: gIoU 1, right count; the empty answer: gIoU 0, no objects.
    assert added["giou"] == 0.5 and added["count_accuracy"] == 0.5 and added["thinking_format"] == 0.5
    assert added["vr_accuracy"] == 1.5 and added["matched_iou"] == 0.5
    saved = json.loads((run / "metrics.json").read_text())["metrics"]
    assert saved["iou"] == 0.5 and saved["giou"] == 0.5
    (run / "predictions.jsonl").write_text(json.dumps({"id": "nope", "completion": ""}) + "\n")
    with pytest.raises(KeyError, match="nope"):
        add_grounding_metrics(run, tmp_path / "data")


# ----------------------------------------------------------------------------- the CPU testbed's options


def test_testbed_options_grid_counts_queries_labels(tmp_path):
    """grid 2 on 840 px: centres at 210 / 630, boxes from the sizes; 'all' makes every object a target."""
    ds = build(None, tmp_path / "all", count=12, image_side=840, grid=2, min_objects=1, max_objects=3,
               queries="all", max_targets=3, name_objects=True, short_prompt=True)
    sizes = set()
    for row in ds["train"]:
        meta = _meta(row)
        scene = meta["scene"]
        assert meta["grid"] == 2 and meta["queries"] == "all" and meta["query"] == "every object"
        assert 1 <= len(scene) <= 3 and sorted(meta["targets"]) == list(range(len(scene)))
        for o in scene:
            assert tuple(o["point"]) in {(210, 210), (630, 210), (210, 630), (630, 630)}
            r = {"small": 71, "medium": 122, "large": 181}[o["size"]]  # round(SIZES[size] * 420)
            assert o["box"] == [o["point"][0] - r, o["point"][1] - r, o["point"][0] + r, o["point"][1] + r]
            sizes.add(o["size"])
        # labels ride in the answer JSON; no reward reads them
        for k, t in enumerate(meta["targets"]):
            ref = json.loads(row["segment_references"][k][0].split("\n")[0])
            o = scene[t]
            assert ref == {"bbox_2d": o["box"], "point_2d": o["point"], "label": f"{o['size']} {o['colour']} {o['shape']}"}
        assert meta["panel_boxes"] == [scene[t]["box"] for t in meta["targets"]]
        assert format_reward(row["reference"]) == 4.0
        assert [list(map(int, o.bbox)) for o in parse_answer(row["reference"]).objects] == meta["panel_boxes"]
        text = row["prompt"][0]["content"][1]["text"]
        assert text.startswith('Find "every object". Reason inside <think> </think>') and "840x840" in text
        assert text.endswith(LOOK_INSTRUCTION) and "For example" not in text
    assert sizes == {"small", "medium", "large"}


def test_attribute_queries_pick_every_object_of_that_colour_or_shape():
    for i in range(20):
        row = synthetic_row(i, seed=0, side=840, grid=2, min_objects=2, max_objects=3, queries="attribute",
                            max_targets=2)
        meta = _meta(row)
        scene, value = meta["scene"], meta["query"].split()[1]  # "every red object" / "every circle"
        key = "colour" if meta["relation"] == "every {value} object" else "shape"
        assert meta["relation"] in ("every {value} object", "every {value}") and meta["anchor"] is None
        assert meta["query"] == meta["relation"].format(value=value)
        assert sorted(meta["targets"]) == [k for k, o in enumerate(scene) if o[key] == value]
        assert 1 <= len(meta["targets"]) <= 2
        assert "<look>" in row["reference"] and format_reward(row["reference"]) == 4.0


def test_testbed_option_errors(tmp_path):
    with pytest.raises(ValueError, match="grid"):
        build(None, tmp_path / "x", count=4, grid=1)
    with pytest.raises(ValueError, match="max_objects"):
        build(None, tmp_path / "x", count=4, grid=2, min_objects=3, max_objects=5)
    with pytest.raises(ValueError, match="queries"):
        build(None, tmp_path / "x", count=4, queries="colour")
    with pytest.raises(ValueError, match="every object a target"):
        build(None, tmp_path / "x", count=4, queries="all", max_objects=4, max_targets=3)
    with pytest.raises(ValueError, match="image_side"):
        build(None, tmp_path / "x", count=4, grid=8, image_side=120)
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- loose demonstrations


def test_loose_box_by_hand():
    # 96-px box, pad 0.25: 24 px out on every side; IoU 96^2 / 144^2 = 4/9 = 1 / (1 + 2 * 0.25)^2.
    assert loose_box((372, 372, 468, 468), 0.25, (840, 840)) == (348, 348, 492, 492)
    # clipped to the image; a non-square box pads each side by its own dimension (0.1 * 100, 0.1 * 50)
    assert loose_box((20, 20, 260, 260), 0.25, (840, 840)) == (0, 0, 320, 320)
    assert loose_box((700, 10, 800, 60), 0.1, (810, 840)) == (690, 5, 810, 65)
    # VisionReasoner's accuracy of that loose box: IoU 4/9 < 0.5 and mean L1 24 > 10 miss, the point hits: 1 of 3
    exact = GroundingObject((372, 372, 468, 468), (420, 420))
    loose = GroundingObject(loose_box(exact.bbox, 0.25, (840, 840)), exact.point)
    assert vision_reasoner_accuracy([loose], [exact]) == 1.0 and vision_reasoner_accuracy([exact], [exact]) == 3.0


def test_loose_demonstrations_change_only_the_training_references(tmp_path):
    kw = dict(count=40, image_side=840, grid=3, min_objects=1, max_objects=3, queries="all", max_targets=3,
              name_objects=True, short_prompt=True)
    exact = build(None, tmp_path / "exact", **kw)
    mixed = build(None, tmp_path / "mixed", loose_box_fraction=0.7, loose_box_pad=0.25, **kw)
    assert mixed["test"].to_list() == exact["test"].to_list()  # held-out rows: untouched
    n_loose = 0
    for e, m in zip(exact["train"], mixed["train"]):
        assert m["id"] == e["id"] and m["segment_references"] == e["segment_references"]  # ground truth: exact
        assert m["prompt"] == e["prompt"] and m["images"] == e["images"]
        meta_e, meta_m = _meta(e), _meta(m)
        if not is_loose_demonstration(e["id"], 0, 0.7):
            assert m == e
            continue
        n_loose += 1
        assert meta_m == {**meta_e, "demonstration": "loose", "loose_box_pad": 0.25}
        assert m["reference"].split("</think>")[0] == e["reference"].split("</think>")[0]  # the reasoning kept
        got, want = parse_answer(m["reference"]).objects, parse_answer(e["reference"]).objects
        assert [o.bbox for o in got] == [loose_box(o.bbox, 0.25, (840, 840)) for o in want]
        assert [o.point for o in got] == [o.point for o in want]
        assert format_reward(m["reference"]) == 4.0
        # the loose boxes lose VisionReasoner's L1 hit (and, unclipped, its IoU hit: test_loose_box_by_hand)
        assert vision_reasoner_accuracy(got, want) <= 2.0 and vision_reasoner_accuracy(want, want) == 3.0
    assert 0 < n_loose < len(exact["train"])
    summary = json.loads((tmp_path / "mixed" / "build_log.jsonl").read_text().splitlines()[0])
    assert summary["loose_demonstrations"] == n_loose and summary["loose_box_fraction"] == 0.7


def test_loose_demonstration_choice_is_per_row():
    ids = [f"synthetic-0-{i:05d}" for i in range(2000)]
    picked = [is_loose_demonstration(i, 0, 0.7) for i in ids]
    assert 0.66 < sum(picked) / len(ids) < 0.74
    assert not any(is_loose_demonstration(i, 0, 0.0) for i in ids)
    assert all(is_loose_demonstration(i, 0, 1.0) for i in ids)
    assert picked != [is_loose_demonstration(i, 1, 0.7) for i in ids]  # the scene seed reseeds the choice


def test_loose_demonstration_option_errors(tmp_path):
    with pytest.raises(ValueError, match="loose_box_fraction"):
        build(None, tmp_path / "x", count=4, loose_box_fraction=1.5)
    with pytest.raises(ValueError, match="loose_box_pad"):
        build(None, tmp_path / "x", count=4, loose_box_fraction=0.5, loose_box_pad=0.0)
    assert not (tmp_path / "x").exists()


def test_add_grounding_metrics_sampled(tmp_path):
    """Sampled predictions: per sample index the example means, then their mean and std over samples."""
    ds = build(None, tmp_path / "data", count=4, image_side=120)
    rows = ds["train"]
    run = tmp_path / "eval"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"split": "train", "metrics": {"iou": 0.5, "sampled": {
        "temperature": 0.7, "num_samples": 2, "iou": 0.25}}}))
    ids = [rows[0]["id"], rows[1]["id"]]
    (run / "predictions.jsonl").write_text("\n".join(json.dumps({"id": i, "completion": ""}) for i in ids) + "\n")
    sampled = [  # sample 0: both right (gIoU 1, 1); sample 1: one right, one empty (1, 0)
        {"id": ids[0], "sample": 0, "completion": rows[0]["reference"]},
        {"id": ids[1], "sample": 0, "completion": rows[1]["reference"]},
        {"id": ids[0], "sample": 1, "completion": rows[0]["reference"]},
        {"id": ids[1], "sample": 1, "completion": "<answer></answer>"},
    ]
    (run / "predictions_sampled.jsonl").write_text("\n".join(json.dumps(s) for s in sampled) + "\n")
    added = add_grounding_metrics(run, tmp_path / "data")
    assert added["giou"] == 0.0 and added["count_accuracy"] == 0.0
    s = added["sampled"]
    assert s["giou"] == pytest.approx(0.75) and s["giou_sample_std"] == pytest.approx(0.5 ** 0.5 / 2 * 1.0)
    assert s["count_accuracy"] == pytest.approx(0.75) and s["vr_accuracy"] == pytest.approx(2.25)
    saved = json.loads((run / "metrics.json").read_text())["metrics"]
    assert saved["sampled"]["iou"] == 0.25 and saved["sampled"]["giou"] == pytest.approx(0.75)
    assert saved["sampled"]["temperature"] == 0.7
    again = add_grounding_metrics(run, tmp_path / "data")  # idempotent
    assert again["sampled"]["giou"] == pytest.approx(0.75)
    (run / "predictions_sampled.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="predictions_sampled"):
        add_grounding_metrics(run, tmp_path / "data")
