"""``segrl report RUNS --out DIR``: the per-run table and DIR/curves.png (training reward per algorithm)."""

import pytest
from runs import sft_eval, trained
from typer.testing import CliRunner

from segrl.cli import app
from segrl.eval.curves import band, efficiency, read_curve, seed_steps


def test_plain_report_writes_curves(tmp_path):
    root = tmp_path / "runs" / "demo"
    sft_eval(root / "sft" / "eval", 2, {"accuracy": 0.25}, task="multichart")
    trained(root / "grpo", "grpo", 0, 2, {"accuracy": 0.3}, task="multichart", curve=[0.2, 0.3, 0.4])
    trained(root / "sd_grpo", "sd_grpo", 0, 2, {"accuracy": 0.35}, task="multichart", curve=[0.2, 0.5, 0.6])
    out = tmp_path / "results" / "demo"
    res = CliRunner().invoke(app, ["report", str(root), "--out", str(out), "--title", "demo"])
    assert res.exit_code == 0, res.output
    md = (out / "table.md").read_text()
    assert "| sd_grpo |" in md and "![training reward against step, per algorithm](curves.png)" in md
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "table.csv").exists()


def test_band_and_efficiency_by_hand(tmp_path):
    for s, curve in enumerate(([0.1, 0.3, 0.5], [0.3, 0.5, 0.7])):
        trained(tmp_path / f"s{s}", "grpo", s, 1, {"m": 0}, curve=curve)
    b = band([read_curve(tmp_path / f"s{s}") for s in range(2)])
    # per step: means 0.2, 0.4, 0.6; two seeds 0.2 apart: sem 0.1, t_{0.975,1} = 12.706205
    assert list(b["mean"].round(6)) == [0.2, 0.4, 0.6] and list(b["n"]) == [2, 2, 2]
    assert b["high"].iloc[0] - b["mean"].iloc[0] == pytest.approx(1.2706205, abs=1e-6)
    flat = band([read_curve(tmp_path / "s0")]).assign(mean=[0.2, 0.2, 0.2])
    # start 0.2, best final 0.6 (the climbing arm): half-way is 0.4, reached at step 2; the flat arm never
    assert efficiency({"up": b, "flat": flat}, start=0.2, fraction=0.5) == {"up": 2.0, "flat": None}
    # per seed, same threshold 0.4: seed 0 (0.1, 0.3, 0.5) at step 3, seed 1 (0.3, 0.5, 0.7) at step 2
    curves = [read_curve(tmp_path / f"s{s}") for s in range(2)]
    assert seed_steps(curves, start=0.2, best=0.6, fraction=0.5) == [3.0, 2.0]
    # smoothed over 2 steps: seed 0 -> 0.1, 0.2, 0.4 (step 3); seed 1 -> 0.3, 0.4 (step 2)
    assert seed_steps(curves, 0.2, 0.6, 0.5, smooth=2) == [3.0, 2.0]
    assert seed_steps(curves, 0.2, 0.6, 1.0, smooth=2) == [None, 3.0]  # 0.6: only seed 1 (0.3, 0.4, 0.6)
