"""MMSci sub-figure captioning: the caption splitter, and the build on a fixture in MMSci's file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_from_disk
from PIL import Image
from typer.testing import CliRunner

from segrl.rewards.format import format_score
from segrl.segments import parse_segments
from segrl.tasks import TASKS
from segrl.tasks.base import DataError
from segrl.tasks.mmsci import (
    BUILD_LOG,
    DATA_FILE,
    UnsplittableCaption,
    build,
    format_instruction_mmsci,
    read_build_log,
    split_caption,
    truncate_context,
)

WTE2 = (
    "Angle-dependent negative longitudinal MR of thin WTe2. (a) Sample #1 exhibits only negative longitudinal MR "
    "at high magnetic fields, which is apparently suppressed at 3.05°. (b) Sample #2 exhibits a negative "
    "longitudinal MR and a positive MR signal,\n as in (a). (c) Gate dependence of the MR."
)


# --- the splitter (pure) -----------------------------------------------------------------------
def test_split_title_labels_texts():
    sub = split_caption(WTE2)
    assert sub.title == "Angle-dependent negative longitudinal MR of thin WTe2."
    assert sub.labels == ["(a)", "(b)", "(c)"]
    assert sub.texts == [
        "Sample #1 exhibits only negative longitudinal MR at high magnetic fields, which is apparently "
        "suppressed at 3.05°.",
        "Sample #2 exhibits a negative longitudinal MR and a positive MR signal, as in (a).",  # blanks collapsed
        "Gate dependence of the MR.",
    ]


def test_split_no_title_colon_and_separators():
    sub = split_caption("(a): Wild type at 30 °C; (b) Mutant, same as (a)! (c)   Both.")
    assert sub.title == "" and sub.labels == ["(a)", "(b)", "(c)"]
    assert sub.texts == ["Wild type at 30 °C;", "Mutant, same as (a)!", "Both."]


@pytest.mark.parametrize(
    ("caption", "reason", "detail"),
    [
        ("", "empty caption", ""),
        ("   \n", "empty caption", ""),
        ("A single photograph of the device.", "no sub-figure labels", ""),
        ("Spectra of R4 (a) and (b).", "no sub-figure labels", ""),  # in-text only: never a marker
        ("Spectra. (a,b) Absorption of R4. (c) Fluorescence.", "combined or uppercase label", "(a,b)"),
        ("Maps. (a-c) Three maps. (d) A fourth.", "combined or uppercase label", "(a-c)"),
        ("Maps. (A) One. (B) Two.", "combined or uppercase label", "(A), (B)"),
        ("Maps. (a) One. (c) Three.", "labels out of sequence", "found (a), (c)"),
        ("Maps. (b) Two. (a) One.", "labels out of sequence", "found (b), (a)"),
        ("Maps. (a) One. (b) Two. (a) Again.", "labels out of sequence", "found (a), (b), (a)"),
        ("Maps. (a) One. (b)", "empty sub-caption", "(b)"),
        ("Maps. (a) One. (b):  . (c) x", None, None),  # "." is text: split (checked below)
        ("Data. (a) Temperature at 3 K (b) Pressure.", "unplaced label", "(b) inside the text of (a)"),
        ("Data. (a) Steps (i) heat and (ii) cool. (b) Result.", "unplaced label", "(i) inside the text of (a)"),
        ("Only one. (a) A panel.", "too few sub-figure labels", "1 < 2"),
    ],
)
def test_unsplittable_captions_name_their_reason(caption, reason, detail):
    if reason is None:
        assert split_caption(caption).texts == ["One.", ".", "x"]
        return
    with pytest.raises(UnsplittableCaption) as e:
        split_caption(caption)
    assert e.value.reason == reason and detail in e.value.detail


def test_min_subfigures_and_words_with_parentheses():
    assert split_caption("Only one. (a) A panel.", min_subfigures=1).texts == ["A panel."]
    # "protein(s)" is not a label mention (no blank before it); "(n)" after a blank would be
    sub = split_caption("T. (a) The protein(s) bound. (b) Unbound.")
    assert sub.texts == ["The protein(s) bound.", "Unbound."]
    with pytest.raises(ValueError, match="min_subfigures"):
        split_caption(WTE2, min_subfigures=0)


def test_truncate_context():
    assert truncate_context("one  two\nthree", 100) == ("one two three", False)
    assert truncate_context("one two three four", 9) == ("one two ...", True)  # cut at a blank
    assert truncate_context("one two three", 7) == ("one two ...", True)  # the cut falls on a blank
    assert truncate_context("abcdefghij", 4) == ("abcd ...", True)  # no blank to cut at
    with pytest.raises(ValueError):
        truncate_context("x", 0)


# --- fixture in MMSci's benchmark layout ---------------------------------------------------------
ABSTRACT = "The progress in exploiting new electronic materials has been a major driving force in solid-state physics."
CONTENT = "Gate-tunable negative longitudinal magnetoresistance in WTe2\n" + " ".join(["word"] * 300)

TRAIN = [  # (image, caption, size, mode)
    ("ncomms13142_figure_1.png", WTE2, (120, 80), "RGB"),
    ("ncomms1_figure_2.png", "Growth curves. (a): Wild type at 30 °C. (b): Mutant, same conditions as (a).",
     (64, 64), "RGBA"),
    ("ncomms1_figure_3.png", "A single-panel photograph of the device.", (40, 40), "RGB"),
    ("ncomms2_figure_1.png", "Spectra. (a,b) Absorption spectra of R4. (c) Fluorescence.", (40, 40), "RGB"),
    ("ncomms2_figure_2.png", "Maps. (a) Map one. (c) Map three.", (40, 40), "RGB"),
    ("ncomms3_figure_1.png", "Data. (a) Temperature at 3 K (b) Pressure.", (40, 40), "RGB"),
    ("ncomms3_figure_2.png", "Setup. (a) Optical layout. (b) Electronics. (c) Timing. (d) Control loop.",
     (300, 150), "RGB"),
]
DEV = [
    ("ncomms9_figure_1.png", "Phase diagram. (a) Theory. (b) Experiment, compared with (a).", (50, 70), "RGB"),
    ("ncomms9_figure_2.png", "", (40, 40), "RGB"),  # withheld caption
    ("ncomms9_figure_3.png", "Device. (a) Top view. (b) Side view.", (40, 40), "RGB"),
]


def _record(image, caption, uid=None):
    return {"uid": uid or image.split("_")[0], "category": "Physical sciences", "subject": "Materials science",
            "abstract": ABSTRACT, "content": CONTENT, "image": image, "caption": caption, "extra": [1, 2]}


def write_mmsci(root: Path, train=TRAIN, dev=DEV, test=None) -> Path:
    """MMSci's benchmark layout under ``root/benchmark``; every image a distinct solid colour."""
    bench = root / "benchmark"
    for split, items in (("train", train), ("dev", dev), ("test", test or [(i, "", s, m) for i, _, s, m in dev])):
        (bench / split / "images").mkdir(parents=True, exist_ok=True)
        for j, (image, _, size, mode) in enumerate(items):
            colour = (10 * j, 100, 200, 128) if mode == "RGBA" else (10 * j, 100, 200)
            Image.new(mode, size, colour).save(bench / split / "images" / image)
        (bench / split / DATA_FILE).write_text(json.dumps([_record(i, c) for i, c, _, _ in items], indent=2))
    return bench


