"""``segrl bench rewards`` on a 2x2x2 batch: batched and per-call scores agree, files are written."""

from __future__ import annotations

import json
import statistics

import pytest

from segrl.bench.rewards import DEFAULT_METRICS, main, synthetic_batch


def test_synthetic_batch_is_deterministic_and_shaped():
    a, b = synthetic_batch(2, 3, 4, seed=5), synthetic_batch(2, 3, 4, seed=5)
    assert a == b and a != synthetic_batch(2, 3, 4, seed=6)
    assert len(a["predictions"]) == len(a["references"]) == 24
    assert all(10 <= len(p.split()) <= 30 for p in a["predictions"])
    assert all(1 <= len(r) <= 3 for r in a["references"])
    # the G rollouts of a prompt share each segment's references
    assert a["references"][0] == a["references"][4] and a["references"][0] != a["references"][1]
    with pytest.raises(ValueError, match="n_rollouts must be an int >= 1"):
        synthetic_batch(1, 0, 1)


def test_small_run_scores_identically_and_writes_both_files(tmp_path):
    metrics = DEFAULT_METRICS  # METEOR included: CI has Java (.ci/run installs it)
    res = main(n_prompts=2, n_rollouts=2, n_segments=2, metrics=metrics, out_dir=tmp_path, repeats=1,
               profile=False, n_naive=2)
    assert res["identical"] is True and res["n_segments_total"] == 8
    assert list(res["metrics"]) == list(metrics)
    for name, r in res["metrics"].items():
        batched, per_call = res["scores"][name]["batched"], res["scores"][name]["per_call"]
        assert len(batched) == 8 and max(abs(a - b) for a, b in zip(batched, per_call)) <= 1e-9
        assert r["max_abs_diff"] <= 1e-9
        # rates are the segment count over the median of the timed runs, and the speedup their ratio
        assert r["batched_s"] == pytest.approx(statistics.median(r["batched_runs_s"]))
        assert r["per_call_s"] == pytest.approx(statistics.median(r["per_call_runs_s"]))
        assert r["batched_seg_per_s"] == pytest.approx(8 / r["batched_s"])
        assert r["per_call_seg_per_s"] == pytest.approx(8 / r["per_call_s"])
        assert r["speedup"] == pytest.approx(r["per_call_s"] / r["batched_s"])
        assert 0.0 < r["mean_score"] < (10.0 if name == "cider_d" else 1.0)  # non-trivial scores
        assert r["naive_max_abs_diff"] <= 1e-9
        assert r["naive_speedup"] == pytest.approx(
            (1.0 / r["naive_seg_per_s"]) / (r["batched_s"] / 8))  # naive time per segment / batched per segment
    # a JVM start per segment: far slower than the batched long-lived process
    assert res["metrics"]["meteor"]["naive_speedup"] > 20
    record = json.loads((tmp_path / "rewards.json").read_text())
    assert record["metrics"].keys() == res["metrics"].keys()
    assert record["machine"]["platform"] and record["machine"]["cpu_count"] >= 1
    assert record["machine"]["libraries"]["pycocoevalcap"] == "1.2"
    assert record["command"].startswith('python -c "from segrl.bench.rewards import main; main(n_prompts=2')
    md = (tmp_path / "rewards.md").read_text()
    assert "| **all** |" in md and "agree (max abs diff <= 1e-09; BERTScore <= 1e-06, float32 padding): **True**" in md


def test_unknown_metric_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown metric.*'rouge'.*known: bleu4, cider_d"):
        main(metrics=("rouge",), out_dir=tmp_path)
    assert not (tmp_path / "rewards.json").exists()


def test_cli_command(tmp_path):
    from typer.testing import CliRunner

    from segrl.cli.bench import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["rewards", "--n-prompts", "1", "--n-rollouts", "2", "--n-segments", "2",
                                      "--metric", "bleu4", "--metric", "rouge_l", "--repeats", "1",
                                      "--no-profile", "--out-dir", str(out), "--n-naive", "0"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "rewards.json").read_text())
    assert record["identical"] and list(record["metrics"]) == ["bleu4", "rouge_l"]
    assert record["command"] == (f"segrl bench rewards --n-prompts 1 --n-rollouts 2 --n-segments 2 --metric bleu4 "
                                 f"--metric rouge_l --seed 0 --repeats 1 --no-profile --out-dir {out} --n-naive 0")
