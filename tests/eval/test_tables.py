"""Report tables from their YAML specs on synthetic run directories: CIs, paired gains, the slope in
K, the baseline-learns gate, learning curves, verdicts; every preset in configs/reports/ produces its table."""

import dataclasses
import json
import math

import pandas as pd
import pytest
from runs import sft_eval, table3_metrics, trained
from typer.testing import CliRunner

from segrl.cli import app
from segrl.eval.tables import SPECS_DIR, SpecError, load_spec, make_table, spec_from_dict, spec_names

D = [-0.02, -0.01, 0.0, 0.01, 0.02]  # per-seed offsets of the gain: mean 0, sample std 0.0158114


def table1_runs(root, sft_score=0.30, seeds=5):
    """runs/table1/k{K}/{algo}/seed{s}: grpo scores 0.40 + 0.01 s at every K (its SFT start: ``sft_score``);
    sd_grpo = grpo + 0.1 log2 K + D[s] (K = 1: the identity, gain exactly 0)."""
    for K in (1, 2, 4):
        sft_eval(root / f"k{K}" / "sft" / "eval", K, {"cider_d": sft_score, "bleu4": 0.1, "meteor": 0.1})
        for s in range(seeds):
            g = 0.40 + 0.01 * s
            sd = g + (0.1 * math.log2(K) + D[s] if K > 1 else 0.0)
            trained(root / f"k{K}" / "grpo" / f"seed{s}", "grpo", s, K, {"cider_d": g, "bleu4": 0.1, "meteor": 0.1},
                    curve=[0.30, 0.32, 0.34, 0.36, 0.38, 0.40 + 0.01 * s])
            trained(root / f"k{K}" / "sd_grpo" / f"seed{s}", "sd_grpo", s, K,
                    {"cider_d": sd, "bleu4": 0.1, "meteor": 0.1}, curve=[0.30, 0.40, 0.50, 0.60, 0.60, 0.60])
    return root


def test_table1_gain_slope_gate_and_verdict(tmp_path):
    runs = table1_runs(tmp_path / "runs" / "table1")
    spec = load_spec("table1")
    files = make_table(spec, [str(runs)], tmp_path / "out", command="segrl report table1")
    md = files["md"].read_text()
    # paired gain at K=2: mean 0.1, sem 0.0070711, t_{0.975,4} = 2.776445 -> half width 0.019632
    assert "| sd_grpo − grpo | cider_d | 2 | +0.1000 [0.0804, 0.1196] (n=5) |  |" in md
    assert "| sd_grpo − grpo | cider_d | 1 | +0.0000 [0.0000, 0.0000] (n=5) |  |" in md  # the identity check
    # slope against log2 K over 15 (K, seed) points: exactly 0.1 per doubling; residual SS = 2 * 0.001
    # (K = 1 has no offset), Sxx = 10 -> stderr sqrt(0.002 / 13 / 10) = 0.0039223, t_{0.975,13} = 2.160369
    assert "| sd_grpo − grpo | cider_d | +0.1000 [0.0915, 0.1085] (n=15) |" in md
    # gate: grpo - SFT start = 0.10 + 0.01 s: mean 0.12, same spread as D -> [0.1004, 0.1396]
    assert "K=1 +0.1200 [0.1004, 0.1396] (n=5)" in md and "Gate **passed**" in md
    assert "**Verdict: reproduced** (the CI of the effect lies above 0)" in md
    # means: grpo at K=4 = 0.40 + 0.01 s -> 0.42 [0.4004, 0.4396]; SFT start row (n=1, flagged, no CI)
    table = pd.read_csv(files["csv"]).set_index("algo")
    assert table.loc["grpo", "K=4 cider_d"] == "0.4200 [0.4004, 0.4396] (n=5)"
    assert table.loc["(init)", "K=4 cider_d"] == "0.3000 (n=1†, no CI)"
    assert len(pd.read_csv(files["runs"])) == 2 * 5 * 3 + 3
    assert files["curves.png"].stat().st_size > 10_000 and files["gain.png"].stat().st_size > 10_000
    eff = [line for line in md.splitlines() if line.startswith("| 4 | ")]
    # seed-mean curves smoothed over 5 steps: sd_grpo .30 .35 .40 .45 .48 .54 (final 0.54, the best);
    # grpo .30 .31 .32 .33 .34 .364; target 0.30 + 0.5 (0.54 - 0.30) = 0.42: sd_grpo at step 4, grpo never
    # per seed: every sd_grpo seed has the same curve (step 4); grpo's seeds end at 0.364 + 0.002 s at most
    assert eff == ["| 4 | grpo | 0.3000 | 0.5400 | not reached | —, 0 of 5 seeds reached it |",
                   "| 4 | sd_grpo | 0.3000 | 0.5400 | 4 | 4.0 [4.0, 4.0] (n=5), 5 of 5 seeds reached it |"]


