"""Multi-panel captioning task: synthetic build, the DOCCI loader on a fixture in DOCCI's file format, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from datasets import load_from_disk
from PIL import Image

from segrl.segments import parse_segments
from segrl.tasks.base import DataError, format_instruction
from segrl.tasks.docci import DESCRIPTIONS_FILE, TASK, build, panel_labels
from segrl.tasks.panels import SceneChange, SceneSpec, apply_change, describe, grid_layout


def _meta(row) -> dict:
    return json.loads(row["meta"])


def _check_row(row, k):
    labels = panel_labels(k)
    assert row["task"] == "docci" == TASK.name
    assert row["segment_labels"] == labels
    assert len(row["segment_references"]) == k and all(len(r) == 1 for r in row["segment_references"])
    parsed = parse_segments(row["reference"], labels)
    assert parsed.texts == [r[0] for r in row["segment_references"]] and parsed.ordered
    [message] = row["prompt"]
    assert message["role"] == "user"
    assert [set(b) for b in message["content"]] == [{"type", "text"}] * 2
    assert message["content"][0] == {"type": "image", "text": None}
    assert message["content"][1]["type"] == "text"
    assert message["content"][1]["text"].endswith(format_instruction(labels, unit="panel"))
    [grid] = row["images"]
    rows, cols = grid_layout(k)
    meta = _meta(row)
    side = meta["panel_side"]
    gap = max(2, side // 32)
    assert grid.size == (cols * side + (cols + 1) * gap, rows * side + (rows + 1) * gap)
    assert meta["layout"] == [rows, cols] and meta["panels"] == k and meta["task_version"] == TASK.version
    assert len(meta["panel_boxes"]) == k
    return meta


# --- synthetic --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("docci") / "synthetic"
    return build(None, out, panels=3, count=10, seed=1), out


def test_synthetic_rows(synthetic):
    ds, out = synthetic
    assert (len(ds["train"]), len(ds["test"])) == (8, 2)
    for split in ("train", "test"):
        for row in ds[split]:
            meta = _check_row(row, 3)
            specs = [SceneSpec.from_dict(d) for d in meta["scene_specs"]]
            assert [[describe(s)] for s in specs] == row["segment_references"]
            assert meta["source_kind"] == "synthetic" and meta["entangled"] is False
            assert "shapes" in row["prompt"][0]["content"][1]["text"]
    # the 2x2 grid of 3 panels: boxes as compose_grid lays them out
    assert _meta(ds["train"][0])["panel_boxes"] == [[3, 3, 115, 115], [118, 3, 230, 115], [3, 118, 115, 230]]
    disk = load_from_disk(str(out))
    assert disk["train"]["id"] == ds["train"]["id"] and disk["test"]["reference"] == ds["test"]["reference"]


def test_synthetic_deterministic_and_seeded(tmp_path, synthetic):
    ds, _ = synthetic
    again = build(None, tmp_path / "a", panels=3, count=10, seed=1)
    for split in ("train", "test"):
        assert again[split]["id"] == ds[split]["id"]
        assert again[split]["reference"] == ds[split]["reference"]
        assert [r["images"][0].tobytes() for r in again[split]] == [
            r["images"][0].tobytes() for r in ds[split]
        ]
    other = build(None, tmp_path / "b", panels=3, count=10, seed=2)
    assert set(other["train"]["reference"]).isdisjoint(ds["train"]["reference"])
    # the split seed moves rows between splits without changing them
    resplit = build(None, tmp_path / "c", panels=3, count=10, seed=1, split_seed=5)
    assert resplit["test"]["id"] != ds["test"]["id"]
    rows = {r["id"]: r["reference"] for s in ("train", "test") for r in ds[s]}
    assert all(rows[r["id"]] == r["reference"] for s in ("train", "test") for r in resplit[s])
    # example i does not depend on count
    fewer = build(None, tmp_path / "d", panels=3, count=4, seed=1)
    assert all(rows[r["id"]] == r["reference"] for s in ("train", "test") for r in fewer[s])


def test_synthetic_default_count_and_one_panel(tmp_path):
    t0 = time.perf_counter()
    ds = build(None, tmp_path / "k4")
    print(f"\nbuilt 200 synthetic K=4 examples in {time.perf_counter() - t0:.1f}s")
    assert (len(ds["train"]), len(ds["test"])) == (160, 40)
    _check_row(ds["test"][0], 4)
    one = build(None, tmp_path / "k1", panels=1, count=2)
    meta = _check_row(one["train"][0], 1)
    assert one["train"][0]["images"][0].size == (118, 118) and meta["layout"] == [1, 1]
    assert "numbered 1" in one["train"][0]["prompt"][0]["content"][1]["text"]


def test_entangled_captions_refer_to_earlier_panels(tmp_path):
    ds = build(None, tmp_path / "ent", panels=4, count=6, entangled=True)
    for row in ds["train"]:
        meta = _check_row(row, 4)
        assert row["id"].endswith("-entangled") and meta["entangled"] is True
        refs = [r[0] for r in row["segment_references"]]
        specs = [SceneSpec.from_dict(d) for d in meta["scene_specs"]]
        assert refs[0] == describe(specs[0]) and meta["refers_to"][0] is None and meta["changes"][0] is None
        for k in range(1, 4):
            j = meta["refers_to"][k]
            assert 1 <= j <= k and refs[k].startswith(f"As in panel {j}, but ")
            assert specs[k] == apply_change(specs[j - 1], SceneChange(**meta["changes"][k]))
        assert "As in panel N, but" in row["prompt"][0]["content"][1]["text"]


@pytest.mark.parametrize("k", [0, -2])
def test_panels_below_one_is_a_data_error(tmp_path, k):
    out = tmp_path / "out"
    with pytest.raises(DataError, match="panels"):
        build(None, out, panels=k)
    assert not out.exists()


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="source_kind"):
        build(None, tmp_path / "o", source_kind="coco")
    with pytest.raises(ValueError, match="count"):
        build(None, tmp_path / "o", count=1)
    with pytest.raises(ValueError, match="entangled"):
        build(tmp_path, tmp_path / "o", source_kind="docci", entangled=True)
    assert not (tmp_path / "o").exists()


# --- DOCCI fixture (the published file format) ---------------------------------------------------
COLOUR = {"train": (200, 40, 40), "test": (40, 40, 200), "qual_dev": (40, 200, 40)}


def _write_docci(root: Path, n_train=8, n_test=4, n_qual=2) -> dict[str, dict]:
    """A DOCCI-shaped directory: ``docci_descriptions.jsonlines`` + ``images/<example_id>.png``.

    Every image is a solid colour that encodes its index (so a panel can be traced to its
    example), with a different size and aspect ratio each; one description spans lines.
    """
    (root / "images").mkdir(parents=True)
    examples = {}
    lines = []
    for split, n in (("train", n_train), ("test", n_test), ("qual_dev", n_qual)):
        for j in range(n):
            eid = f"{split}_{j:05d}"
            base = COLOUR[split]
            colour = (base[0], base[1] + 10 * j, base[2])
            # DOCCI ships large JPEGs: one here, decoded through Image.draft; the rest small PNGs
            name = f"{eid}.jpg" if (split, j) == ("train", 3) else f"{eid}.png"
            size = (960, 720) if name.endswith(".jpg") else (60 + 10 * j, 40 + 5 * j)
            Image.new("RGB", size, colour).save(root / "images" / name)
            desc = (
                f"A {split} photo number {j}.  It shows a plain wall."
                if j != 1
                else f"A {split} photo\n\nwith a paragraph break."
            )
            ex = {
                "example_id": eid,
                "split": split,
                "image_file": name,
                "description": desc,
                "cluster_id": "ignored",
            }
            examples[eid] = {**ex, "colour": colour, "clean": " ".join(desc.split())}
            lines.append(json.dumps(ex))
    (root / DESCRIPTIONS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return examples


@pytest.fixture
def docci_dir(tmp_path):
    root = tmp_path / "docci"
    return root, _write_docci(root)


def test_docci_rows_grouped_in_k_with_their_descriptions(docci_dir, tmp_path):
    root, examples = docci_dir
    ds = build(root, tmp_path / "out", source_kind="docci", panels=2, seed=0)
    assert (len(ds["train"]), len(ds["test"])) == (4, 2)
    for split in ("train", "test"):
        seen = []
        for row in ds[split]:
            meta = _check_row(row, 2)
            ids = meta["source_ids"]
            assert (
                row["id"] == "+".join(ids) and meta["docci_split"] == split and meta["source_kind"] == "docci"
            )
            assert all(examples[i]["split"] == split for i in ids)  # DOCCI's own split is kept
            assert row["segment_references"] == [[examples[i]["clean"]] for i in ids]
            assert meta["image_files"] == [examples[i]["image_file"] for i in ids]
            grid = row["images"][0]
            for box, eid in zip(meta["panel_boxes"], ids):  # each panel shows its own image (JPEG: +-3)
                pixel = grid.getpixel(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2))
                assert max(abs(a - b) for a, b in zip(pixel, examples[eid]["colour"])) <= 3
            seen += ids
        assert sorted(seen) == sorted(e for e, x in examples.items() if x["split"] == split)  # qual_* skipped
    assert "\n" not in ds["train"]["reference"][0].split("Panel 2:")[0].strip()


def test_docci_grouping_seed_count_and_remainder(docci_dir, tmp_path):
    root, _ = docci_dir
    a = build(root, tmp_path / "a", source_kind="docci", panels=2, seed=0)
    b = build(root, tmp_path / "b", source_kind="docci", panels=2, seed=0)
    c = build(root, tmp_path / "c", source_kind="docci", panels=2, seed=3)
    assert a["train"]["id"] == b["train"]["id"] and a["train"]["id"] != c["train"]["id"]
    assert [r["images"][0].tobytes() for r in a["test"]] == [r["images"][0].tobytes() for r in b["test"]]
    capped = build(root, tmp_path / "d", source_kind="docci", panels=2, count=1)
    assert capped["train"]["id"] == a["train"]["id"][:1] and capped["test"]["id"] == a["test"]["id"][:1]
    three = build(root, tmp_path / "e", source_kind="docci", panels=3)  # 8 -> 2 groups, 4 -> 1 group
    assert (len(three["train"]), len(three["test"])) == (2, 1)
    assert _meta(three["train"][0])["layout"] == [2, 2]


def _fails(root, out, match, **kw):
    with pytest.raises(DataError, match=match):
        build(root, out, source_kind="docci", **{"panels": 2, **kw})
    assert not out.exists()


def test_docci_missing_image(docci_dir, tmp_path):
    root, _ = docci_dir
    (root / "images" / "test_00002.png").unlink()
    _fails(
        root, tmp_path / "out", r"test_00002\.png: image file not found .*docci_descriptions\.jsonlines:11"
    )


def test_docci_broken_line_named_by_number(docci_dir, tmp_path):
    root, _ = docci_dir
    path = root / DESCRIPTIONS_FILE
    lines = path.read_text().splitlines()
    lines.insert(2, "")  # blank lines are skipped but still counted
    lines[5] = lines[5][:25]  # physical line 6 is cut mid-object
    path.write_text("\n".join(lines) + "\n")
    _fails(root, tmp_path / "out", r"docci_descriptions\.jsonlines:6: unreadable JSON line")


def test_docci_missing_or_bad_field(docci_dir, tmp_path):
    root, _ = docci_dir
    path = root / DESCRIPTIONS_FILE
    lines = path.read_text().splitlines()
    good = list(lines)
    obj = json.loads(lines[1])
    del obj["description"]
    lines[1] = json.dumps(obj)
    path.write_text("\n".join(lines) + "\n")
    _fails(root, tmp_path / "out", r"jsonlines:2: field 'description' missing")
    obj = json.loads(good[3])
    obj["split"] = "validation"
    path.write_text("\n".join(good[:3] + [json.dumps(obj)] + good[4:]) + "\n")
    _fails(root, tmp_path / "out", r"jsonlines:4: field 'split': 'validation'")
    path.write_text("\n".join(good + [good[0]]) + "\n")
    _fails(root, tmp_path / "out", r"jsonlines:15: field 'example_id': duplicate 'train_00000'")


def test_docci_other_errors(tmp_path, docci_dir):
    root, _ = docci_dir
    _fails(root, tmp_path / "out", "panels", panels=0)
    _fails(root, tmp_path / "out", r"split 'test' has 4 examples, fewer than panels=5", panels=5)
    _fails(tmp_path / "nowhere" / "docci", tmp_path / "out", "DOCCI directory not found")
    (tmp_path / "empty").mkdir()
    _fails(tmp_path / "empty", tmp_path / "out", "descriptions file not found")


def test_existing_output_kept_on_error(docci_dir, tmp_path):
    root, _ = docci_dir
    out = tmp_path / "out"
    build(root, out, source_kind="docci", panels=2)
    before = sorted(p.name for p in out.rglob("*"))
    (root / "images" / "train_00000.png").unlink()
    with pytest.raises(DataError):
        build(root, out, source_kind="docci", panels=2)
    assert sorted(p.name for p in out.rglob("*")) == before


def test_hub_id_offline_gives_a_clear_error(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **kw):
        raise ConnectionError("Couldn't reach 'google/docci' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        DataError,
        match=r"google/docci: not a local directory, and loading it from the Hugging Face hub failed",
    ):
        build("google/docci", tmp_path / "out", source_kind="docci")
    assert not (tmp_path / "out").exists()


def test_hub_records_are_grouped_like_local_ones(tmp_path, monkeypatch):
    import datasets

    def fake(name, *a, **kw):
        return {
            split: [
                {
                    "example_id": f"{split}_{j}",
                    "description": f"{split} {j}",
                    "image": Image.new("RGB", (30, 20), (j * 40, 0, 0)),
                }
                for j in range(4)
            ]
            for split in ("train", "test")
        }

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    ds = build("google/docci", tmp_path / "out", source_kind="docci", panels=2)
    assert (len(ds["train"]), len(ds["test"])) == (2, 2)
    meta = _check_row(ds["test"][0], 2)
    assert meta["source"] == "google/docci" and all(i.startswith("test_") for i in meta["source_ids"])
