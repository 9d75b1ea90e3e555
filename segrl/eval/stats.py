"""Confidence intervals, paired gains, trend slopes and verdicts for the report tables (scipy.stats).

The rules these implement are in the project's EXPERIMENTS.md: ≥ 5 seeds per cell, paired by
seed across arms; 95 % CIs on means and on paired gains; a trend in K is the fitted slope of the
paired gain against log2 K with its CI; every table states its baseline-learns gate and one
verdict (reproduced / not reproduced / uninformative).

Nothing here is hand-rolled statistics: the t interval is ``scipy.stats.t.interval`` around the
sample mean with ``scipy.stats.sem`` (Student 1908; any textbook), the bootstrap is
``scipy.stats.bootstrap`` (BCa, Efron 1987), the slope is ``scipy.stats.linregress`` with the
t quantile on ``n - 2`` degrees of freedom times its standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
"""The confidence level of every interval unless a table spec says otherwise."""

MIN_SEEDS = 5
"""Seeds per cell below which a cell is flagged (EXPERIMENTS.md: at least 5, paired by seed)."""

VERDICTS = ("reproduced", "not reproduced", "uninformative")


@dataclass(frozen=True)
class Interval:
    """A mean (or slope) with its confidence interval.

    Attributes:
        estimate: the sample mean (or fitted slope), in the metric's units.
        low, high: the interval's ends; NaN when it is undefined (n < 2, or n < 3 for a slope).
        n: the number of values (seeds; for a slope, (K, seed) points).
        confidence: the interval's level, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (False when undefined)."""
        return self.defined and (self.low > 0 or self.high < 0)

    def text(self, signed: bool = False, digits: int = 4, min_n: int = 0) -> str:
        """``"0.3000 [0.1000, 0.5000] (n=5)"``; ``"0.3000 (n=1, no CI)"`` when undefined; a ``†``
        after ``n`` when ``n < min_n`` (too few seeds)."""
        est = f"{self.estimate:+.{digits}f}" if signed else f"{self.estimate:.{digits}f}"
        flag = "†" if self.n < min_n else ""
        if not self.defined:
            return f"{est} (n={self.n}{flag}, no CI)"
        return f"{est} [{self.low:.{digits}f}, {self.high:.{digits}f}] (n={self.n}{flag})"


def mean_ci(values, confidence: float = CONFIDENCE, method: str = "t") -> Interval:
    """The mean of ``values`` with its ``confidence`` interval.

    Args:
        values: 1-D numbers (one per seed); NaN entries are dropped.
        confidence: the level, in (0, 1).
        method: ``"t"`` (Student t interval: mean ± t_{n-1} · s / sqrt(n), ``scipy.stats.t.interval``)
            or ``"bootstrap"`` (BCa bootstrap of the mean, ``scipy.stats.bootstrap``, 9,999
            resamples, fixed ``random_state=0`` so a report is reproducible).

    Returns:
        An :class:`Interval`; with one value its ends are NaN; with identical values the interval
        is the point itself (s = 0).

    Raises:
        ValueError: no finite value, an unknown ``method``, or ``confidence`` outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if not len(v):
        raise ValueError("mean_ci: no values")
    mean, n = float(v.mean()), len(v)
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), n, confidence)
    if np.ptp(v) == 0:  # zero spread: scipy's intervals are degenerate (scale 0); the CI is the point
        return Interval(mean, mean, mean, n, confidence)
    if method == "t":
        low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=stats.sem(v))
    elif method == "bootstrap":
        res = stats.bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=9999, method="BCa",
                              random_state=0)
        low, high = res.confidence_interval
    else:
        raise ValueError(f"unknown CI method {method!r} (t, bootstrap)")
    return Interval(mean, float(low), float(high), n, confidence)


@dataclass(frozen=True)
class Paired:
    """Per-seed differences ``treatment - control`` of one metric in one cell.

    Attributes:
        diffs: ``(n,)`` the differences on the seeds both arms have, in seed order.
        seeds: ``(n,)`` those seeds.
        unpaired: ``{arm: [seed, ...]}`` seeds only one of the arms has (left out of ``diffs``).
    """

    diffs: np.ndarray
    seeds: list
    unpaired: dict

    def ci(self, confidence: float = CONFIDENCE, method: str = "t") -> Interval:
        return mean_ci(self.diffs, confidence, method)

    def unpaired_text(self) -> str:
        """``""`` when fully paired, else e.g. ``"unpaired: sd_grpo seeds [4]"``."""
        parts = [f"{arm} seeds {sorted(s)}" for arm, s in self.unpaired.items() if s]
        return ("unpaired: " + "; ".join(parts)) if parts else ""


def paired(df: pd.DataFrame, metric: str, treatment, control, by: str = "algo", key: str = "seed") -> Paired:
    """Pair the rows of ``treatment`` and ``control`` (values of column ``by``) on ``key`` (the seed).

    Rows whose ``metric`` is NaN count as absent. Two rows of one arm with the same seed are an
    error: a cell must hold one run per seed.

    Raises:
        ValueError: an arm has two runs with the same seed (the message names the arm and seeds).
    """
    sides = {}
    for arm in (treatment, control):
        g = df[(df[by] == arm) & df[metric].notna()]
        dup = g[key][g[key].duplicated()].tolist()
        if dup:
            raise ValueError(f"{by}={arm!r}: several runs with {key} {sorted(set(dup))} in one cell "
                             f"(runs: {sorted(g[g[key].isin(dup)].get('run', pd.Series()).tolist())})")
        sides[arm] = pd.Series(g[metric].astype(float).to_numpy(), index=[_seed(s) for s in g[key]])
    t, c = sides[treatment], sides[control]
    common = sorted(set(t.index) & set(c.index), key=lambda s: (s is None, s))
    diffs = np.array([t[s] - c[s] for s in common], dtype=float)
    unpaired = {treatment: sorted(set(t.index) - set(common), key=str),
                control: sorted(set(c.index) - set(common), key=str)}
    return Paired(diffs, common, unpaired)


def _seed(s):
    """A seed as an int when it is integral (a column holding a missing seed is float: 7.0 -> 7)."""
    try:
        return int(s) if float(s).is_integer() else s
    except (TypeError, ValueError):
        return s


def slope_ci(x, y, confidence: float = CONFIDENCE) -> Interval:
    """Least-squares slope of ``y`` on ``x`` (``scipy.stats.linregress``) with its t interval:
    ``slope ± t_{n-2, (1+confidence)/2} · stderr``.

    Used for the trend claim "the gain grows with K": ``x`` = log2 K, ``y`` = the paired gain of
    each (K, seed) point; every seed's gain is one point (not the per-K means), so the interval
    reflects the seed-to-seed spread.

    Returns:
        An :class:`Interval` of the slope (units of ``y`` per unit of ``x``); NaN ends when fewer
        than 3 points or a single distinct ``x``.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 3 or len(np.unique(x)) < 2:
        est = float("nan") if len(np.unique(x)) < 2 else float(np.polyfit(x, y, 1)[0])
        return Interval(est, float("nan"), float("nan"), n, confidence)
    if np.ptp(y) == 0:  # a constant y: slope 0 exactly (linregress's stderr is undefined there)
        return Interval(0.0, 0.0, 0.0, n, confidence)
    fit = stats.linregress(x, y)
    half = stats.t.ppf((1 + confidence) / 2, n - 2) * fit.stderr
    return Interval(float(fit.slope), float(fit.slope - half), float(fit.slope + half), n, confidence)