def test_gate_failure_makes_the_table_uninformative(tmp_path):
    runs = table1_runs(tmp_path / "runs" / "table1", sft_score=0.45)  # grpo (0.40-0.44) is below its SFT start
    md = make_table(load_spec("table1"), [str(runs)], tmp_path / "out", command="c")["md"].read_text()
    assert "Gate **failed**: this table is **uninformative**" in md
    assert "**Verdict: uninformative** (the baseline-learns gate failed" in md
    # no SFT-start eval at all: the gate cannot be computed, the table says so
    for K in (1, 2, 4):
        for f in (runs / f"k{K}" / "sft" / "eval").iterdir():
            f.unlink()
        (runs / f"k{K}" / "sft" / "eval").rmdir()
    md = make_table(load_spec("table1"), [str(runs)], tmp_path / "out2", command="c")["md"].read_text()
    assert "Gate **not computable**" in md and "**Verdict: uninformative** (the baseline-learns gate could not" in md


def test_unpaired_and_thin_cells_are_flagged(tmp_path):
    runs = table1_runs(tmp_path / "runs" / "table1", seeds=3)
    trained(runs / "k2" / "sd_grpo" / "seed7", "sd_grpo", 7, 2, {"cider_d": 0.9, "bleu4": 0.1, "meteor": 0.1})
    md = make_table(load_spec("table1"), [str(runs)], tmp_path / "out", command="c")["md"].read_text()
    # seeds 0-2 paired: gains 0.08, 0.09, 0.10 -> sem 0.0057735, t_{0.975,2} = 4.302653; seed 7 has no grpo twin
    assert "| sd_grpo − grpo | cider_d | 2 | +0.0900 [0.0652, 0.1148] (n=3†) | unpaired: sd_grpo seeds [7] |" in md


def test_every_spec_loads():
    names = spec_names()
    assert {"table1", "table2", "table3", "table4", "drseg", "sapo_docci", "sapo_multichart", "sapo_charts", "srpo_docci",
            "srpo_multichart"} <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.title and spec.out.startswith("results/") and spec.claim is not None, name
    assert load_spec(SPECS_DIR / "table3.yaml").base == 1.0 and load_spec("drseg").by == "arm"


@pytest.mark.parametrize("raw,match", [
    ({"title": "t", "out": "o", "runs": ["r"], "metrics": ["m"], "colour": 1}, r"x.yaml: unknown field\(s\) \['colour'\]"),
    ({"title": "t", "out": "o", "kind": "pie", "runs": ["r"], "metrics": ["m"]}, "kind 'pie' is not one of"),
    ({"title": "t", "out": "o", "runs": ["r"]}, "kind 'sweep' needs field 'metrics'"),
    ({"title": "t", "out": "o", "runs": "r", "metrics": ["m"]}, "field 'runs' must be a list"),
    ({"title": "t", "out": "o", "runs": ["r"], "metrics": ["m"], "claim": {"text": "c", "effect": "up"}},
     "claim.effect 'up'"),
    ({"title": "t", "out": "o", "runs": ["r"], "metrics": ["m"], "fraction": 2}, "'fraction' must be a number in"),
])
def test_bad_specs_name_the_file_and_field(raw, match):
    with pytest.raises(SpecError, match=match):
        spec_from_dict(raw, "x", "x.yaml")


def test_unknown_spec_lists_known(tmp_path):
    with pytest.raises(FileNotFoundError, match="known tables: .*table1"):
        load_spec("table9")


# --- every preset of configs/reports/ produces its table from synthetic runs (through the CLI) ---------
def _metrics(spec, value):
    return {m: value for m in spec.metrics}


