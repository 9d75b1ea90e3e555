"""Sweep tables on hand-written run directories: mean ± std over seeds and the paired gain."""

import json

import pandas as pd
import pytest

from segrl.eval.sweep import collect_sweep, paired_gain, summarize, write_sweep


def fake_run(root, algo, K, seed, cider):
    model = root / f"{algo}-K{K}-s{seed}"
    (model / "eval").mkdir(parents=True)
    (model / "run.json").write_text(json.dumps({"algo": algo, "seed": seed}))
    (model / "eval" / "metrics.json").write_text(json.dumps({
        "task": "docci", "task_version": 1, "model": str(model), "n_examples": 10, "n_segments": 10 * K,
        "metrics": {"cider_d": cider}}))
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
    # grpo K=4: mean(0.2, 0.4) = 0.3, sample std = 0.1414
    assert table.loc["grpo", "K=4 cider_d"] == "0.3000 ± 0.1414 (2)"
    assert table.loc["sd_grpo", "K=4 cider_d"] == "0.5000 ± 0.2828 (2)"


def test_paired_gain_by_seed(runs):
    g = paired_gain(collect_sweep([runs], ["cider_d"]), "cider_d").set_index("K")
    assert g.loc[1, "gain_mean"] == pytest.approx(0.0)
    assert g.loc[4, "gain_mean"] == pytest.approx(0.2) and g.loc[4, "gain_std"] == pytest.approx(0.1414, abs=1e-4)


def test_write_sweep_files(runs, tmp_path):
    df = collect_sweep([runs], ["cider_d"])
    files = write_sweep(df, ["cider_d"], tmp_path / "out", title="t", command="segrl report table1")
    assert files["png"].stat().st_size > 1000
    assert "| cider_d | 4 | +0.2000 ± 0.1414 | 2 |" in files["md"].read_text()
    assert list(pd.read_csv(files["csv"]).columns) == ["algo", "K=1 cider_d", "K=4 cider_d"]


def test_missing_metric_is_named(runs):
    with pytest.raises(KeyError, match="no metric 'meteor'"):
        collect_sweep([runs], ["meteor"])