def steps_to_fraction(steps, values, start: float, best: float, fraction: float = 0.5) -> float | None:
    """Sample efficiency: the first step at which a learning curve reaches ``fraction`` of the way
    from ``start`` (the SFT start's score) to ``best`` (the best final score of any arm).

    The threshold is ``start + fraction · (best - start)``; the curve reaches it at the first step
    whose value is ``>=`` it. We chose first crossing of the (caller-smoothed) mean curve, as in
    cleanrl / rliable-style "steps to threshold" summaries; the papers give no rule.

    Returns:
        The step, or None when the curve never reaches it or ``best <= start`` (nothing learnt:
        no threshold to reach).
    """
    if not best > start:
        return None
    target = start + fraction * (best - start)
    for s, v in zip(steps, values):
        if v >= target:
            return float(s)
    return None


def verdict(gate_passed: bool | None, effect: Interval | None, min_effect: float = 0.0) -> tuple[str, str]:
    """One verdict for a claimed positive effect (treatment better than control, or gain growing in K).

    Rules (EXPERIMENTS.md "Reporting"):

    - **uninformative** when the baseline-learns gate failed or could not be computed, or the
      effect's CI is undefined, or it contains 0 while reaching ``min_effect``;
    - **reproduced** when the gate passed and the whole CI lies above 0 (and above ``min_effect``
      when one is given);
    - **not reproduced** when the gate passed and the whole CI lies below 0, or below
      ``min_effect`` (the smallest effect the claim would mean; 0: any positive effect).

    Returns:
        ``(verdict, reason)``; ``verdict`` is one of :data:`VERDICTS`.
    """
    if gate_passed is None:
        return "uninformative", "the baseline-learns gate could not be computed (no SFT-start eval)"
    if not gate_passed:
        return "uninformative", "the baseline-learns gate failed: the baseline did not improve over its SFT start"
    if effect is None or not effect.defined:
        return "uninformative", "the claimed effect has no CI (too few paired seeds)"
    if effect.low > max(0.0, min_effect):
        return "reproduced", f"the CI of the effect lies above {max(0.0, min_effect):g}"
    if effect.high < max(0.0, min_effect):
        return "not reproduced", f"the CI of the effect lies below {max(0.0, min_effect):g}"
    return "uninformative", "the CI of the effect contains 0: too wide to tell"
