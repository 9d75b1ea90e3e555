"""The bad-item policy on the real MultiChartQA sample: a copy of all of ../shared/data/multichartqa
(in a pytest tmp dir, never in the repo) with a planted repeated sub-question number and a broken
JSON file builds through ``segrl build-data multichart``, which prints the counts and lists both in
build_log.jsonl, and fails under ``--strict`` naming the file and field. One full build (~30 s on
an idle 2-core machine, most of it PNG encoding).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from datasets import load_from_disk
from typer.testing import CliRunner

from segrl.tasks.build_log import read_build_log
from segrl.tasks.multichart import GROUP_FILE, split_groups

SOURCE = Path(__file__).resolve().parents[2].parent / "shared/data/multichartqa"
REPEAT = "arxiv_0_2406.14784v1"  # question 0: a 3-part parallel question, sub-questions "1.", "2.", "3."
BROKEN = "arxiv_0_2406.15653v1"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    if not (SOURCE / "data").is_dir():  # CI has ../shared; a checkout without it cannot run this
        pytest.fail(f"real MultiChartQA sample not found at {SOURCE}")
    src = tmp_path_factory.mktemp("mcq") / "multichartqa"
    shutil.copytree(SOURCE, src)
    path = src / "data" / REPEAT / GROUP_FILE
    qs = json.loads(path.read_text(encoding="utf-8"))
    assert "\n3. What is difference between consecutive" in qs[0]["question"]
    qs[0]["question"] = qs[0]["question"].replace("\n3. What is difference", "\n2. What is difference")  # 1., 2., 2.
    path.write_text(json.dumps(qs, ensure_ascii=False), encoding="utf-8")
    broken = src / "data" / BROKEN / GROUP_FILE
    broken.write_text(broken.read_text(encoding="utf-8")[:500], encoding="utf-8")  # cut mid-object
    return src


def test_planted_release_builds_with_both_faults_listed(planted, tmp_path):
    from segrl.cli import app

    out = tmp_path / "multichart"
    result = CliRunner().invoke(app, ["build-data", "multichart", "--source", str(planted), "--out", str(out)])
    assert result.exit_code == 0, result.output
    groups = sorted(p.name for p in (planted / "data").iterdir())
    n_questions = sum(len(json.loads((planted / "data" / g / GROUP_FILE).read_text(encoding="utf-8")))
                      for g in groups if g != BROKEN)
    flat = " ".join(result.output.split())
    assert (f"bad items: 1 of {n_questions + 1} questions skipped (0.2%; (whole item): 1), 1 repaired, "
            "0 excluded; listed in") in flat
    summary, entries = read_build_log(out)
    assert (summary["items"], summary["skipped"], summary["repaired"]) == (n_questions + 1, 1, 1)
    assert [(e["kind"], Path(e["file"]).parent.name, e["field"]) for e in entries] == [
        ("repaired", REPEAT, "question"), ("skipped", BROKEN, None)]
    assert entries[0]["item"] == "question 'group_0_question_0'"
    assert entries[0]["reason"] == ("sub-questions numbered [1, 2, 2]; renumbered 1..3 in order "
                                    "(the answer has 3 parts)")
    assert entries[1]["reason"].startswith("malformed JSON")
    ds = load_from_disk(str(out))
    rows = {r["id"]: r for split in ds.values() for r in split}
    assert len(rows) == len(groups) - 1 and BROKEN not in rows
    assert rows[REPEAT]["segment_references"][:3] == [["0"], ["Cubic Rewards"], ["200"]]
    text = rows[REPEAT]["prompt"][0]["content"][-1]["text"]
    assert "Answer 3 question: What is difference between consecutive" in text
    _, test = split_groups(groups, 0, 0.2)  # the split is the one of the intact release, less the broken group
    assert sorted(ds["test"]["id"]) == sorted(set(test) - {BROKEN})


def test_planted_release_fails_under_strict(planted, tmp_path):
    from segrl.cli import app

    out = tmp_path / "multichart"
    result = CliRunner().invoke(app, ["build-data", "multichart", "--source", str(planted), "--out", str(out),
                                      "--strict"])
    assert result.exit_code == 2  # a bad source is a user error (segrl.cli.errors)
    flat = "".join(result.output.split())  # the console may wrap the long path anywhere
    assert "".join(f"{REPEAT}/{GROUP_FILE}: question 'group_0_question_0': field 'question': "
                   "sub-questions numbered [1, 2, 2]; renumbered 1..3 in order (the answer has 3 parts) "
                   "(strict: not repaired; without --strict it would be)".split()) in flat
    assert not out.exists()
