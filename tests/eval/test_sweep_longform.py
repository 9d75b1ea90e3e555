"""Table 2 (one row per model: two evals + credit diagnostics) and table 4 (pairs gathered) on hand-written runs."""

import json
import math

import pandas as pd
import pytest
from runs import with_sampled
from typer.testing import CliRunner

from segrl.cli import app
from segrl.eval.sweep import collect_longform, gather_pairs, summarize, train_log_means
from segrl.eval.tables import load_spec, make_table

EVALS = {"eval": {"accuracy": "accuracy"}, "eval-real": {"real_accuracy": "accuracy"}}
CREDIT = {"misattributed": "credit/misattributed_token_frac", "corr": "credit/corr_rollout_segment_adv"}


def fake_eval(d, model, task, K, metrics, n=10):
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "task": task, "task_version": 1, "model": str(model), "n_examples": n, "n_segments": n * K,
        "metrics": with_sampled(metrics)}))
    (d / "run.json").write_text(json.dumps({"data": {"fingerprint": f"{task}{K}"}, "git": {"commit": "c0ffee0000"}}))


def fake_model(root, algo, K, seed, acc, real=None, credit=(), metric="accuracy", task="charts"):
    """A trained run at root/k{K}/{algo}/seed{seed}; ``credit``: per logged step (misattributed, corr)
    or None where the step did not log them."""
    model = root / f"k{K}" / algo / f"seed{seed}"
    fake_eval(model / "eval", model, task, K, {metric: acc})
    if real is not None:
        fake_eval(model / "eval-real", model, "multichart", K, {"accuracy": real}, n=4)
    (model / "run.json").write_text(json.dumps({"algo": algo, "seed": seed}))
    lines = []
    credit = credit or [None]
    for step, c in enumerate(credit, 1):
        rec = {"loss": 0.0, "step": step, "reward": 0.1 * step}
        if c is not None:
            rec.update({"credit/misattributed_token_frac": c[0], "credit/corr_rollout_segment_adv": c[1]})
        lines.append(json.dumps(rec))
    (model / "train_log.jsonl").write_text("\n".join(lines) + "\n")
    return model


@pytest.fixture
def table2(tmp_path):
    root = tmp_path / "runs" / "table2"
    # grpo K=2: steps (0.2, 0.8), (skipped), (0.4, 0.6) -> means 0.3 and 0.7
    fake_model(root, "grpo", 2, 0, 0.5, real=0.25, credit=[(0.2, 0.8), None, (0.4, 0.6)])
    fake_model(root, "grpo", 2, 1, 0.7, real=0.0, credit=[(0.4, 0.7)])
    fake_model(root, "sd_grpo", 2, 0, 0.6, real=0.25, credit=[(0.0, 0.9)])
    fake_model(root, "sd_grpo", 2, 1, 0.9, real=0.5, credit=[(0.0, 0.7)])
    fake_model(root, "dr_grpo", 2, 0, 0.4, real=0.0, credit=[(0.3, 0.6)])
    fake_model(root, "sd_dr_grpo", 2, 0, 0.55, real=0.25, credit=[(0.0, 0.6)])
    # K=8: no real-sample eval exists
    fake_model(root, "grpo", 8, 0, 0.2, credit=[(0.5, 0.35)])
    fake_model(root, "sd_grpo", 8, 0, 0.4, credit=[None])
    return root


def test_train_log_means_skip_unlogged_steps(table2):
    got = train_log_means(table2 / "k2" / "grpo" / "seed0", CREDIT)
    assert got["misattributed"] == pytest.approx(0.3) and got["corr"] == pytest.approx(0.7)
    assert math.isnan(train_log_means(table2 / "k8" / "sd_grpo" / "seed0", CREDIT)["misattributed"])
    with pytest.raises(FileNotFoundError, match="train_log.jsonl"):
        train_log_means(table2, CREDIT)


def test_collect_longform_one_row_per_model(table2):
    df = collect_longform([table2], EVALS, CREDIT)
    assert len(df) == 8
    row = df[(df.algo == "grpo") & (df.K == 2) & (df.seed == 0)].iloc[0]
    assert (row.accuracy, row.real_accuracy) == (0.5, 0.25)
    assert row.misattributed == pytest.approx(0.3) and row.task == "charts v1 + multichart v1"
    k8 = df[df.K == 8]
    assert k8["real_accuracy"].isna().all() and sorted(k8.algo) == ["grpo", "sd_grpo"]
    table = summarize(df, ["accuracy", "real_accuracy", "misattributed"]).set_index("algo")
    # grpo K=2 accuracy: mean(0.5, 0.7) = 0.6, sem 0.1, t_{0.975,1} = 12.706205; misattributed: mean(0.3, 0.4)
    assert table.loc["grpo", "K=2 accuracy"] == "0.6000 [-0.6706, 1.8706] (n=2†)"
    assert table.loc["grpo", "K=2 misattributed"] == "0.3500 [-0.2853, 0.9853] (n=2†)"
    assert table.loc["sd_grpo", "K=2 misattributed"] == "0.0000 [0.0000, 0.0000] (n=2†)"
    assert table.loc["grpo", "K=8 real_accuracy"] == ""  # no real-sample eval at K=8: left empty, not NaN
    assert table.loc["sd_grpo", "K=8 misattributed"] == ""


