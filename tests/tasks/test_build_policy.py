"""The bad-item policy shared by every builder (segrl.tasks.build_log), on synthetic malformed sources.

Each task gets a small source built here with known faults; the tests check what is skipped,
repaired and excluded, the counts and entries of ``build_log.jsonl``, ``strict`` and
``max_skip_fraction``, and that a failed build writes nothing.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from datasets import Dataset, Features, Value, load_from_disk
from datasets import Image as ImageFeature
from PIL import Image

from segrl.tasks.base import DataError
from segrl.tasks.build_log import (
    BUILD_LOG,
    BadItem,
    BuildLog,
    TooManySkipped,
    read_build_log,
    report_lines,
    save_with_log,
)


def _nothing_written(tmp_path: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temp dirs


def _entries(out: Path) -> list[tuple]:
    _, entries = read_build_log(out)
    return [(e["kind"], Path(e["file"]).name, e["item"], e["field"], e["n"]) for e in entries]


# --- the collector --------------------------------------------------------------------------------------
def test_build_log_counts_fraction_and_lines(tmp_path):
    log = BuildLog("demo", max_skip_fraction=0.1, unit="question")
    log.count(20)
    log.skip(BadItem("a.json", "answer", "missing", item="question 'q1'"))
    log.skip(BadItem("b.json", None, "malformed JSON", message="b.json: malformed JSON"), n=1)
    log.repair("a.json", "question", "renumbered", item="question 'q2'")
    log.exclude("c.json", None, "fewer than K", n=3)
    assert (log.items, log.skipped, log.repaired, log.excluded) == (20, 2, 1, 3)
    assert log.skip_fraction == 0.1
    log.check()  # 2 / 20 = 0.1 is not more than 0.1
    assert str(log._errors[0]) == "a.json: question 'q1': field 'answer': missing"
    summary = log.summary(extra_key=7)
    assert summary["skipped_by_field"] == {"(whole item)": 1, "answer": 1}
    assert (summary["extra_key"], summary["unit"], summary["strict"]) == (7, "question", False)
    lines = [json.loads(x) for x in log.lines()]
    assert [x["kind"] for x in lines] == ["summary", "skipped", "skipped", "repaired", "excluded"]
    assert lines[1] == {"kind": "skipped", "file": "a.json", "item": "question 'q1'", "field": "answer",
                        "reason": "missing", "n": 1}
    log.skip(BadItem("d.json", "image", "not found"))  # 3 / 20 = 0.15 > 0.1
    with pytest.raises(TooManySkipped, match=r"demo: 3 of 20 questions are bad \(15\.0% > max_skip_fraction 0\.1\); "
                       r"nothing written\. First: a\.json: question 'q1': field 'answer': missing; b\.json: "
                       r"malformed JSON; d\.json: field 'image': not found\."):
        log.check()
    log.skip(BadItem("e.json", "x", "y"))
    assert log.first_errors(2).endswith("; and 2 more")


def test_strict_raises_the_first_bad_or_repairable_item_and_options_are_checked():
    log = BuildLog("demo", strict=True)
    bad = BadItem("a.json", "answer", "missing", item="question 'q1'")
    with pytest.raises(BadItem) as e:
        log.skip(bad)
    assert e.value is bad and isinstance(e.value, DataError)
    with pytest.raises(BadItem, match=r"a\.json: question 'q2': field 'question': renumbered \(strict: not repaired"):
        log.repair("a.json", "question", "renumbered", item="question 'q2'")
    log.exclude("a.json", None, "fewer than K")  # exclusions are never errors
    assert log.excluded == 1 and log.skipped == 0
    for bad_fraction in (-0.1, 1.5):
        with pytest.raises(ValueError, match="max_skip_fraction must be in"):
            BuildLog("demo", max_skip_fraction=bad_fraction)


def test_save_with_log_is_atomic(tmp_path):
    ds = {"train": Dataset.from_list([{"a": 1}])}
    from datasets import DatasetDict

    ds = DatasetDict(ds)
    out = tmp_path / "out"
    log = BuildLog("demo", max_skip_fraction=0.0)
    log.count(4)
    save_with_log(ds, out, log, note="x")
    summary, entries = read_build_log(out)
    assert (summary["kind"], summary["items"], summary["note"], entries) == ("summary", 4, "x", [])
    assert report_lines(out) == [f"bad items: 0 of 4 items skipped (0.0%), 0 repaired, 0 excluded; "
                                 f"listed in {out / BUILD_LOG}"]
    log.skip(BadItem("f", "g", "h"))
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(TooManySkipped):
        save_with_log(ds, out, log)
    assert sorted(p.name for p in out.rglob("*")) == before  # the previous build is untouched
    _nothing_written(tmp_path, tmp_path / "never")
    with pytest.raises(TooManySkipped):
        save_with_log(ds, tmp_path / "never", log)
    _nothing_written(tmp_path, tmp_path / "never")


# --- multichart --------------------------------------------------------------------------------------------
PREFACE = "The first chart is <image>. The second chart is <image>. Question: "


def _q(qid, text, answer, task="Direct_Questions/Text", images=("c1.png", "c2.png")):
    return {"id": qid, "image": [f"data\\g\\{name}" for name in images], "question": PREFACE + text,
            "answer": answer, "task": task, "type": "open-ended"}


def _parallel(qid, numbers, answer):
    lines = [f"{n}. What is item {k} in Chart {1 + k % 2}?" for k, n in enumerate(numbers, 1)]
    return _q(qid, "\n" + "\n".join(lines), answer, task="Parallel_Questions/Mixed")


def _write_multichart(root: Path, n_groups=10) -> tuple[Path, dict]:
    """``n_groups`` groups g0.. of 3 questions; g0 needs a repair, g1 has a bad question, g2 is
    broken JSON, g3 lacks a chart. Returns (source, {group: questions written})."""
    src = root / "mc"
    written = {}
    for g in range(n_groups):
        name = f"g{g}"
        d = src / "data" / name
        d.mkdir(parents=True)
        for j, colour in enumerate(((200, 0, 0), (0, 0, 200))):
            Image.new("RGB", (16, 12), colour).save(d / f"c{j + 1}.png")
        qs = [_q(f"{name}-q1", "What is the title of the first chart?", f"Title {g}"),
              _q(f"{name}-q2", "How many bars are in the second chart?", str(g))]
        if g == 0:
            qs.insert(0, _parallel("g0-q0", [1, 2, 2], "1; 2; 3"))  # 3 items, 3 parts: a typo, repaired
        elif g == 1:
            qs.insert(0, _parallel("g1-q0", [1, 2, 2], "1; 2"))  # 3 items, 2 parts: cannot be repaired
        else:
            qs.insert(0, _parallel(f"{name}-q0", [1, 2], "4; 5"))
        text = json.dumps(qs)
        (d / "chart-path_and_question-answer_pair.json").write_text(text[:40] if g == 2 else text, encoding="utf-8")
        if g == 3:
            (d / "c2.png").unlink()
        written[name] = qs
    return src, written


def test_multichart_repairs_skips_and_logs(tmp_path):
    from segrl.tasks.multichart import build, split_groups

    src, _ = _write_multichart(tmp_path)
    out = tmp_path / "out"
    # 28 items: 9 readable files x 3 questions + the broken file; bad: g1-q0, g2's file, g3's 3 questions
    with pytest.raises(TooManySkipped, match=r"multichart: 5 of 28 questions are bad \(17\.9% > max_skip_fraction "
                       r"0\.05\).*First: .*g1.*question 'g1-q0': field 'question': a parallel question needs "
                       r"sub-questions numbered 1\.\.n at line starts, found \[1, 2, 2\] \(and 2 sub-answers"):
        build(src, out)
    _nothing_written(tmp_path, out)

    ds = build(src, out, max_skip_fraction=0.2)
    summary, entries = read_build_log(out)
    assert (summary["items"], summary["skipped"], summary["repaired"], summary["excluded"]) == (28, 5, 1, 0)
    assert summary["skipped_by_field"] == {"(whole item)": 1, "image": 3, "question": 1}
    assert summary["counts"]["groups"] == 8 and summary["counts"]["groups_bad"] == 2
    assert [(e["kind"], Path(e["file"]).parent.name, e["item"], e["field"], e["n"]) for e in entries] == [
        ("repaired", "g0", "question 'g0-q0'", "question", 1),
        ("skipped", "g1", "question 'g1-q0'", "question", 1),
        ("skipped", "g2", None, None, 1),
        ("skipped", "g3", "group 'g3'", "image", 3),
    ]
    assert entries[0]["reason"] == "sub-questions numbered [1, 2, 2]; renumbered 1..3 in order (the answer has 3 parts)"
    assert entries[2]["reason"].startswith("malformed JSON")
    assert "c2.png: image file not found" in entries[3]["reason"]
    rows = {r["id"]: r for split in ds.values() for r in split}
    assert sorted(rows) == [f"g{g}" for g in (0, 1, 4, 5, 6, 7, 8, 9)]
    g0 = rows["g0"]  # the repaired question keeps all three sub-questions, in order
    assert g0["segment_references"] == [["1"], ["2"], ["3"], ["Title 0"], ["0"]]
    text = g0["prompt"][0]["content"][-1]["text"]
    assert "Answer 2 question: What is item 2 in Chart 1?\n\nAnswer 3 question: What is item 3 in Chart 2?" in text
    assert rows["g1"]["segment_references"] == [["Title 1"], ["1"]]  # only its bad question is gone
    assert json.loads(rows["g1"]["meta"])["question_ids"] == ["g1-q1", "g1-q2"]
    # the split is drawn on all 10 group directories: the bad groups move no other group
    _, test = split_groups([f"g{g}" for g in range(10)], 0, 0.2)
    assert sorted(ds["test"]["id"]) == sorted(set(test) - {"g2", "g3"})
    assert load_from_disk(str(out))["train"].num_rows == ds["train"].num_rows


def test_multichart_strict_names_file_and_field(tmp_path):
    from segrl.tasks.multichart import build

    src, written = _write_multichart(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(BadItem, match=r"g0/chart-path_and_question-answer_pair\.json: question 'g0-q0': "
                       r"field 'question': sub-questions numbered \[1, 2, 2\].*\(strict: not repaired"):
        build(src, out, strict=True)
    _nothing_written(tmp_path, out)
    path = src / "data" / "g0" / "chart-path_and_question-answer_pair.json"
    qs = written["g0"]
    qs[0] = _parallel("g0-q0", [1, 2, 3], "1; 2; 3")
    path.write_text(json.dumps(qs), encoding="utf-8")
    with pytest.raises(BadItem, match=r"g1/chart-path_and_question-answer_pair\.json: question 'g1-q0': "
                       r"field 'question'"):
        build(src, out, strict=True)
    qs = written["g1"]
    qs[0] = _parallel("g1-q0", [1, 2], "1; 2")
    (src / "data" / "g1" / "chart-path_and_question-answer_pair.json").write_text(json.dumps(qs), encoding="utf-8")
    with pytest.raises(BadItem, match=r"g2/chart-path_and_question-answer_pair\.json: malformed JSON") as e:
        build(src, out, strict=True)
    assert e.value.field is None  # the whole file
    _nothing_written(tmp_path, out)


def test_multichart_duplicate_ids_and_odd_image_lists_are_skipped_alone(tmp_path):
    from segrl.tasks.multichart import build

    src, written = _write_multichart(tmp_path, n_groups=4)
    for g in ("g1", "g2", "g3"):  # keep only g0 (repairable) faulty
        qs = [_parallel(f"{g}-q0", [1, 2], "4; 5"), *written[g][1:]]
        (src / "data" / g / "chart-path_and_question-answer_pair.json").write_text(json.dumps(qs), encoding="utf-8")
    Image.new("RGB", (16, 12)).save(src / "data" / "g3" / "c2.png")
    qs = written["g0"] + [dict(written["g0"][1]), _q("g0-q9", "Which chart is wider?", "Chart 1",
                                                     images=("c2.png", "c1.png"))]
    (src / "data" / "g0" / "chart-path_and_question-answer_pair.json").write_text(json.dumps(qs), encoding="utf-8")
    ds = build(src, tmp_path / "out", max_skip_fraction=0.2)
    assert [(k, f, i, fld) for k, f, i, fld, _ in _entries(tmp_path / "out")] == [
        ("repaired", "chart-path_and_question-answer_pair.json", "question 'g0-q0'", "question"),
        ("skipped", "chart-path_and_question-answer_pair.json", "question 'g0-q1'", "id"),
        ("skipped", "chart-path_and_question-answer_pair.json", "question 'g0-q9'", "image"),
    ]
    g0 = next(r for s in ds.values() for r in s if r["id"] == "g0")
    assert json.loads(g0["meta"])["question_ids"] == ["g0-q0", "g0-q1", "g0-q2"]


# --- charts --------------------------------------------------------------------------------------------------
def _broken_table():
    from segrl.tasks.chartgen import Table

    years = tuple(str(y) for y in range(2000, 2010))
    return Table("broken", "testpkg", "year", years, {"a": (1.0,) * 9 + ("n/a",), "b": (2.0,) * 10}, "units")


def test_charts_malformed_table_skips_the_groups_that_draw_it(tmp_path, monkeypatch):
    from segrl.tasks import chartgen

    monkeypatch.setitem(chartgen.TABLES, "broken", _broken_table)
    with pytest.raises(BadItem, match=r"chart table 'broken' \(testpkg:broken\): field 'values': series 'a' at "
                       r"x=2009: 'n/a' is not a finite number"):
        chartgen.check_table(_broken_table())
    kw = dict(questions_per_answer=1, count=8, chart_side=48, seed=1, tables=["co2", "broken"])
    # seed 1: groups 0-7 draw their table like this (test = 2 groups, one of each)
    drew = {f"charts-1-{i:05d}": random.Random(f"chartgen:1:{i}").choice(["broken", "co2"]) for i in range(8)}
    n_bad = sum(t == "broken" for t in drew.values())
    assert n_bad == 3
    out = tmp_path / "out"
    with pytest.raises(TooManySkipped, match=r"charts: 3 of 8 groups are bad \(37\.5%"):
        chartgen.build(None, out, **kw)
    _nothing_written(tmp_path, out)
    with pytest.raises(BadItem, match=r"testpkg:broken.*field 'values'"):
        chartgen.build(None, out, strict=True, **kw)
    _nothing_written(tmp_path, out)
    ds = chartgen.build(None, out, max_skip_fraction=1.0, **kw)
    kept = sorted(r["id"] for s in ds.values() for r in s)
    assert kept == sorted(rid for rid, t in drew.items() if t == "co2")  # every other group is as without the fault
    assert all(json.loads(r["meta"])["table"] == "co2" for s in ds.values() for r in s)
    summary, entries = read_build_log(out)
    assert (summary["items"], summary["skipped"], summary["skipped_by_field"]) == (8, 3, {"values": 3})
    assert (len(ds["train"]), len(ds["test"])) == (4, 1)
    assert sorted(e["group"] for e in entries) == sorted(rid for rid, t in drew.items() if t == "broken")
    assert {(e["file"], e["field"]) for e in entries} == {("testpkg:broken", "values")}


def test_charts_loader_that_breaks_is_a_bad_table(tmp_path, monkeypatch):
    from segrl.tasks import chartgen

    def renamed_column():
        raise KeyError("price")

    monkeypatch.setitem(chartgen.TABLES, "renamed", renamed_column)
    with pytest.raises(BadItem, match=r"chart table 'renamed': the loader failed on its package's data \(KeyError"):
        chartgen.build(None, tmp_path / "o", questions_per_answer=1, count=4, chart_side=48, tables=["renamed", "co2"],
                       strict=True)
    with pytest.raises(DataError, match="unknown chart table"):  # a wrong option is not a bad item
        chartgen.build(None, tmp_path / "o", count=4, tables=["nope"], max_skip_fraction=1.0)
    _nothing_written(tmp_path, tmp_path / "o")


# --- docci --------------------------------------------------------------------------------------------------
def _write_docci(root: Path, n_train=8, n_test=4) -> Path:
    (root / "images").mkdir(parents=True)
    lines = []
    for split, n in (("train", n_train), ("test", n_test)):
        for j in range(n):
            eid = f"{split}_{j}"
            colour = (20 * j, 100, 0 if split == "train" else 200)
            Image.new("RGB", (20, 16), colour).save(root / "images" / f"{eid}.png")
            lines.append(json.dumps({"example_id": eid, "split": split, "image_file": f"{eid}.png",
                                     "description": f"A {split} photo {j}."}))
    (root / "docci_descriptions.jsonlines").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_docci_bad_lines_and_images_are_skipped(tmp_path):
    from segrl.tasks.docci import build

    root = _write_docci(tmp_path / "docci")
    path = root / "docci_descriptions.jsonlines"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:30]  # line 3 (train_2) cut mid-object
    lines[6] = lines[6].replace('"split": "train"', '"split": "validation"')  # line 7: unknown split
    path.write_text("\n".join(lines) + "\n")
    (root / "images" / "train_4.png").unlink()  # line 5's image
    out = tmp_path / "out"
    with pytest.raises(TooManySkipped, match=r"docci: 3 of 12 lines are bad \(25\.0%"):
        build(root, out, source_kind="docci", panels=2)
    _nothing_written(tmp_path, out)
    ds = build(root, out, source_kind="docci", panels=2, max_skip_fraction=0.25)
    assert [(k, i, f) for k, _, i, f, _ in _entries(out)] == [
        ("skipped", "line 3", None), ("skipped", "line 7", "split"), ("skipped", "line 5", "image_file")]
    _, entries = read_build_log(out)
    assert entries[0]["reason"].startswith("unreadable JSON line") and "train_4.png" in entries[2]["reason"]
    # 6 parsed train lines, shuffled as without faults; train_4's image is missing, so the next
    # record takes its slot: 5 good records give 2 groups of 2
    order = ["train_0", "train_1", "train_3", "train_4", "train_5", "train_7"]
    random.Random("docci-group:0:train").shuffle(order)
    assert "train_4" in order[:5]  # reached (a bad image is found when its group is composed)
    used = [i for r in ds["train"] for i in json.loads(r["meta"])["source_ids"]]
    assert used == [i for i in order if i != "train_4"][:4]
    assert len(ds["test"]) == 2
    with pytest.raises(BadItem, match=r"docci_descriptions\.jsonlines:3: unreadable JSON line"):
        build(root, out, source_kind="docci", panels=2, strict=True)


def test_docci_strict_names_line_and_field(tmp_path):
    from segrl.tasks.docci import build

    root = _write_docci(tmp_path / "docci")
    path = root / "docci_descriptions.jsonlines"
    lines = path.read_text().splitlines()
    obj = json.loads(lines[9])
    obj["description"] = "  "
    lines[9] = json.dumps(obj)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadItem, match=r"jsonlines:10: field 'description': expected a non-empty string") as e:
        build(root, tmp_path / "o", source_kind="docci", panels=2, strict=True)
    assert (Path(e.value.file).name, e.value.item, e.value.field) == ("docci_descriptions.jsonlines", "line 10",
                                                                       "description")
    ds = build(root, tmp_path / "o", source_kind="docci", panels=2, max_skip_fraction=0.1)  # 1 of 12
    assert read_build_log(tmp_path / "o")[0]["skipped"] == 1 and len(ds["test"]) == 1  # 3 good test lines


def test_docci_synthetic_build_logs_zero_bad_items(tmp_path):
    from segrl.tasks.docci import build

    build(None, tmp_path / "s", count=3, panels=1, panel_side=24)
    summary, entries = read_build_log(tmp_path / "s")
    assert (summary["items"], summary["skipped"], summary["unit"], entries) == (3, 0, "example", [])


# --- mmsci ---------------------------------------------------------------------------------------------------
def _mmsci_record(image, caption):
    return {"uid": image.split("_")[0], "category": "c", "subject": "s", "abstract": "An abstract.",
            "content": "Some content.", "image": image, "caption": caption}


def _write_mmsci(root: Path, train: list, dev: list) -> Path:
    bench = root / "benchmark"
    for split, recs in (("train", train), ("dev", dev)):
        (bench / split / "images").mkdir(parents=True)
        for j, rec in enumerate(recs):
            if isinstance(rec, dict) and isinstance(rec.get("image"), str):
                Image.new("RGB", (24, 24), (10 * j, 0, 0)).save(bench / split / "images" / rec["image"])
        (bench / split / "image_caption_generation_data.json").write_text(json.dumps(recs), encoding="utf-8")
    return bench


def test_mmsci_bad_records_skipped_unsplittable_excluded(tmp_path):
    from segrl.tasks.mmsci import build

    good = [_mmsci_record(f"p{j}_figure_1.png", f"Title. (a) Left {j}. (b) Right {j}.") for j in range(8)]
    no_caption = _mmsci_record("p8_figure_1.png", "x")
    del no_caption["caption"]
    train = good[:6] + [no_caption, _mmsci_record("p9_figure_1.png", "T. (a) A. (b) B."), "not a record"]
    dev = good[6:] + [_mmsci_record("p10_figure_1.png", "One panel only.")]
    bench = _write_mmsci(tmp_path / "src", train, dev)
    (bench / "train" / "images" / "p9_figure_1.png").unlink()
    out = tmp_path / "out"
    with pytest.raises(TooManySkipped, match=r"mmsci: 3 of 12 records are bad \(25\.0%.*record #6: field 'caption' "
                       r"missing"):
        build(bench, out)
    _nothing_written(tmp_path, out)
    with pytest.raises(BadItem, match=r"train/image_caption_generation_data\.json: record #6: field 'caption' missing"):
        build(bench, out, strict=True)
    ds = build(bench, out, max_skip_fraction=0.25)
    assert (len(ds["train"]), len(ds["test"])) == (6, 2)
    summary, entries = read_build_log(out)
    assert (summary["items"], summary["skipped"], summary["excluded"]) == (12, 3, 1)
    assert summary["splits"]["train"]["skipped_by_reason"] == {"bad field 'caption'": 1, "bad field 'image'": 1,
                                                               "bad record": 1}
    assert [(e["kind"], e["split"], e["index"], e["field"]) for e in entries] == [
        ("skipped", "train", 6, "caption"), ("skipped", "train", 7, "image"), ("skipped", "train", 8, None),
        ("excluded", "test", 2, "caption")]
    assert entries[3]["reason"] == "no sub-figure labels"
    # an unreadable caption file is one bad item, named; the split is then empty
    (bench / "dev" / "image_caption_generation_data.json").write_text("[{", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev/image_caption_generation_data\.json: no usable figure \(0 records; "
                       r"skipped: \{'unreadable file': 1\}\)"):
        build(bench, out, max_skip_fraction=1.0)
    (bench / "train" / "image_caption_generation_data.json").write_text(json.dumps(good[:6]), encoding="utf-8")
    with pytest.raises(BadItem, match=r"dev/image_caption_generation_data\.json: malformed JSON"):
        build(bench, out, strict=True)


# --- grounding ------------------------------------------------------------------------------------------------
VR = Features({"id": Value("string"), "problem": Value("string"), "solution": Value("string"), "image": ImageFeature()})


def _vr_row(i, solution=None):
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (i * 30, 0, 0)).save(buf, format="PNG")
    sol = solution if solution is not None else json.dumps([{"bbox_2d": [1, 1, 9, 9], "point_2d": [5, 5]}])
    return {"id": f"vr-{i}", "problem": f"object {i}", "solution": sol, "image": {"bytes": buf.getvalue(), "path": None}}


def test_grounding_bad_rows_and_an_unreadable_parquet_file(tmp_path):
    from segrl.tasks.grounding import build

    root = tmp_path / "snap"
    root.mkdir()
    rows = [_vr_row(i) for i in range(4)] + [_vr_row(4, solution='[{"bbox_2d": [9, 1, 2, 9], "point_2d": [5, 5]}]')]
    Dataset.from_list(rows, features=VR).to_parquet(str(root / "train-00000-of-00002.parquet"))
    (root / "train-00001-of-00002.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    out = tmp_path / "out"
    with pytest.raises(TooManySkipped, match=r"grounding: 2 of 6 rows are bad"):
        build(str(root), out, source_kind="visionreasoner")
    _nothing_written(tmp_path, out)
    with pytest.raises(BadItem, match=r"train-00001-of-00002\.parquet: cannot read the train parquet file"):
        build(str(root), out, source_kind="visionreasoner", strict=True)
    ds = build(str(root), out, source_kind="visionreasoner", max_skip_fraction=0.4, test_fraction=0.25)
    assert sorted([*ds["train"]["id"], *ds["test"]["id"]]) == ["vr-0", "vr-1", "vr-2", "vr-3"]
    assert [(k, f, i, fld) for k, f, i, fld, _ in _entries(out)] == [
        ("skipped", "train-00001-of-00002.parquet", None, None), ("skipped", "snap", "[train][4]", "solution")]
    (root / "train-00001-of-00002.parquet").unlink()
    with pytest.raises(BadItem, match=r"snap\[train\]\[4\]: field 'solution': box \[9\.0, 1\.0, 2\.0, 9\.0\] has x2 < x1"):
        build(str(root), out, source_kind="visionreasoner", strict=True)


def test_cli_prints_counts_and_takes_both_options(tmp_path):
    from typer.testing import CliRunner

    from segrl.cli import app

    root = _write_docci(tmp_path / "docci")
    path = root / "docci_descriptions.jsonlines"
    lines = path.read_text().splitlines()
    lines[0] = lines[0][:20]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    base = ["build-data", "docci", "--source", str(root), "--out", str(out), "--source-kind", "docci", "--panels", "2"]
    failed = CliRunner().invoke(app, base)
    assert failed.exit_code == 2 and "1 of 12 lines are bad (8.3% > max_skip_fraction 0.05)" in " ".join(
        failed.output.split())
    _nothing_written(tmp_path, out)
    result = CliRunner().invoke(app, [*base, "--max-skip-fraction", "0.1"])
    assert result.exit_code == 0, result.output
    assert ("bad items: 1 of 12 lines skipped (8.3%; (whole item): 1), 0 repaired, 0 excluded; listed in"
            in " ".join(result.output.split()))
    strict = CliRunner().invoke(app, [*base, "--max-skip-fraction", "0.1", "--strict"])
    assert strict.exit_code == 2  # the console may wrap the long path anywhere: compare without blanks
    assert "docci_descriptions.jsonlines:1:unreadableJSONline" in "".join(strict.output.split())
