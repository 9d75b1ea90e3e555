"""Table 3 (blend sweep): eval runs grouped by alpha, paired gains over both ends, the plot, the CLI."""

import json

import pandas as pd
import pytest
from runs import table3_metrics, with_sampled
from typer.testing import CliRunner

from segrl.eval.sweep import alpha_gain_lines, collect_sweep, paired_gain, run_alpha, summarize
from segrl.eval.tables import load_spec, make_table


def fake_run(root, alpha, seed, cider, algo="blend", K=4, record="trainer_args"):
    """``record``: where the run keeps its alpha: ``trainer_args`` (resolved), ``config`` (the YAML) or ``none``."""
    model = root / f"{algo}-a{alpha}-s{seed}"
    (model / "eval").mkdir(parents=True)
    run = {"algo": algo, "seed": seed, "config": {"train": {"algo": algo}}}
    if record == "trainer_args":
        run["trainer_args"] = {"alpha": alpha, "seed": seed}
    elif record == "config":
        run["config"]["train"]["alpha"] = alpha
    (model / "run.json").write_text(json.dumps(run))
    (model / "eval" / "metrics.json").write_text(json.dumps({
        "task": "docci", "task_version": 1, "model": str(model), "n_examples": 10, "n_segments": 10 * K,
        "metrics": with_sampled(table3_metrics(cider))}))
    (model / "eval" / "run.json").write_text(json.dumps({"data": {"fingerprint": "abc"},
                                                         "git": {"commit": "deadbeef00"}}))


@pytest.fixture
def runs(tmp_path):
    # seed 0 / seed 1: alpha 0.5 beats both ends on both seeds
    for alpha, c0, c1 in [(0, 1.0, 1.2), (0.5, 1.5, 1.9), (1, 0.8, 1.0)]:
        fake_run(tmp_path, alpha, 0, c0)
        fake_run(tmp_path, alpha, 1, c1)
    return tmp_path


def test_alpha_from_run_json():
    assert run_alpha({"algo": "blend", "trainer_args": {"alpha": 0.25}, "config": {"train": {"alpha": 0.9}}}) == 0.25
    assert run_alpha({"algo": "blend", "config": {"train": {"alpha": 0}}}) == 0.0  # no trainer_args: the YAML value
    assert run_alpha({"algo": "sd_grpo", "config": {"train": {"alpha": 0.3}}}) is None
    # neither recorded: the run cannot tell (no guessing from today's code defaults)
    with pytest.raises(ValueError, match="cannot tell its alpha: run.json has no trainer_args"):
        run_alpha({"algo": "blend", "config": {"train": {}}})


def test_rows_are_alpha(runs):
    df = collect_sweep([runs], ["cider_d"])
    assert sorted(df.alpha) == [0, 0, 0.5, 0.5, 1, 1]
    table = summarize(df, ["cider_d"], by="alpha").set_index("alpha")
    assert list(table.index) == [0.0, 0.5, 1.0]
    # alpha 0.5: mean(1.5, 1.9) = 1.7, sem 0.2, t_{0.975,1} = 12.706205
    assert table.loc[0.5, "K=4 cider_d"] == "1.7000 [-0.8412, 4.2412] (n=2†)"
    g = paired_gain(df, "cider_d", 0.5, 0.0, by="alpha").set_index("K")
    # +0.5, +0.7 -> 0.6, sem 0.1
    assert g.loc[4, "gain_mean"] == pytest.approx(0.6) and g.loc[4, "gain_low"] == pytest.approx(0.6 - 1.2706205)


def test_table3_files(runs, tmp_path):
    files = make_table(load_spec("table3"), [str(runs)], tmp_path / "out", command="segrl report table3")
    md = files["md"].read_text()
    # alpha 0.5 - alpha 0: +0.5, +0.7 -> 0.6 [−0.6706, 1.8706]; alpha 0.5 - alpha 1: +0.7, +0.9 -> 0.8
    assert "| cider_d | 4 | 0.5 | +0.6000 [-0.6706, 1.8706] (n=2†) | +0.8000 [-0.4706, 2.0706] (n=2†) |" in md
    assert "| cider_d | 4 | 0 |  | +0.2000 [0.2000, 0.2000] (n=2†) |" in md  # no gain of alpha 0 over itself
    assert "| cider_d | 4 | 1 | -0.2000 [-0.2000, -0.2000] (n=2†) |  |" in md
    assert "(1.0 − its SFT start" in md and "Gate **not computable**" in md
    assert "Measured: paired gain 0.5 − 0.0 at K=4" not in md and "over K > 1 (sampled_cider_d): +0.6000" in md
    assert list(pd.read_csv(files["csv"]).columns) == ["alpha", *(f"K=4 {m}" for m in load_spec("table3").metrics)]
    assert files["alpha.png"].stat().st_size > 1000
    assert "alpha" in pd.read_csv(tmp_path / "out" / "runs.csv").columns


def test_non_blend_runs_are_refused(runs, tmp_path):
    fake_run(runs, 0, 2, 0.3, algo="sd_grpo", record="none")
    df = collect_sweep([runs], ["cider_d"])
    with pytest.raises(ValueError, match=r"not blend runs \(no alpha\).*\['sd_grpo'\]"):
        alpha_gain_lines(df, ["cider_d"])


def test_cli_report_table3(runs, tmp_path):
    from segrl.cli import app

    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["report", "table3", str(runs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "table.md").read_text()
    assert md.startswith("# Table 3: blend sweep (alpha)") and f"segrl report table3 {runs}" in md
    # bleu4 = cider / 10: alpha 0.5 -> 0.17, sem 0.02
    assert (out / "alpha.png").is_file() and "| 1.7000 [-0.8412, 4.2412] (n=2†) | 0.1700 [-0.0841, 0.4241] (n=2†) |" in md
    assert "Verdict: uninformative" in res.output