def test_collect_longform_refuses_mismatched_k_and_missing_primary(table2):
    model = table2 / "k2" / "sd_dr_grpo" / "seed0"
    (model / "eval-real" / "metrics.json").write_text(json.dumps({
        "task": "multichart", "model": str(model), "n_examples": 3, "n_segments": 12, "metrics": {"accuracy": 0.1}}))
    with pytest.raises(ValueError, match=r"eval has K=2 but \{'eval-real': 4\}"):
        collect_longform([table2], EVALS, CREDIT)
    orphan = table2 / "k2" / "grpo" / "seed9"
    fake_eval(orphan / "eval-real", orphan, "multichart", 2, {"accuracy": 0.0})
    (model / "eval-real" / "metrics.json").unlink()
    with pytest.raises(ValueError, match="seed9: no eval/metrics.json"):
        collect_longform([table2], EVALS, CREDIT)


def test_table2_files(table2, tmp_path):
    files = make_table(load_spec("table2"), [str(table2)], tmp_path / "out", command="segrl report table2")
    md = files["md"].read_text()
    # paired sd_grpo - grpo accuracy at K=2: seeds 0 and 1 -> +0.1, +0.2: mean 0.15, sem 0.05
    assert "| sd_grpo − grpo | accuracy | 2 | +0.1500 [-0.4853, 0.7853] (n=2†) |  |" in md
    assert "![metrics and credit diagnostics against K](vs_k.png)" in md and "- accuracy: per-question" in md
    assert files["vs_k.png"].stat().st_size > 5000 and files["gain.png"].exists()
    assert files["curves.png"].stat().st_size > 5000  # reward 0.1 * step in every training log
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == 8


def test_gather_pairs_by_hand(table2, tmp_path):
    t1 = tmp_path / "t1"
    for algo, seed, c in [("dr_grpo", 0, 0.10), ("sd_dr_grpo", 0, 0.30), ("dr_grpo", 1, 0.20),
                          ("sd_dr_grpo", 1, 0.20), ("grpo", 0, 0.5)]:
        fake_model(t1, algo, 4, seed, c, metric="cider_d", task="docci")
    from segrl.eval.sweep import collect_sweep

    frames = {"table1": collect_sweep([t1], ["cider_d"]), "table2": collect_longform([table2], EVALS, CREDIT)}
    pairs = [("sd_dr_grpo", "dr_grpo"), ("sd_grpo", "grpo")]
    out = gather_pairs(frames, {"table1": ["cider_d"], "table2": ["accuracy"]}, pairs).set_index(["table", "K"])
    r = out.loc[("table1", 4)]
    # dr_grpo 0.1, 0.2: mean 0.15, sem 0.05, t_{0.975,1} = 12.706205
    assert r["dr_grpo"] == "0.1500 [-0.4853, 0.7853] (n=2†)" and r["sd_dr_grpo"] == "0.2500 [-0.3853, 0.8853] (n=2†)"
    # paired by seed: +0.2 and 0.0 -> mean 0.1, sem 0.1
    assert r["sd_dr_grpo − dr_grpo"] == "+0.1000 [-1.1706, 1.3706] (n=2†)" and r["_gain_sd_dr_grpo"] == pytest.approx(0.1)
    assert r["grpo"] == "0.5000 (n=1†, no CI)" and r["sd_grpo"] == "" and r["sd_grpo − grpo"] == ""
    r2 = out.loc[("table2", 2)]
    assert r2["sd_dr_grpo − dr_grpo"] == "+0.1500 (n=1†, no CI)"  # 0.55 - 0.40, seed 0
    assert r2["sd_grpo − grpo"] == "+0.1500 [-0.4853, 0.7853] (n=2†)"


def test_report_table2_and_table4_cli(table2, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the named tables read runs/table{1,2,3} relative to the working directory
    runner = CliRunner()
    res = runner.invoke(app, ["report", "table2"])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "results/table2/table.md").read_text()
    assert "K=8 misattributed" in md and (tmp_path / "results/table2/vs_k.png").exists()
    res = runner.invoke(app, ["report", "table4"])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "results/table4/table.md").read_text()
    assert "table1: not run (runs/table1 missing)" in md and "table3: not run (runs/table3 missing)" in md
    rows = [line for line in md.splitlines() if line.startswith("| table2")]
    assert len(rows) == 3  # accuracy at K=2 and 8, real_accuracy at K=2 (none at K=8)
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[2:4] == ["accuracy", "2"] and cells[6] == "+0.1500 (n=1†, no CI)"
    assert (tmp_path / "results/table4/gain.png").stat().st_size > 5000
    assert runner.invoke(app, ["report", "table4", "runs/x"]).exit_code == 2