def _presets(root):
    """Synthetic runs at every spec's default run directories (relative to ``root``)."""
    for K in (1, 4):  # table 1
        sft_eval(root / f"runs/table1/k{K}/sft/eval", K, {"cider_d": 0.2, "bleu4": 0.1, "meteor": 0.1})
        for algo, base in (("grpo", 0.3), ("sd_grpo", 0.35), ("dr_grpo", 0.3), ("sd_dr_grpo", 0.32)):
            for s in range(2):
                trained(root / f"runs/table1/k{K}/{algo}/seed{s}", algo, s, K,
                        {"cider_d": base + 0.01 * s, "bleu4": 0.1, "meteor": 0.1})
    for K in (2, 4, 8):  # table 2 (its SFT start has no training log: the credit columns stay empty)
        sft_eval(root / f"runs/table2/k{K}/sft/eval", K, {"accuracy": 0.3, "format": 1.0}, task="charts")
        for algo in ("grpo", "sd_grpo", "dr_grpo", "sd_dr_grpo"):
            for s in range(2):
                m = trained(root / f"runs/table2/k{K}/{algo}/seed{s}", algo, s, K, {"accuracy": 0.5 + 0.1 * s, "format": 1.0},
                            task="charts", log=[{"credit/misattributed_token_frac": 0.1,
                                                 "credit/corr_rollout_segment_adv": 0.7}])
                if K in (2, 4):  # sapo_charts' globs must skip these
                    from runs import eval_dir

                    eval_dir(m / "eval-real", m, "multichart", K, {"accuracy": 0.25}, n=4)
    sft_eval(root / "runs/table3/sft/eval", 4, table3_metrics(0.2))
    for a in (0.0, 0.5, 1.0):  # table 3
        for s in range(2):
            trained(root / f"runs/table3/alpha{a:g}/seed{s}", "blend", s, 4,
                    table3_metrics(0.3 + a / 10 + 0.01 * s), alpha=a)
    for arm in ("drseg", "vision_reasoner", "sd_grpo"):
        for s in range(2):
            trained(root / f"runs/drseg/{arm}/seed{s}", arm if arm != "vision_reasoner" else "drseg", s, 2,
                    {"giou": 0.1 + 0.01 * s, "count_accuracy": 0.5, "iou": 0.1, "vr_accuracy": 1.0},
                    task="grounding")
    for arm in ("sapo-entropy", "sapo-task", "srpo", "sd_srpo"):
        algo = "sapo" if arm.startswith("sapo") else arm
        for s in range(2):
            trained(root / f"runs/{arm.split('-')[0].replace('sd_', '')}/docci-k4/{arm}/seed{s}", algo, s, 4,
                    {"cider_d": 0.3, "bleu4": 0.1, "meteor": 0.1})
            trained(root / f"runs/{arm.split('-')[0].replace('sd_', '')}/multichart/{arm}/seed{s}", algo, s, 2,
                    {"accuracy": 0.3, "format": 0.9}, task="multichart")
            if arm.startswith("sapo"):
                trained(root / f"runs/sapo/charts-k2/{arm}/seed{s}", algo, s, 2, {"accuracy": 0.55, "format": 1.0},
                        task="charts")
    for algo in ("grpo", "sd_grpo"):
        for s in range(2):
            trained(root / f"runs/baselines/multichart/{algo}/seed{s}", algo, s, 2, {"accuracy": 0.25, "format": 0.9},
                    task="multichart")


