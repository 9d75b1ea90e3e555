"""segrl.eval.stats against hand-computed values (t quantiles from tables)."""

import math

import numpy as np
import pandas as pd
import pytest

from segrl.eval.stats import Interval, mean_ci, paired, slope_ci, steps_to_fraction, verdict


def test_t_interval_by_hand():
    # mean 3, s = sqrt(2.5) = 1.58114, sem = s / sqrt(5) = 0.70711, t_{0.975, 4} = 2.776445
    ci = mean_ci([1, 2, 3, 4, 5])
    assert ci.estimate == 3.0 and ci.n == 5
    assert ci.low == pytest.approx(3 - 2.776445 * 0.707107, abs=1e-5) == pytest.approx(1.036757, abs=1e-5)
    assert ci.high == pytest.approx(4.963243, abs=1e-5)
    assert ci.text() == "3.0000 [1.0368, 4.9632] (n=5)"
    # 90 %: t_{0.95, 4} = 2.131847
    assert mean_ci([1, 2, 3, 4, 5], 0.90).low == pytest.approx(3 - 2.131847 * 0.707107, abs=1e-5)


def test_degenerate_intervals_and_errors():
    one = mean_ci([0.4, float("nan")])
    assert one.n == 1 and not one.defined and one.text(min_n=5) == "0.4000 (n=1†, no CI)"
    same = mean_ci([0.2, 0.2, 0.2])
    assert same.low == same.high == same.estimate == pytest.approx(0.2) and same.excludes_zero()
    with pytest.raises(ValueError, match="no values"):
        mean_ci([float("nan")])
    with pytest.raises(ValueError, match="unknown CI method"):
        mean_ci([1, 2], method="z")


def test_bootstrap_interval_is_reproducible_and_near_t():
    v = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.35, 0.25])
    a, b = mean_ci(v, method="bootstrap"), mean_ci(v, method="bootstrap")
    assert (a.low, a.high) == (b.low, b.high)  # fixed random_state
    t = mean_ci(v)
    assert a.low < v.mean() < a.high and abs(a.low - t.low) < 0.05 and abs(a.high - t.high) < 0.05


def test_paired_by_seed_flags_unpaired():
    df = pd.DataFrame({"algo": ["sd", "sd", "sd", "g", "g"], "seed": [0, 1, 2, 0, 1], "m": [0.5, 0.7, 0.9, 0.4, 0.4]})
    p = paired(df, "m", "sd", "g")
    assert p.seeds == [0, 1] and p.diffs == pytest.approx([0.1, 0.3])
    assert p.unpaired == {"sd": [2], "g": []} and p.unpaired_text() == "unpaired: sd seeds [2]"
    dup = pd.concat([df, df.iloc[[3]]])
    with pytest.raises(ValueError, match=r"algo='g': several runs with seed \[0\]"):
        paired(dup, "m", "sd", "g")


def test_slope_ci_by_hand():
    # y = 0.1 x + d_s with d = (-0.02, -0.01, 0, 0.01, 0.02) at each of x = 0, 1, 2: slope exactly 0.1;
    # residual SS = 3 * 0.001, s^2 = 0.003 / 13, Sxx = 10, stderr = 0.0048038, t_{0.975, 13} = 2.160369
    d = [-0.02, -0.01, 0.0, 0.01, 0.02]
    x = [k for k in (0, 1, 2) for _ in d]
    y = [0.1 * k + e for k in (0, 1, 2) for e in d]
    s = slope_ci(x, y)
    assert s.estimate == pytest.approx(0.1) and s.n == 15
    assert s.high - s.estimate == pytest.approx(2.160369 * math.sqrt(0.003 / 13 / 10), abs=1e-6)
    assert not slope_ci([1, 1, 1], [0, 1, 2]).defined and not slope_ci([0, 1], [0, 1]).defined


def test_steps_to_fraction():
    steps, vals = [1, 2, 3, 4], [0.2, 0.3, 0.45, 0.6]
    assert steps_to_fraction(steps, vals, start=0.2, best=0.6, fraction=0.5) == 3.0  # target 0.4
    assert steps_to_fraction(steps, vals, 0.2, 0.6, fraction=1.0) == 4.0
    assert steps_to_fraction(steps, [0.2, 0.25], 0.2, 0.6) is None  # never reached
    assert steps_to_fraction(steps, vals, 0.6, 0.5) is None  # nothing learnt


def test_verdict_rules():
    up, span, down = Interval(0.2, 0.1, 0.3, 5), Interval(0.0, -0.1, 0.1, 5), Interval(-0.2, -0.3, -0.1, 5)
    assert verdict(True, up)[0] == "reproduced"
    assert verdict(True, down)[0] == "not reproduced"
    assert verdict(True, span)[0] == "uninformative"
    assert verdict(False, up) == ("uninformative", "the baseline-learns gate failed: the baseline did not improve "
                                  "over its SFT start")
    assert verdict(None, up)[0] == "uninformative"
    assert verdict(True, Interval(0.02, 0.01, 0.03, 5), min_effect=0.05)[0] == "not reproduced"
    assert verdict(True, Interval(0.1, float("nan"), float("nan"), 1))[0] == "uninformative"
