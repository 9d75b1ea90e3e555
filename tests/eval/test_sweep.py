"""Sweep tables on hand-written run directories: means with t intervals over seeds and the paired gain."""

import json

import pandas as pd
import pytest

from segrl.eval.sweep import collect_sweep, paired_gain, split_start, summarize
from segrl.eval.tables import load_spec, make_table

T1 = 12.706205  # t_{0.975, 1}: two seeds


def fake_run(root, algo, K, seed, cider):
    model = root / f"{algo}-K{K}-s{seed}"
    (model / "eval").mkdir(parents=True)
    (model / "run.json").write_text(json.dumps({"algo": algo, "seed": seed}))
    (model / "eval" / "metrics.json").write_text(json.dumps({
        "task": "docci", "task_version": 1, "model": str(model), "n_examples": 10, "n_segments": 10 * K,
        "metrics": {"cider_d": cider, "bleu4": cider / 10, "meteor": cider / 5,
                    "sampled": {"temperature": 0.7, "cider_d": cider - 0.05}}}))
    (model / "eval" / "run.json").write_text(json.dumps({"data": {"fingerprint": "abc"}, "git": {"commit": "deadbeef00"}}))


@pytest.fixture
def runs(tmp_path):
    # K=1: no gain; K=4: sd_grpo ahead by 0.1 and 0.3 on seeds 0 and 1.
    for algo, K, seed, c in [("grpo", 1, 0, 0.5), ("sd_grpo", 1, 0, 0.5), ("grpo", 1, 1, 0.7), ("sd_grpo", 1, 1, 0.7),
                             ("grpo", 4, 0, 0.2), ("sd_grpo", 4, 0, 0.3), ("grpo", 4, 1, 0.4), ("sd_grpo", 4, 1, 0.7)]:
        fake_run(tmp_path, algo, K, seed, c)
    return tmp_path


def test_collect_and_summarize(runs):
    df = collect_sweep([runs], ["cider_d"])
    assert len(df) == 8 and sorted(df.K.unique()) == [1, 4]
    table = summarize(df, ["cider_d"]).set_index("algo")
    # grpo K=4: mean(0.2, 0.4) = 0.3, sem = 0.1414 / sqrt(2) = 0.1 -> 0.3 ± 1.2706
    assert table.loc["grpo", "K=4 cider_d"] == f"0.3000 [{0.3 - T1 * 0.1:.4f}, {0.3 + T1 * 0.1:.4f}] (n=2†)"
    assert table.loc["sd_grpo", "K=4 cider_d"] == "0.5000 [-2.0412, 3.0412] (n=2†)"  # sem 0.2
    assert summarize(df, ["cider_d"], min_seeds=2).loc[1, "K=4 cider_d"].endswith("(n=2)")  # no flag at 2 seeds


def test_paired_gain_by_seed(runs):
    g = paired_gain(collect_sweep([runs], ["cider_d"]), "cider_d").set_index("K")
    assert g.loc[1, "gain_mean"] == pytest.approx(0.0) and g.loc[1, "gain_low"] == pytest.approx(0.0)
    # K=4: gains 0.1, 0.3 -> mean 0.2, sem 0.1
    assert g.loc[4, "gain_mean"] == pytest.approx(0.2) and g.loc[4, "gain_high"] == pytest.approx(0.2 + T1 * 0.1)
    assert g.loc[4, "n"] == 2 and g.loc[4, "unpaired"] == ""


def test_table1_files(runs, tmp_path):
    files = make_table(load_spec("table1"), [str(runs)], tmp_path / "out", command="segrl report table1")
    assert files["gain.png"].stat().st_size > 1000 and "curves.png" not in files  # no train_log.jsonl here
    md = files["md"].read_text()
    assert "(none: no trained run logged `reward` in a train_log.jsonl)" in md
    assert "| sd_grpo − grpo | cider_d | 4 | +0.2000 [-1.0706, 1.4706] (n=2†) |  |" in md
    assert "Gate **not computable**" in md  # no SFT-start eval among these runs
    assert "Pairs without runs of both arms (not shown): sd_dr_grpo − dr_grpo." in md
    assert "| sd_grpo − grpo | sampled_cider_d | 4 | +0.2000 [-1.0706, 1.4706] (n=2†) |  |" in md
    assert list(pd.read_csv(files["csv"]).columns) == [
        "algo", *(f"K={k} {m}" for k in (1, 4) for m in ("sampled_cider_d", "cider_d", "bleu4", "meteor"))]
    assert len(pd.read_csv(files["runs"])) == 8
    assert split_start(collect_sweep([runs], ["cider_d"]))[1].empty


def test_sampled_metrics_are_read_from_the_sampled_evaluation(runs):
    df = collect_sweep([runs], ["sampled_cider_d", "cider_d"])
    assert (df["sampled_cider_d"] - (df["cider_d"] - 0.05)).abs().max() < 1e-12
    with pytest.raises(KeyError, match="no metric 'sampled_bleu4'"):
        collect_sweep([runs], ["sampled_bleu4"])


def test_missing_metric_is_named(runs):
    with pytest.raises(KeyError, match="no metric 'rouge'"):
        collect_sweep([runs], ["rouge"])