def test_every_preset_produces_its_table(tmp_path, monkeypatch):
    _presets(tmp_path)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for name in spec_names():
        res = runner.invoke(app, ["report", name])
        assert res.exit_code == 0, (name, res.output)
        spec = load_spec(name)
        md = (tmp_path / spec.out / "table.md").read_text()
        assert md.startswith(f"# {spec.title}") and f"segrl report {name}" in md, name
        assert "Baseline-learns gate" in md and "**Verdict: " in md, name
        assert (tmp_path / spec.out / "table.csv").exists(), name
        if spec.kind != "gather":
            assert (tmp_path / spec.out / "runs.csv").exists() and (tmp_path / spec.out / "curves.png").exists(), name
    # table 4 gathered table 1's pairs; two seeds: flagged as under 5
    md4 = (tmp_path / "results/table4/table.md").read_text()
    assert "+0.0200 [0.0200, 0.0200] (n=2†)" in md4  # sd_dr_grpo - dr_grpo at each K of table 1
    t2 = pd.read_csv(tmp_path / "results/table2/table.csv").set_index("algo")
    assert t2.loc["(init)", "K=2 accuracy"] == "0.3000 (n=1†, no CI)" and pd.isna(t2.loc["(init)", "K=2 misattributed"])
    # grpo accuracy 0.5, 0.6 over the SFT start 0.3: +0.25 [-0.3853, 0.8853] at each K: the gate fails
    assert "K=2 +0.2500 [-0.3853, 0.8853] (n=2†)" in (tmp_path / "results/table2/table.md").read_text()
    md3 = (tmp_path / "results/table3/table.md").read_text()
    # alpha 0.5 - alpha 0: +0.05 on both seeds; alpha 1 (the gate's GRPO end) - SFT start 0.2: 0.2, 0.21
    assert "| cider_d | 4 | 0.5 | +0.0500 [0.0500, 0.0500] (n=2†) |" in md3
    assert "K=4 +0.2050 [0.1415, 0.2685] (n=2†)" in md3 and "Gate **passed**" in md3
    # sapo_docci finds table 1's K=4 SFT start through start_runs: grpo 0.30, 0.31 over 0.2 -> +0.105, sem 0.005
    assert "K=4 +0.1050 [0.0415, 0.1685] (n=2†). Gate **passed**" in (tmp_path / "results/sapo/docci-k4/table.md").read_text()
    # table 2 (longform) reads each start's sight beside its eval: none written here, so no section
    assert "## Sight of the SFT start" not in (tmp_path / "results/table2/table.md").read_text()
    _sight(tmp_path / "runs/table2/k8/sft", False)
    assert runner.invoke(app, ["report", "table2"]).exit_code == 0
    assert "The verdict leaves out K = 8" in (tmp_path / "results/table2/table.md").read_text()
    # sapo_charts takes Table 2's K = 2 grpo runs (0.5, 0.6; not their eval-real 0.25) and its start (0.3)
    sc = pd.read_csv(tmp_path / "results/sapo/charts-k2/table.csv").set_index("arm")
    assert sc.loc["grpo", "K=2 sampled_accuracy"].startswith("0.5500 [") and sc.loc["sapo-entropy", "K=2 accuracy"].startswith("0.5500")
    assert "K=2 +0.2500 [-0.3853, 0.8853] (n=2†)" in (tmp_path / "results/sapo/charts-k2/table.md").read_text()
    assert runner.invoke(app, ["report", "table4", "runs/x"]).exit_code == 2


def test_missing_start_runs_are_skipped(tmp_path):
    runs = table1_runs(tmp_path / "runs" / "table1", seeds=2)
    spec = spec_from_dict({"title": "t", "out": "o", "runs": [str(runs / "k2")], "metrics": ["cider_d"],
                           "start_runs": [str(tmp_path / "not-yet")]}, "t", "t.yaml")
    md = make_table(spec, None, tmp_path / "out", command="c")["md"].read_text()
    assert "K=2 +0.1050" in md  # the SFT start under runs/ is still found (grpo 0.40, 0.41 over 0.30)


