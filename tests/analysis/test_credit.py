"""Credit analysis: closed form, estimators vs plain loops, Monte Carlo checks of the theory, files written."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from segrl.analysis.credit import (
    EPS,
    CreditConfig,
    corr_closed_form,
    credit_table,
    gradient_snr,
    grpo_advantages,
    mc_correlation,
    other_share,
    policy_gradient,
    sample_actions,
    sd_grpo_advantages,
    steps_to_accuracy,
    write_credit,
)


def test_closed_form_values():
    assert corr_closed_form(1) == 1.0
    assert corr_closed_form(2) == pytest.approx(0.7071067811865476)
    assert corr_closed_form(4) == 0.5
    assert corr_closed_form(16) == 0.25
    assert [other_share(k) for k in (1, 2, 4, 8)] == [0.0, 0.5, 0.75, 0.875]
    with pytest.raises(ValueError, match="K must be >= 1"):
        corr_closed_form(0)


def _z_loop(values):
    m, s = statistics.mean(values), statistics.stdev(values)
    return [(v - m) / (s + EPS) for v in values]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_advantages_match_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    r = (rng.random((3, 5, 4)) < 0.4).astype(float)  # (S, G, K)
    r[0, :, 1] = 1.0  # a constant segment: SD-GRPO gives it 0
    grpo, sd = grpo_advantages(r), sd_grpo_advantages(r)
    for s in range(3):
        big_r = [statistics.mean(r[s, i]) for i in range(5)]
        for i, a in enumerate(_z_loop(big_r)):
            assert grpo[s, i] == pytest.approx([a] * 4, abs=1e-12)
        for k in range(4):
            assert sd[s, :, k] == pytest.approx(_z_loop(list(r[s, :, k])), abs=1e-12)
    assert np.all(sd[0, :, 1] == 0.0)


def test_policy_gradient_matches_a_loop():
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), size=(2, 4))  # (S, K, A)
    actions = sample_actions(rng, probs, 5)
    adv = rng.normal(size=actions.shape)
    g = policy_gradient(actions, probs, adv)
    for s in range(2):
        for k in range(4):
            expect = np.zeros(3)
            for i in range(5):
                onehot = np.eye(3)[actions[s, i, k]]
                expect += adv[s, i, k] * (onehot - probs[s, k]) / 5
            assert g[s, k] == pytest.approx(expect, abs=1e-12)


def test_sample_actions_follow_the_probabilities():
    probs = np.array([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]])
    a = sample_actions(np.random.default_rng(0), probs, 40_000)
    assert a.shape == (1, 40_000, 2)
    for k in range(2):
        freq = np.bincount(a[0, :, k], minlength=3) / 40_000
        assert freq == pytest.approx(probs[0, k], abs=0.01)


@pytest.mark.parametrize("k", [1, 4, 16])
def test_mc_correlation_is_one_over_sqrt_k(k):
    corr = mc_correlation(k, n_rollouts=20_000, n_options=4, rng=np.random.default_rng(k))
    assert abs(corr - 1 / math.sqrt(k)) < 0.05


def test_snr_sd_grpo_beats_grpo_and_matches_at_one_segment():
    snr = {
        k: gradient_snr(k, n_batches=3000, group_size=8, n_options=4, rng=np.random.default_rng(10 + k))
        for k in (1, 4, 8, 16)
    }
    assert snr[1]["grpo"] == pytest.approx(snr[1]["sd_grpo"], rel=1e-9)  # R = r_1: the same estimator
    for k in (4, 8, 16):
        assert snr[k]["sd_grpo"] > 1.5 * snr[k]["grpo"]
    # SD-GRPO's SNR does not depend on K; GRPO's falls as about 1/sqrt(K)
    assert max(s["sd_grpo"] for s in snr.values()) - min(s["sd_grpo"] for s in snr.values()) < 0.25
    for k in (4, 16):
        assert abs(snr[k]["grpo"] / snr[k]["sd_grpo"] - 1 / math.sqrt(k)) < 0.1


def test_steps_to_accuracy_grpo_slower_with_many_segments():
    kw = {"seeds": 4, "group_size": 8, "n_options": 4, "lr": 0.2, "target": 0.9, "max_steps": 2000}
    one = {a: steps_to_accuracy(1, a, rng=np.random.default_rng(0), **kw) for a in ("grpo", "sd_grpo")}
    assert np.array_equal(one["grpo"], one["sd_grpo"])  # same stream, same estimator at K = 1
    eight = {a: steps_to_accuracy(8, a, rng=np.random.default_rng(1), **kw) for a in ("grpo", "sd_grpo")}
    assert not np.isnan(eight["grpo"]).any() and not np.isnan(eight["sd_grpo"]).any()
    assert eight["grpo"].mean() > 2 * eight["sd_grpo"].mean()
    capped = steps_to_accuracy(8, "grpo", rng=np.random.default_rng(1), **{**kw, "max_steps": 3})
    assert np.isnan(capped).all()


SMALL = CreditConfig(ks=(1, 4), n_corr=2000, n_batches=500, seeds=3, lr=0.3, max_steps=1000)


def test_credit_table_columns_and_determinism():
    df = credit_table(SMALL)
    assert list(df["K"]) == [1, 4]
    assert list(df.columns[:7]) == [
        "K",
        "corr_closed",
        "corr_mc",
        "share_other",
        "snr_grpo",
        "snr_sd_grpo",
        "snr_ratio",
    ]
    assert {
        "steps_to_0.9_grpo",
        "steps_to_0.9_grpo_std",
        "steps_to_0.9_sd_grpo",
        "steps_to_0.9_sd_grpo_std",
    } <= set(df)
    assert df["corr_closed"].tolist() == [1.0, 0.5]
    assert df.loc[0, "corr_mc"] == pytest.approx(1.0)
    pd.testing.assert_frame_equal(df, credit_table(SMALL))


def test_config_validation():
    with pytest.raises(ValueError, match="ks"):
        CreditConfig(ks=(0, 2))
    with pytest.raises(ValueError, match="group_size must be >= 2, got 1"):
        CreditConfig(group_size=1)
    with pytest.raises(ValueError, match="target"):
        CreditConfig(target=0.2)


def test_files_written(tmp_path):
    df = credit_table(SMALL)
    md, csv, png = write_credit(
        df,
        tmp_path / "credit",
        SMALL,
        command="segrl analyze credit --test",
        git={"commit": "0123456789abcdef", "dirty": True},
    )
    assert [p.name for p in (md, csv, png)] == ["credit.md", "credit.csv", "credit.png"]
    text = md.read_text()
    assert "`segrl analyze credit --test` at commit `01234567+dirty`" in text
    assert "corr(R, r_k) = (σ²/K)/√(σ²/K · σ²) = 1/√K" in text
    assert "| steps_to_0.9_sd_grpo" in text and " ± " in text
    back = pd.read_csv(csv)
    assert back["K"].tolist() == [1, 4] and back["snr_grpo"].tolist() == pytest.approx(
        df["snr_grpo"].tolist()
    )
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 1000


def test_cli_credit(tmp_path):
    from segrl.cli import analyze

    root = typer.Typer()
    root.add_typer(analyze.app, name="analyze")  # as segrl.cli registers it
    out = tmp_path / "res"
    args = [
        "analyze",
        "credit",
        "--out",
        str(out),
        "--ks",
        "1,2",
        "--n-corr",
        "1000",
        "--n-batches",
        "200",
        "--seeds",
        "2",
        "--lr",
        "0.3",
        "--max-steps",
        "500",
    ]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["credit.csv", "credit.md", "credit.png"]
    assert "--ks 1,2 --n-options 4 --group-size 8 --n-corr 1000" in (out / "credit.md").read_text()
    bad = CliRunner().invoke(root, ["analyze", "credit", "--out", str(tmp_path / "bad"), "--ks", "1,x"])
    assert bad.exit_code != 0 and not (tmp_path / "bad").exists()