@pytest.fixture(scope="module")
def mmsci_source(tmp_path_factory) -> Path:
    return write_mmsci(tmp_path_factory.mktemp("mmsci"))


@pytest.fixture(scope="module")
def built(mmsci_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "mmsci"
    return build(mmsci_source.parent, out), out  # the parent of benchmark/ works too


def test_rows(built):
    ds, out = built
    assert ds["train"]["id"] == ["ncomms13142_figure_1", "ncomms1_figure_2", "ncomms3_figure_2"]
    assert ds["test"]["id"] == ["ncomms9_figure_1", "ncomms9_figure_3"]
    row = ds["train"][0]
    assert row["task"] == "mmsci" and row["segment_labels"] == ["(a)", "(b)", "(c)"]
    assert row["segment_references"] == [[t] for t in split_caption(WTE2).texts]
    assert row["reference"].splitlines()[1] == (
        "(b) Sample #2 exhibits a negative longitudinal MR and a positive MR signal, as in (a).")
    parsed = parse_segments(row["reference"], row["segment_labels"])
    assert parsed.texts == [r[0] for r in row["segment_references"]] and parsed.ordered
    assert format_score(row["reference"], row["segment_labels"]) == 1.0
    [message] = row["prompt"]
    assert message["content"][0] == {"type": "image", "text": None}
    text = message["content"][1]["text"]
    assert text.startswith(f"Article abstract:\n{ABSTRACT}\n\nThe figure above has 3 sub-figures, labelled (a) to (c).")
    assert text.endswith(format_instruction_mmsci(["(a)", "(b)", "(c)"]))
    meta = json.loads(row["meta"])
    assert meta["caption"] == WTE2 and meta["caption_title"] == "Angle-dependent negative longitudinal MR of thin WTe2."
    assert (meta["setting"], meta["mmsci_split"], meta["index"], meta["uid"]) == ("abstract", "train", 0, "ncomms13142")
    assert meta["source"] == f"train/{DATA_FILE}" and meta["n_subfigures"] == 3 and meta["task_version"] == 1
    assert meta["context_chars"] == len(ABSTRACT) and meta["context_truncated"] is False
    # images: RGB, sizes kept, the RGBA figure composited on white
    assert row["images"][0].mode == "RGB" and row["images"][0].size == (120, 80)
    rgba = ds["train"][1]["images"][0]
    # alpha 128: c * 128/255 + 255 * 127/255 -> 10: 132.02, 100: 177.20, 200: 227.39
    assert rgba.mode == "RGB" and rgba.getpixel((0, 0)) == (132, 177, 227)
    assert ds["train"][2]["segment_labels"] == ["(a)", "(b)", "(c)", "(d)"]
    disk = load_from_disk(str(out))
    assert disk["test"]["reference"] == ds["test"]["reference"]


def test_skipped_captions_are_counted_and_logged(built):
    _, out = built
    summary, skipped = read_build_log(out)
    assert summary["splits"]["train"] == {
        "mmsci_split": "train", "records": 7, "examined": 7, "kept": 3, "skipped": 4,
        "skipped_by_reason": {"combined or uppercase label": 1, "labels out of sequence": 1,
                              "no sub-figure labels": 1, "unplaced label": 1},
    }
    assert summary["splits"]["test"] == {"mmsci_split": "dev", "records": 3, "examined": 3, "kept": 2, "skipped": 1,
                                         "skipped_by_reason": {"empty caption": 1}}
    assert [(s["split"], s["index"], s["image"], s["reason"]) for s in skipped] == [
        ("train", 2, "ncomms1_figure_3.png", "no sub-figure labels"),
        ("train", 3, "ncomms2_figure_1.png", "combined or uppercase label"),
        ("train", 4, "ncomms2_figure_2.png", "labels out of sequence"),
        ("train", 5, "ncomms3_figure_1.png", "unplaced label"),
        ("test", 1, "ncomms9_figure_2.png", "empty caption"),
    ]
    # no skipped caption was merged into a row
    all_refs = {t for split in built[0].values() for r in split["segment_references"] for [t] in r}
    assert not any("Fluorescence" in t or "Map three" in t or "Pressure" in t for t in all_refs)


def test_settings_and_truncation(mmsci_source, tmp_path):
    plain = build(mmsci_source, tmp_path / "u", setting="ungrounded", limit=1)
    text = plain["train"][0]["prompt"][0]["content"][1]["text"]
    assert text.startswith("The figure above has 3 sub-figures, labelled (a) to (c). Write a detailed caption "
                           "for every sub-figure.\n\n")
    assert ABSTRACT not in text and (len(plain["train"]), len(plain["test"])) == (1, 1)
    summary, skipped = read_build_log(tmp_path / "u")
    assert summary["splits"]["train"]["examined"] == 1 and summary["splits"]["test"]["examined"] == 1
    assert skipped == []
    content = build(mmsci_source, tmp_path / "c", setting="content", max_context_chars=80, max_image_side=100)
    text = content["train"][0]["prompt"][0]["content"][1]["text"]
    context = "Gate-tunable negative longitudinal magnetoresistance in WTe2 word word word word ..."
    assert text.startswith(f"Article:\n{context}\n\n") and "based on the article." in text
    meta = json.loads(content["train"][0]["meta"])
    assert meta["context_truncated"] is True and meta["context_chars"] == len(context)
    assert content["train"][2]["images"][0].size == (100, 50)  # 300x150 shrunk, aspect kept
    assert content["train"][0]["images"][0].size == (100, 67)


def test_registry_and_eval_metrics():
    task = TASKS.get("mmsci")
    assert task.build is build and task.segment_reward == "cider_d"
    assert task.eval_metrics == ("bleu1", "bleu2", "bleu3", "bleu4", "cider_d", "meteor", "rouge_l", "bertscore")


# --- bad input: a clear error, nothing written -------------------------------------------------
def test_withheld_test_captions_leave_no_usable_split(mmsci_source, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(DataError, match=r"test/image_caption_generation_data.json: no usable figure \(3 records; "
                                        r"skipped: \{'empty caption': 3\}\)"):
        build(mmsci_source, out, eval_split="test")
    assert not out.exists()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: (b / "train" / DATA_FILE).write_text("[{"), r"train/image_caption_generation_data.json: malformed JSON"),
        (lambda b: (b / "train" / DATA_FILE).write_text('{"a": 1}'), "expected a list of records, got dict"),
        (lambda b: (b / "dev" / DATA_FILE).write_text(json.dumps([{"uid": "x"}])), r"dev/.*record #0: field 'category' missing"),
        (lambda b: (b / "dev" / DATA_FILE).write_text(json.dumps([{**_record("x.png", "c"), "caption": None}])),
         r"record #0: field 'caption': expected a string, got NoneType"),
        (lambda b: (b / "train" / "images" / "ncomms1_figure_2.png").unlink(),
         r"ncomms1_figure_2.png: image file not found \(listed at .*train/image_caption_generation_data.json: record #1\)"),
        (lambda b: (b / "train" / "images" / "ncomms1_figure_2.png").write_bytes(b"not a png"), "unreadable image"),
        (lambda b: (b / "dev" / DATA_FILE).unlink(), r"dev/image_caption_generation_data.json: MMSci caption file not found"),
        (lambda b: (b / "dev" / DATA_FILE).write_text(json.dumps([_record("../x.png", DEV[0][1])])), "bad file name"),
    ],
)
def test_bad_input_names_the_file_and_writes_nothing(tmp_path, mutate, match):
    bench = write_mmsci(tmp_path / "src")
    mutate(bench)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=match):
        build(bench, out)
    assert not out.exists()


