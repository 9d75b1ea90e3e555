"""SRPO's CPU testbed (issue 16): structure rates, the sight gate on structured candidates, the preset."""

import json
import random

import pytest
import yaml

from segrl.eval import srpo_testbed
from segrl.eval.srpo_testbed import (
    eval_structure_rates,
    structure_summary,
    structured_check_sight,
    summary_markdown,
    train_structure_rates,
)
from segrl.rewards.srpo_format import complete_fraction
from segrl.sight import _candidates
from segrl.trainers.srpo import DEFAULT_REASONING, structured_reference

FULL = "<perception>A red star</perception>\n<reasoning>In order.</reasoning>\nPanel 1: A red star."
NO_REASONING = "<perception>A red star</perception>\nPanel 1: A red star."
EMPTY_PERCEPTION = "<perception> </perception>\n<reasoning>so</reasoning>\nPanel 1: x"
REVERSED = "<reasoning>so</reasoning><perception>A red star</perception>\nPanel 1: x"


def test_complete_fraction_counts_only_complete_structures():
    assert complete_fraction([FULL, NO_REASONING, EMPTY_PERCEPTION, REVERSED]) == 0.25
    assert complete_fraction([FULL, FULL + "<perception>"]) == 0.5  # a repeated tag is not complete
    assert complete_fraction(["Panel 1: A red star."]) == 0.0
    with pytest.raises(ValueError, match="no completions"):
        complete_fraction([])


