"""Table 3 (blend sweep): eval runs grouped by alpha, paired gains over both ends, the plot, the CLI."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from segrl.eval.sweep import collect_sweep, paired_gain, run_alpha, summarize, write_alpha_sweep


def fake_run(root, alpha, seed, cider, algo="blend", K=4, set_alpha=True):
    model = root / f"{algo}-a{alpha}-s{seed}"
    (model / "eval").mkdir(parents=True)
    train = {"algo": algo, "seed": seed, **({"alpha": alpha} if set_alpha else {})}
    (model / "run.json").write_text(json.dumps({"algo": algo, "seed": seed, "config": {"train": train}}))
    (model / "eval" / "metrics.json").write_text(json.dumps({
        "task": "docci", "task_version": 1, "model": str(model), "n_examples": 10, "n_segments": 10 * K,
        "metrics": {"cider_d": cider, "bleu4": cider / 10, "meteor": cider / 5}}))
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
    assert run_alpha({"algo": "blend", "config": {"train": {"alpha": 0}}}) == 0.0
    assert run_alpha({"algo": "blend", "config": {"train": {}}}) == 0.5  # SegmentGRPOConfig's default
    assert run_alpha({"algo": "sd_grpo", "config": {"train": {"alpha": 0.3}}}) is None


def test_rows_are_alpha(runs):
    df = collect_sweep([runs], ["cider_d"])
    assert sorted(df.alpha) == [0, 0, 0.5, 0.5, 1, 1]
    table = summarize(df, ["cider_d"], by="alpha").set_index("alpha")
    assert list(table.index) == [0.0, 0.5, 1.0]
    # alpha 0.5: mean(1.5, 1.9) = 1.7, sample std = 0.4 / sqrt(2) = 0.2828
    assert table.loc[0.5, "K=4 cider_d"] == "1.7000 ± 0.2828 (2)"
    assert table.loc[1.0, "K=4 cider_d"] == "0.9000 ± 0.1414 (2)"
    g = paired_gain(df, "cider_d", 0.5, 0.0, by="alpha").set_index("K")
    assert g.loc[4, "gain_mean"] == pytest.approx(0.6) and g.loc[4, "gain_std"] == pytest.approx(0.1414, abs=1e-4)


def test_write_alpha_sweep(runs, tmp_path):
    df = collect_sweep([runs], ["cider_d"])
    files = write_alpha_sweep(df, ["cider_d"], tmp_path / "out", title="t3", command="segrl report table3")
    md = files["md"].read_text()
    # alpha 0.5 - alpha 0: +0.5, +0.7 -> 0.6 ± 0.1414; alpha 0.5 - alpha 1: +0.7, +0.9 -> 0.8 ± 0.1414
    assert "| cider_d | 4 | 0.5 | +0.6000 ± 0.1414 (2) | +0.8000 ± 0.1414 (2) |" in md
    assert "| cider_d | 4 | 0 |  | +0.2000 ± 0.0000 (2) |" in md  # no gain of alpha 0 over itself
    assert "| cider_d | 4 | 1 | -0.2000 ± 0.0000 (2) |  |" in md
    assert list(pd.read_csv(files["csv"]).columns) == ["alpha", "K=4 cider_d"]
    assert files["png"].name == "alpha.png" and files["png"].stat().st_size > 1000
    assert "alpha" in pd.read_csv(tmp_path / "out" / "runs.csv").columns


def test_non_blend_runs_are_refused(runs, tmp_path):
    fake_run(runs, 0, 2, 0.3, algo="sd_grpo", set_alpha=False)
    df = collect_sweep([runs], ["cider_d"])
    with pytest.raises(ValueError, match=r"not blend runs \(no alpha\).*\['sd_grpo'\]"):
        write_alpha_sweep(df, ["cider_d"], tmp_path / "o", title="t", command="c")


def test_cli_report_table3(runs, tmp_path):
    from segrl.cli import app

    out = tmp_path / "results"
    res = CliRunner().invoke(app, ["report", "table3", str(runs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "table.md").read_text()
    assert md.startswith("# Table 3: blend sweep (alpha)") and f"segrl report table3 {runs}" in md
    assert (out / "alpha.png").is_file() and "|     0.5 | 1.7000 ± 0.2828 (2) | 0.1700 ± 0.0283 (2) |" in md