def test_duplicate_ids_and_bad_options(tmp_path):
    bench = write_mmsci(tmp_path / "src", dev=[TRAIN[0]])  # the same figure in train and dev
    with pytest.raises(DataError, match="duplicate figure id 'ncomms13142_figure_1'"):
        build(bench, tmp_path / "o")
    with pytest.raises(DataError, match="no train/image_caption_generation_data.json"):
        build(tmp_path, tmp_path / "o")
    with pytest.raises(ValueError, match="setting"):
        build(bench, tmp_path / "o", setting="full")
    with pytest.raises(ValueError, match="eval_split"):
        build(bench, tmp_path / "o", eval_split="val")
    assert not (tmp_path / "o").exists()


def test_cli_reports_skipped(mmsci_source, tmp_path):
    from segrl.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["build-data", "mmsci", "--source", str(mmsci_source), "--out", str(out),
                                      "--setting", "ungrounded"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "train: 3 examples, 9 segments" in flat
    assert ("train (MMSci train): 7 records, 3 kept, 4 skipped (combined or uppercase label: 1, labels out of "
            "sequence: 1, no sub-figure labels: 1, unplaced label: 1)") in flat
    assert "test (MMSci dev): 3 records, 2 kept, 1 skipped (empty caption: 1)" in flat
    assert (out / BUILD_LOG).is_file()
    bad = CliRunner().invoke(app, ["build-data", "mmsci", "--source", str(tmp_path / "nope"), "--out", str(out)])
    assert bad.exit_code == 2 and "MMSci directory not found" in " ".join(bad.output.split())