def test_report_refuses_non_blend_runs_in_the_alpha_table(tmp_path):
    root = tmp_path / "runs"
    trained(root / "alpha0/seed0", "blend", 0, 4, table3_metrics(0.3), alpha=0.0)
    trained(root / "sd/seed0", "sd_grpo", 0, 4, table3_metrics(0.3))
    res = CliRunner().invoke(app, ["report", "table3", str(root), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not blend runs (no alpha)" in res.output and "sd_grpo" in res.output


def _sight(d, passed, true=0.8, blank=0.3):
    (d / "check-sight.json").write_text(json.dumps({"acc_true": true, "acc_blank": blank, "chance": 0.34,
                                                    "mcnemar_p": 0.001 if passed else 0.04, "passed": passed}))


def test_the_verdict_leaves_out_a_k_whose_start_fails_the_sight_gate(tmp_path):
    runs = table1_runs(tmp_path / "runs" / "table1")
    for K, ok in ((1, True), (2, True), (4, False)):
        _sight(runs / f"k{K}" / "sft", ok, blank=0.3 if ok else 0.7)
    spec = spec_from_dict({"title": "t", "out": "o", "runs": [str(runs)], "metrics": ["cider_d"],
                           "claim": {"text": "c", "effect": "gain", "pair": ["sd_grpo", "grpo"]}}, "t", "t.yaml")
    md = make_table(spec, None, tmp_path / "out", command="c")["md"].read_text()
    assert "| 4 | 0.800 | 0.700 | 0.340 | 0.04 | **FAIL** |" in md and "| 2 | 0.800 | 0.300 | 0.340 | 0.001 | PASS |" in md
    assert "The verdict leaves out K = 4: its start fails the sight gate." in md
    # K = 2 alone: 0.1 + D -> +0.1000 [0.0804, 0.1196]; with K = 4 (0.2 + D) the pooled mean would be 0.15
    assert ("over K > 1, without K = 4 (start fails the sight gate) (cider_d): +0.1000 [0.0804, 0.1196] (n=5)."
            in md)
    (runs / "k2" / "sft" / "check-sight.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"sight gate in .*k2/sft/check-sight.json"):
        make_table(spec, None, tmp_path / "out", command="c")


def test_an_arm_not_run_at_k1_gets_its_identity_twins_runs(tmp_path):
    """Table 2 v6 does not run sd_grpo at K = 1 (bit-equal to grpo there): the report gives sd_grpo grpo's K = 1
    runs, so the K = 1 gain is exactly 0 per seed and the slope is the one the 30 runs gave."""
    runs = table1_runs(tmp_path / "runs" / "table1")
    spec = load_spec("table1")
    full = make_table(spec, [str(runs)], tmp_path / "full", command="c")["md"].read_text()
    for s in range(5):  # drop the K = 1 sd_grpo runs
        for f in sorted((runs / "k1" / "sd_grpo" / f"seed{s}").rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
    ident = {"K": 1, "arm": "sd_grpo", "same_as": "grpo", "test": "tests/x.py::t"}
    cut = dataclasses.replace(spec, identity=[ident])
    files = make_table(cut, [str(runs)], tmp_path / "cut", command="c")
    md = files["md"].read_text()
    assert "| sd_grpo − grpo | cider_d | 1 | +0.0000 [0.0000, 0.0000] (n=5) |  |" in md
    assert "| sd_grpo − grpo | cider_d | +0.1000 [0.0915, 0.1085] (n=15) |" in md  # as with the runs, above
    assert "| sd_grpo − grpo | cider_d | +0.1000 [0.0915, 0.1085] (n=15) |" in full
    assert "- K = 1: sd_grpo is not run; its rows are grpo's 5 runs (bit-equal there by construction: `tests/x.py::t`)" in md
    assert f"Runs: {2 * 5 * 3 - 5 + 3};" in md  # the runs made (and the starts), not their identity copies
    rows = pd.read_csv(files["runs"])
    twins = rows[rows["identity_of"] == "grpo"]
    assert len(twins) == 5 and set(twins["algo"]) == {"sd_grpo"} and set(twins["K"]) == {1}
    assert rows["identity_of"].isna().sum() == 2 * 5 * 3 - 5 + 3  # every real run (and the 3 starts) unmarked
    # without the entry the K = 1 cell has no sd_grpo, so no K = 1 gain
    md0 = make_table(dataclasses.replace(spec, identity=[]), [str(runs)], tmp_path / "none", command="c")["md"].read_text()
    assert "| sd_grpo − grpo | cider_d | 1 |" not in md0


def test_identity_keeps_an_arm_that_was_run(tmp_path):
    runs = table1_runs(tmp_path / "runs" / "table1")
    ident = {"K": 1, "arm": "sd_grpo", "same_as": "grpo", "test": "t"}
    files = make_table(dataclasses.replace(load_spec("table1"), identity=[ident]), [str(runs)], tmp_path / "o",
                       command="c")
    assert "- K = 1: sd_grpo was run (its own runs are used)." in files["md"].read_text()
    assert len(pd.read_csv(files["runs"])) == 2 * 5 * 3 + 3


def test_identity_copies_only_the_seeds_not_run(tmp_path):
    """Table 1 v3 runs K = 1 sd_grpo at seed 0 only (to check the identity on real runs): seed 0 keeps its own
    run, seeds 1-4 get grpo's; the K = 1 gain is the seed-0 difference and zeros."""
    runs = table1_runs(tmp_path / "runs" / "table1")
    for s in range(1, 5):
        for f in sorted((runs / "k1" / "sd_grpo" / f"seed{s}").rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
    # seed 0's own run scores 0.1 above grpo's (0.40), so a copy of grpo's would show
    trained(runs / "k1" / "sd_grpo" / "seed0", "sd_grpo", 0, 1, {"cider_d": 0.50, "bleu4": 0.1, "meteor": 0.1})
    ident = {"K": 1, "arm": "sd_grpo", "same_as": "grpo", "test": "t"}
    files = make_table(dataclasses.replace(load_spec("table1"), identity=[ident]), [str(runs)], tmp_path / "o",
                       command="c")
    md = files["md"].read_text()
    assert ("- K = 1: sd_grpo is not run; its rows are grpo's 4 runs (bit-equal there by construction: `t`), so its "
            "paired gain is 0 for each seed; seed 0 was run, to check the identity on real runs;") in md
    rows = pd.read_csv(files["runs"])
    k1 = rows[(rows["K"] == 1) & (rows["algo"] == "sd_grpo")]
    assert sorted(k1["seed"]) == [0, 1, 2, 3, 4]
    assert k1.set_index("seed")["identity_of"].isna().to_dict() == {0: True, 1: False, 2: False, 3: False, 4: False}
    g1 = rows[(rows["K"] == 1) & (rows["algo"] == "grpo")].set_index("seed")["cider_d"]
    own = k1.set_index("seed")["cider_d"]
    assert own[0] == pytest.approx(0.50) and g1[0] == pytest.approx(0.40)
    assert all(own[s] == g1[s] for s in range(1, 5))
    # pooled K = 1 gain: (0.1 + 0 + 0 + 0 + 0) / 5
    assert "| sd_grpo − grpo | cider_d | 1 | +0.0200 " in md
    # a K without any run (Table 4's K = 4 sweep) gets no identity section
    only_k4 = make_table(dataclasses.replace(load_spec("table1"), identity=[ident]), [str(runs / "k4")],
                         tmp_path / "k4", command="c")["md"].read_text()
    assert "Arms not run" not in only_k4


@pytest.mark.parametrize("entry", [{"K": 1, "arm": "sd_grpo", "same_as": "grpo"}, {"K": "1", "arm": "a", "same_as": "b",
                                                                                  "test": "t"}, "1/sd_grpo"])
def test_a_bad_identity_entry_names_the_field(entry):
    with pytest.raises(SpecError, match="x.yaml: each identity entry must be"):
        spec_from_dict({"title": "t", "out": "o", "runs": ["r"], "metrics": ["m"], "identity": [entry]}, "x", "x.yaml")


def test_table4_gathers_table1_with_its_identity_rows(tmp_path, monkeypatch):
    """Table 4 reads Table 1's runs as Table 1 shows them: K = 1 sd_grpo, run at seed 0 only, gets grpo's runs for
    seeds 1-4 (n = 5, gain 0 on each copied seed), and the text says so."""
    runs = table1_runs(tmp_path / "runs" / "table1")
    for s in range(1, 5):
        for f in sorted((runs / "k1" / "sd_grpo" / f"seed{s}").rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
    monkeypatch.chdir(tmp_path)
    md = make_table(load_spec("table4"), None, tmp_path / "t4", command="c")["md"].read_text()
    # K = 1, cider_d: grpo 0.40 + 0.01 s and sd_grpo identical (seed 0 run, seeds 1-4 copied): gain exactly 0, n = 5
    assert "| table1  | docci v1 | cider_d         |   1 |" in md
    row = next(line for line in md.splitlines() if "| cider_d         |   1 |" in line)
    assert row.count("0.4200 [0.4004, 0.4396] (n=5)") == 2 and "+0.0000 [0.0000, 0.0000] (n=5)" in row
    assert "- table1: K = 1: sd_grpo is not run; its rows are grpo's 4 runs" in md
