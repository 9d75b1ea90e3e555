"""MultiChartQA task: the full real sample, row invariants, prompt cleaning, splits, and bad input."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
from datasets import load_from_disk
from PIL import Image

from segrl.segments import parse_segments
from segrl.tasks.base import DataError, format_instruction
from segrl.tasks.multichart import GROUP_FILE, TASK, build, long_form_chunks, split_groups
from tests.conftest import require

SOURCE = Path(__file__).resolve().parents[2].parent / "shared/data/multichartqa"
needs_data = pytest.mark.usefixtures("real_multichart")


@pytest.fixture
def real_multichart():
    require((SOURCE / "data").is_dir(), f"the real MultiChartQA sample at {SOURCE}")

G0 = "arxiv_0_2406.14784v1"  # 3 charts; question 0 is a 3-part parallel question
G1 = "oecd_0_adult-education-level"  # opens a question with "Note that the light blue bar ..."


def _expected_segments() -> tuple[int, int]:
    """(groups, segments) counted straight from the JSON: 1 per question, 1 per sub-answer if parallel."""
    n_groups = n_seg = 0
    for f in sorted((SOURCE / "data").glob(f"*/{GROUP_FILE}")):
        n_groups += 1
        for q in json.loads(f.read_text(encoding="utf-8")):
            n_seg += len(q["answer"].split(";")) if q["task"].startswith("Parallel_Questions") else 1
    return n_groups, n_seg


def _copy_groups(tmp_path: Path, names=(G0, G1)) -> Path:
    src = tmp_path / "src"
    for name in names:
        shutil.copytree(SOURCE / "data" / name, src / "data" / name)
    return src


def _text(row) -> str:
    return row["prompt"][0]["content"][-1]["text"]


def _n_images(split) -> list[int]:
    return [len(x) for x in split.data.column("images").to_pylist()]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    require((SOURCE / "data").is_dir(), f"the real MultiChartQA sample at {SOURCE}")
    out = tmp_path_factory.mktemp("mc") / "multichart"
    t0 = time.perf_counter()
    ds = build(SOURCE, out, seed=0, test_fraction=0.2)
    print(f"\nbuilt all MultiChartQA groups in {time.perf_counter() - t0:.1f}s")
    return ds, out


@needs_data
def test_full_build_counts(full):
    ds, _ = full
    n_groups, n_seg = _expected_segments()
    assert n_groups == 150
    assert (len(ds["train"]), len(ds["test"])) == (120, 30)
    ids = list(ds["train"]["id"]) + list(ds["test"]["id"])
    assert len(set(ids)) == 150
    assert sum(len(x) for s in ds.values() for x in list(s["segment_labels"])) == n_seg
    assert n_seg > 600  # parallel questions add sub-answers


@needs_data
def test_rows_are_well_formed(full):
    ds, _ = full
    for split in ds.values():
        rows = split.remove_columns("images")
        for row, n_img in zip(rows, _n_images(split)):
            labels = row["segment_labels"]
            k = len(labels)
            assert labels == [f"Answer {i}" for i in range(1, k + 1)]
            assert row["task"] == "multichart"
            assert len(row["segment_references"]) == k and all(len(r) == 1 for r in row["segment_references"])
            parsed = parse_segments(row["reference"], labels)
            assert parsed.texts == [r[0] for r in row["segment_references"]]
            assert parsed.ordered and parsed.duplicates == 0 and parsed.unexpected == 0

            assert 2 <= n_img <= 3
            (msg,) = row["prompt"]
            assert msg["role"] == "user"
            blocks = msg["content"]
            assert all(set(b) == {"type", "text"} for b in blocks)
            images = [b for b in blocks if b["type"] == "image"]
            assert len(images) == n_img and all(b["text"] is None for b in images)
            expected = []
            for i in range(1, n_img + 1):
                expected += [("text", f"Chart {i}:"), ("image", None)]
            assert [(b["type"], b["text"]) for b in blocks[:-1]] == expected
            text = _text(row)
            assert text.endswith(format_instruction(labels))
            for label in labels:
                assert text.count(f"{label} question:") == 1
            for leftover in (
                "<image>",
                "The_answer",
                "answer format should",
                "'Answer:",
                "Question:",
                "Ã",
                "\xa0",
            ):
                assert leftover not in text, (row["id"], leftover)

            meta = json.loads(row["meta"])
            assert meta["source"] == f"data/{row['id']}"
            assert meta["task_version"] == TASK.version
            assert meta["n_images"] == n_img and meta["n_segments"] == k
            assert len(meta["question_ids"]) == len(meta["question_tasks"]) == 4
            assert len(meta["answer_types"]) == len(meta["segment_questions"]) == k
            assert set(meta["answer_types"]) <= {"multiple-choice", "open-ended"}
            assert meta["segment_questions"] == sorted(meta["segment_questions"])
            assert set(meta["segment_questions"]) == {0, 1, 2, 3}


@needs_data
def test_saved_dataset_reloads(full):
    ds, out = full
    back = load_from_disk(str(out))
    assert {s: list(back[s]["id"]) for s in back} == {s: list(ds[s]["id"]) for s in ds}
    img = back["test"][0]["images"][0]
    assert img.mode == "RGB" and min(img.size) > 0


@needs_data
def test_double_encoded_text_is_repaired(full):
    ds, _ = full
    refs = [r[0] for s in ds.values() for x in list(s["segment_references"]) for r in x]
    assert "Türkiye" in refs
    assert not any("Ã" in r or "Î" in r or r.endswith("Â") for r in refs)


@needs_data
def test_known_group_content(tmp_path):
    ds = build(_copy_groups(tmp_path), tmp_path / "out")
    assert len(ds["train"]) == 1 and len(ds["test"]) == 1
    (row,) = [r for s in ds.values() for r in s if r["id"] == G0]
    assert row["id"] == G0
    assert row["segment_labels"] == [f"Answer {i}" for i in range(1, 7)]
    assert row["segment_references"] == [["0"], ["Cubic Rewards"], ["200"], ["2"], ["90"], ["500"]]
    assert row["reference"].splitlines()[1] == "Answer 2: Cubic Rewards"
    text = _text(row)
    assert "the first chart is Chart 1, the second chart is Chart 2 and the third chart is Chart 3" in text
    assert (
        "Answer 1 question: What is the spatially lowest labeled tick on the vertical axis "
        "in the third chart?" in text
    )
    assert "Answer 3 question: What is difference between consecutive numerical tick values" in text
    assert (
        "Answer 5 question:\n1. What is the approximate convergence value" in text
    )  # non-parallel, numbered
    assert "the final answer is the answer to the first question minus" in text
    assert "The first chart is" not in text and "intermediate calculation" not in text
    meta = json.loads(row["meta"])
    assert meta["question_ids"] == [f"group_0_question_{i}" for i in range(4)]
    assert meta["segment_questions"] == [0, 0, 0, 1, 2, 3]
    assert meta["image_files"][0] == "Dueling_Max_Min_Cumulative_Regret_1.png"
    assert len(row["images"]) == 3 and all(im.mode == "RGB" for im in row["images"])


@needs_data
def test_keep_notes_false_drops_instructions_only(tmp_path):
    src = _copy_groups(tmp_path)
    kept = build(src, tmp_path / "a", keep_notes=True)
    dropped = build(src, tmp_path / "b", keep_notes=False)
    kept = {r["id"]: r for s in kept.values() for r in s}
    dropped = {r["id"]: r for s in dropped.values() for r in s}
    assert set(kept) == set(dropped) == {G0, G1}
    for gid, row_d in dropped.items():
        row_k = kept[gid]
        tk, td = _text(row_k), _text(row_d)
        assert len(td) < len(tk)
        assert row_k["segment_references"] == row_d["segment_references"]
        for block in td.split("\n\n")[1:-1]:  # each question: only its first line may be a note
            assert not any(line.startswith("Note that") for line in block.split("\n")[1:]), block
    assert "Note that the light blue bar represents the average adult education level" in _text(dropped[G1])
    assert "the final answer is the answer to the first question minus" in _text(dropped[G0])


@needs_data
def test_split_is_deterministic_and_seeded(tmp_path):
    def ids(seed, name):
        ds = build(SOURCE, tmp_path / name, seed=seed, limit=12, test_fraction=0.25)
        return list(ds["train"]["id"]), list(ds["test"]["id"])

    a, b, c = ids(0, "a"), ids(0, "b"), ids(1, "c")
    assert a == b
    assert len(a[0]) == 9 and len(a[1]) == 3
    assert set(a[1]) != set(c[1])
    first12 = sorted(p.name for p in (SOURCE / "data").iterdir() if p.is_dir())[:12]
    assert sorted(a[0] + a[1]) == first12


def test_split_groups_sizes():
    names = [f"g{i:02d}" for i in range(10)]
    train, test = split_groups(names, seed=3, test_fraction=0.2)
    assert len(test) == 2 and sorted(train + test) == names and train == sorted(train)
    assert split_groups(names, 3, 0.2) == (train, test)
    assert len(split_groups(names[:2], 0, 0.0)[1]) == 1  # at least one test group when n >= 2
    assert len(split_groups(names[:2], 0, 1.0)[0]) == 1  # ... and one train group
    assert split_groups(names[:1], 0, 0.5) == (names[:1], [])


# --- bad input: DataError naming the file, and nothing written -----------------------------------


def _edit_json(src: Path, group: str, fn) -> None:
    path = src / "data" / group / GROUP_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    fn(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _missing_image(src):
    (src / "data" / G1 / "export-2024-07-26T14_26_24.097Z.png").unlink()
    return r"export-2024-07-26T14_26_24\.097Z\.png"


def _malformed_json(src):
    (src / "data" / G0 / GROUP_FILE).write_text('[{"id": "group_0_question_0", ', encoding="utf-8")
    return rf"{G0}.*{GROUP_FILE}.*malformed JSON"


def _sub_answer_mismatch(src):
    _edit_json(src, G0, lambda d: d[0].update(answer="0; Cubic Rewards"))
    return rf"{GROUP_FILE}: question 'group_0_question_0'.*2 sub-answers.*3 numbered sub-questions"


def _missing_field(src):
    _edit_json(src, G1, lambda d: d[2].pop("answer"))
    return rf"{G1}.*question 'group_64_question_2': field 'answer': missing"


def _image_list_mismatch(src):
    _edit_json(src, G0, lambda d: d[3]["image"].reverse())
    return rf"{GROUP_FILE}: question 'group_0_question_3': field 'image'"


def _no_questions(src):
    (src / "data" / G1 / GROUP_FILE).write_text("[]", encoding="utf-8")
    return rf"{G1}.*{GROUP_FILE}: the group has no questions"


def _no_groups(src):
    shutil.rmtree(src / "data")
    (src / "data").mkdir()
    return r"no chart groups"


@needs_data
@pytest.mark.parametrize(
    "breaker",
    [
        _missing_image,
        _malformed_json,
        _sub_answer_mismatch,
        _missing_field,
        _image_list_mismatch,
        _no_questions,
        _no_groups,
    ],
)
def test_bad_input_raises_and_writes_nothing(tmp_path, breaker):
    src = _copy_groups(tmp_path)
    pattern = breaker(src)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=pattern):
        build(src, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp dirs left


@needs_data
def test_failed_build_keeps_previous_output(tmp_path):
    src = _copy_groups(tmp_path)
    out = tmp_path / "out"
    build(src, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    _missing_image(src)
    with pytest.raises(DataError):
        build(src, out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert len(load_from_disk(str(out))["train"]) + len(load_from_disk(str(out))["test"]) == 2


@needs_data
def test_one_group_cannot_be_split(tmp_path):
    with pytest.raises(DataError, match="only one chart group"):
        build(_copy_groups(tmp_path, [G0]), tmp_path / "out")
    with pytest.raises(ValueError, match="limit"):
        build(SOURCE, tmp_path / "out", limit=1)
    assert not (tmp_path / "out").exists()


def test_missing_source_raises(tmp_path):
    with pytest.raises(DataError, match="source directory not found"):
        build(tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_data
def test_transparent_pixels_become_white(tmp_path):
    src = _copy_groups(tmp_path)
    name = "Dueling_Max_Min_Cumulative_Regret_1.png"
    img = Image.new("RGBA", (40, 30), (0, 0, 0, 0))  # transparent black: plain RGB convert gives black
    img.putpixel((5, 5), (255, 0, 0, 255))
    img.save(src / "data" / G0 / name)
    ds = build(src, tmp_path / "out")
    (row,) = [r for s in ds.values() for r in s if r["id"] == G0]
    chart = row["images"][0]
    assert chart.mode == "RGB" and chart.size == (40, 30)
    assert chart.getpixel((0, 0)) == (255, 255, 255)
    assert chart.getpixel((5, 5)) == (255, 0, 0)


# --- long form: exactly K (sub-)questions per example -------------------------------------------


class _FixedDraw:
    """A stand-in random stream whose ``sample`` returns fixed indices."""

    def __init__(self, drawn):
        self.drawn = drawn

    def sample(self, population, k):
        assert k == len(self.drawn) and all(i in population for i in self.drawn)
        return list(self.drawn)


def test_long_form_chunks_by_hand():
    # 7 segments, K=3: one left out (index 4), the other six cut in order.
    assert long_form_chunks(7, 3, _FixedDraw([4])) == [[0, 1, 2], [3, 5, 6]]
    assert long_form_chunks(6, 3, _FixedDraw([])) == [[0, 1, 2], [3, 4, 5]]
    assert long_form_chunks(5, 1, _FixedDraw([])) == [[0], [1], [2], [3], [4]]
    assert long_form_chunks(3, 4, _FixedDraw([])) == []  # fewer than K: skipped, never shortened
    assert long_form_chunks(5, 5, _FixedDraw([])) == [[0, 1, 2, 3, 4]]
    with pytest.raises(ValueError, match="k >= 1"):
        long_form_chunks(5, 0, _FixedDraw([]))


def test_long_form_chunks_leave_out_every_position():
    # Over many groups the left-out segment is spread over positions (not always the last one).
    left_out = set()
    for g in range(40):
        (chunk,) = long_form_chunks(5, 4, random.Random(f"0:g{g}"))
        left_out |= set(range(5)) - set(chunk)
    assert left_out == {0, 1, 2, 3, 4}


@needs_data
def test_long_form_rows_by_hand(tmp_path):
    src = _copy_groups(tmp_path)
    stats: dict = {}
    ds = build(src, tmp_path / "k4", questions_per_answer=4, stats=stats)
    rows = {r["id"]: r for s in ds.values() for r in s}
    # G0 has 6 segments (0; Cubic Rewards; 200 | 2 | 90 | 500): random.Random("0:" + G0) leaves out
    # segments 5 and 0, one example of the other four. G1 has 5 (B | 23; 0 | 9 | First): segment 3 out.
    assert random.Random(f"0:{G0}").sample(range(6), 2) == [5, 0]
    assert random.Random(f"0:{G1}").sample(range(5), 1) == [3]
    assert sorted(rows) == [f"{G0}-k4-1", f"{G1}-k4-1"]
    r0, r1 = rows[f"{G0}-k4-1"], rows[f"{G1}-k4-1"]
    assert r0["segment_labels"] == ["Answer 1", "Answer 2", "Answer 3", "Answer 4"]
    assert r0["segment_references"] == [["Cubic Rewards"], ["200"], ["2"], ["90"]]
    assert r1["segment_references"] == [["B"], ["23"], ["0"], ["First"]]
    assert r0["reference"] == "Answer 1: Cubic Rewards\nAnswer 2: 200\nAnswer 3: 2\nAnswer 4: 90"
    m0 = json.loads(r0["meta"])
    assert m0["group"] == G0 and m0["questions_per_answer"] == 4 and m0["n_segments"] == 4
    assert m0["group_segments"] == [1, 2, 3, 4] and m0["group_n_segments"] == 6
    assert m0["question_ids"] == [f"group_0_question_{i}" for i in range(3)]
    assert m0["segment_questions"] == [0, 0, 1, 2]
    assert m0["task_version"] == TASK.version and m0["source"] == f"data/{G0}"
    text = _text(r0)
    assert "What does the color green indicate in the first chart?" in text  # sub-question 2 of question 0
    assert "spatially lowest labeled tick" not in text  # sub-question 1, left out
    assert "Answer 4 question:" in text and "Answer 5 question:" not in text
    assert text.endswith(format_instruction(r0["segment_labels"]))
    assert len(r0["images"]) == 3  # every chart of the group, whichever questions are asked
    assert stats["groups"] == 2 and stats["groups_skipped"] == 0 and stats["segments_left_out"] == 3
    assert stats["examples"] == 2 and stats["segments"] == 8


@needs_data
def test_long_form_k1_is_every_segment_and_k6_skips(tmp_path):
    src = _copy_groups(tmp_path)
    ds = build(src, tmp_path / "k1", questions_per_answer=1)
    refs = {r["id"]: r["segment_references"] for s in ds.values() for r in s}
    assert [refs[f"{G0}-k1-{j}"] for j in range(1, 7)] == [[["0"]], [["Cubic Rewards"]], [["200"]], [["2"]],
                                                          [["90"]], [["500"]]]
    assert len(refs) == 11
    # K=6: G1 (5 segments) is skipped; it was the only group on its side of the split.
    with pytest.raises(DataError, match=r"no \w+ example at --questions-per-answer 6.*the most in any group is 6"):
        build(src, tmp_path / "k6", questions_per_answer=6)
    assert not (tmp_path / "k6").exists()
    with pytest.raises(ValueError, match="questions_per_answer"):
        build(src, tmp_path / "k0", questions_per_answer=0)


@needs_data
def test_long_form_counts_and_splits_on_the_sample(tmp_path):
    """On the first 8 groups: counts straight from the JSON, and the same held-out groups for every K."""
    names = sorted(p.name for p in (SOURCE / "data").iterdir() if p.is_dir())[:8]
    n_seg = {}
    for name in names:
        qs = json.loads((SOURCE / "data" / name / GROUP_FILE).read_text(encoding="utf-8"))
        n_seg[name] = sum(len(q["answer"].split(";")) if q["task"].startswith("Parallel_Questions") else 1
                          for q in qs)
    test_groups = {}
    for K in (1, 2, 4):
        stats: dict = {}
        ds = build(SOURCE, tmp_path / f"k{K}", limit=8, questions_per_answer=K, stats=stats)
        assert stats["examples"] == sum(n // K for n in n_seg.values())
        assert stats["segments_left_out"] == sum(n % K for n in n_seg.values())
        assert stats["groups_skipped"] == 0
        for split in ds.values():
            assert all(len(x) == K for x in split["segment_labels"])
        test_groups[K] = {json.loads(m)["group"] for m in ds["test"]["meta"]}
        if K == 2:
            ds_k2_test = ds["test"].select_columns(["id", "meta"]).to_list()
    assert test_groups[1] == test_groups[2] == test_groups[4]
    assert test_groups[1] == set(split_groups(list(n_seg), 0, 0.2)[1])
    back = load_from_disk(str(tmp_path / "k2"))  # what was written is what was returned
    assert back["test"].select_columns(["id", "meta"]).to_list() == ds_k2_test


@needs_data
def test_no_group_of_the_sample_has_eight_questions():
    most = 0
    for f in (SOURCE / "data").glob(f"*/{GROUP_FILE}"):
        qs = json.loads(f.read_text(encoding="utf-8"))
        most = max(most, sum(len(q["answer"].split(";")) if q["task"].startswith("Parallel_Questions") else 1
                             for q in qs))
    assert most == 7  # so `--questions-per-answer 8` has nothing to build on the shipped sample