def _log(path, missing):
    rows = [{"step": i + 1, "reward": 1.0, "srpo/structure_missing_frac": m} for i, m in enumerate(missing)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_train_structure_rates_from_the_log(tmp_path):
    _log(tmp_path / "train_log.jsonl", [0.5, 0.25, 0.0, 0.0, 0.125])
    rates = train_structure_rates(tmp_path / "train_log.jsonl", window=2)
    # rates 1 - missing: 0.5, 0.75, 1, 1, 0.875 -> first two 0.625, last two 0.9375, all 0.825
    assert rates == {"steps": 5, "first": 0.625, "last": 0.9375, "mean": pytest.approx(0.825)}
    (tmp_path / "grpo.jsonl").write_text(json.dumps({"step": 1, "reward": 1.0}) + "\n")
    assert train_structure_rates(tmp_path / "grpo.jsonl") is None  # GRPO logs no structure
    assert train_structure_rates(tmp_path / "absent.jsonl") is None
    with pytest.raises(ValueError, match="window"):
        train_structure_rates(tmp_path / "train_log.jsonl", window=0)


def _eval(d, greedy, sampled=None):
    d.mkdir(parents=True)
    (d / "predictions.jsonl").write_text("".join(json.dumps({"id": str(i), "completion": c}) + "\n"
                                                 for i, c in enumerate(greedy)))
    if sampled is not None:
        (d / "predictions_sampled.jsonl").write_text("".join(json.dumps({"id": str(i), "sample": 0, "completion": c})
                                                             + "\n" for i, c in enumerate(sampled)))


def test_eval_rates_and_summary_of_a_run_tree(tmp_path):
    _eval(tmp_path / "start", [FULL, FULL], [FULL, NO_REASONING, FULL, FULL])
    assert eval_structure_rates(tmp_path / "start") == {"greedy": 1.0, "n_greedy": 2, "sampled": 0.75, "n_sampled": 4}
    root = tmp_path / "runs"
    for seed, (g, s) in enumerate([([FULL, FULL], [FULL, REVERSED]), ([FULL, REVERSED], [REVERSED, REVERSED])]):
        _eval(root / "grpo" / f"seed{seed}" / "eval", g, s)
        run = root / "srpo" / f"seed{seed}"
        _eval(run / "eval", [FULL, FULL], [FULL, FULL])
        _log(run / "train_log.jsonl", [0.0, 0.5] if seed == 0 else [0.25, 0.25])
    (root / "sft").mkdir()  # not a seed directory: ignored
    (root / "grpo" / "seedx").mkdir()
    summary = structure_summary(root, tmp_path / "start")
    assert [(r["arm"], r["seed"]) for r in summary["runs"]] == [("grpo", 0), ("grpo", 1), ("srpo", 0), ("srpo", 1)]
    grpo, srpo = summary["arms"]["grpo"], summary["arms"]["srpo"]
    assert grpo["n"] == 2 and grpo["train_first"] is None
    assert grpo["eval_greedy"] == [0.75, 0.5, 1.0] and grpo["eval_sampled"] == [0.25, 0.0, 0.5]
    # srpo seed 0: rates 1, 0.5 (window 10 covers both: 0.75); seed 1: 0.75, 0.75
    assert srpo["train_first"] == [0.75, 0.75, 0.75] and srpo["eval_sampled"] == [1.0, 1.0, 1.0]
    md = summary_markdown(summary)
    assert "| (warm start) | – | – | – | 1.000 (n=2) | 0.750 (n=4) |" in md
    assert "| grpo | 2 | – | – | 0.750 [0.500, 1.000] | 0.250 [0.000, 0.500] |" in md
    assert srpo_testbed.main(["structure", str(root), "--start", str(tmp_path / "start"),
                              "--out", str(tmp_path / "out" / "structure")]) == 0
    assert json.loads((tmp_path / "out" / "structure.json").read_text())["arms"]["srpo"]["n"] == 2
    assert (tmp_path / "out" / "structure.md").read_text() == md


def test_sight_candidates_in_the_structured_layout():
    rows = [{"segment_labels": ["Panel 1", "Panel 2"], "segment_references": [[a], [b]]}
            for a, b in [("A red star top", "Two blue circles"), ("A green square", "A red star"),
                         ("Two blue circles", "A green square")]]

    def render(labels, values):
        return structured_reference("\n".join(f"{k}: {v}" for k, v in zip(labels, values)), [[v] for v in values],
                                    evidence_words=2, reasoning="so")

    cands = _candidates(rows, 0, 1, 2, random.Random(0), render)
    assert cands[0] == ("<perception>A red; Two blue</perception>\n<reasoning>so</reasoning>\n"
                        "Panel 1: A red star top\nPanel 2: Two blue circles")
    # each distractor changes segment 2's answer line and its evidence together
    assert sorted(cands[1:]) == [
        "<perception>A red; A green</perception>\n<reasoning>so</reasoning>\nPanel 1: A red star top\nPanel 2: A green square",
        "<perception>A red; A red</perception>\n<reasoning>so</reasoning>\nPanel 1: A red star top\nPanel 2: A red star"]
    assert _candidates(rows, 0, 1, 2, random.Random(0))[0] == "Panel 1: A red star top\nPanel 2: Two blue circles"


def test_structured_check_sight_hands_check_sight_the_warm_start_layout(monkeypatch):
    seen = {}

    def fake_check_sight(model, processor, dataset, *, render, **kw):
        seen.update(kw, text=render(["Panel 1", "Panel 2"], ["A small red star", "Two large blue circles"]))
        return "report"

    monkeypatch.setattr("segrl.sight.check_sight", fake_check_sight)
    assert structured_check_sight("m", "p", "d", evidence_words=3, n_rows=8) == "report"
    assert seen == {"n_rows": 8, "text": f"<perception>A small red; Two large blue</perception>\n"
                    f"<reasoning>{DEFAULT_REASONING}</reasoning>\nPanel 1: A small red star\nPanel 2: Two large blue circles"}


def test_preset_keeps_table1s_grpo_tuned_rl_settings():
    srpo = yaml.safe_load(open("configs/srpo_table1_cpu.yaml"))
    table1 = yaml.safe_load(open("configs/table1_cpu.yaml"))
    for key in ("num_generations", "per_device_train_batch_size", "max_steps", "learning_rate", "lr_scheduler_type",
                "beta", "temperature", "format_weight", "seed"):
        assert srpo["train"][key] == table1["train"][key], key
    assert srpo["eval"] | {"max_new_tokens": 0} == table1["eval"] | {"max_new_tokens": 0}
    assert (srpo["task"], srpo["data"], srpo["model"]) == (table1["task"], table1["data"], table1["model"])
    assert srpo["train"]["algo"] == "srpo" and srpo["train"]["srpo_instruction"] == ""  # prompts stay grpo's
    assert srpo["train"]["max_completion_length"] == srpo["eval"]["max_new_tokens"] == 192
    assert {k: v for k, v in srpo["sft"].items() if k not in ("output_dir", "max_steps")} == \
        {k: v for k, v in table1["sft"].items() if k not in ("output_dir", "max_steps")}
