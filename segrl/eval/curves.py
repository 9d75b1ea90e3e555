"""Learning curves from the runs' ``train_log.jsonl``: mean and CI band per arm, sample efficiency.

A trained run's ``train_log.jsonl`` is TRL's log history, one JSON object per logged step with
``step`` and the logged metrics (``reward`` is the mean training reward of the step's rollouts;
a held-out metric such as ``eval_reward`` appears on the steps where it was evaluated).
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from segrl.eval.stats import CONFIDENCE, mean_ci, steps_to_fraction


def read_curve(run_dir: str | Path, key: str = "reward") -> pd.DataFrame:
    """``(step, value)`` rows of ``key`` in ``run_dir/train_log.jsonl``, in step order (steps
    without ``key`` are left out; an empty frame when none has it).

    Raises:
        FileNotFoundError: no ``train_log.jsonl`` in ``run_dir``.
        ValueError: a line is not JSON (naming the file and line).
    """
    path = Path(run_dir) / "train_log.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (learning curves come from the training log)")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not JSON: {e}") from e
        if rec.get(key) is not None and rec.get("step") is not None:
            rows.append({"step": int(rec["step"]), "value": float(rec[key])})
    return pd.DataFrame(rows, columns=["step", "value"]).drop_duplicates("step", keep="last").sort_values("step")


def band(curves: list[pd.DataFrame], confidence: float = CONFIDENCE, smooth: int = 1) -> pd.DataFrame:
    """Mean over runs (seeds) per step with its t interval.

    Args:
        curves: one :func:`read_curve` frame per seed.
        smooth: a trailing rolling mean over this many logged steps applied to each seed's curve
            first (1: none); training rewards of 8-32 rollouts are noisy step to step.

    Returns:
        Columns ``step``, ``mean``, ``low``, ``high``, ``n`` (seeds logged at that step); ``low`` /
        ``high`` are NaN where fewer than 2 seeds logged the step.
    """
    series = []
    for c in curves:
        if c.empty:
            continue
        s = c.set_index("step")["value"]
        series.append(s.rolling(max(1, smooth), min_periods=1).mean())
    if not series:
        return pd.DataFrame(columns=["step", "mean", "low", "high", "n"])
    wide = pd.concat(series, axis=1)
    rows = []
    for step, vals in wide.iterrows():
        ci = mean_ci(vals.to_numpy(float), confidence)
        rows.append({"step": step, "mean": ci.estimate, "low": ci.low, "high": ci.high, "n": ci.n})
    return pd.DataFrame(rows)


def wrap_title(title: str, width: int = 70) -> str:
    """``title`` broken into lines of at most ``width`` characters (so it fits the figure)."""
    return "\n".join(textwrap.wrap(title, width)) or title


def plot_curves(panels: dict[str, dict[str, pd.DataFrame]], path: str | Path, *, title: str,
                ylabel: str = "training reward", starts: dict[str, float] | None = None) -> Path:
    """One panel per key of ``panels`` (e.g. ``"K=4"``), one line per arm: the mean curve with its
    CI band shaded, and the SFT start as a dashed reference line.

    Args:
        panels: ``{panel: {arm: band frame}}`` (:func:`band`).
        starts: ``{panel: SFT-start value}`` drawn as a horizontal reference line.

    Returns:
        The PNG's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from segrl.eval.sweep import _save_figure

    keys = list(panels) or ["(no curves)"]
    fig, axes = plt.subplots(1, len(keys), figsize=(max(5.0, 3.8 * len(keys)), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for arm, b in sorted(panels.get(key, {}).items()):
            if b.empty:
                continue
            (line,) = ax.plot(b["step"], b["mean"], lw=1.4, label=f"{arm} (n={int(b['n'].max())})")
            ok = b["low"].notna()
            ax.fill_between(b["step"][ok], b["low"][ok], b["high"][ok], color=line.get_color(), alpha=0.2, lw=0)
        start = (starts or {}).get(key)
        if start is not None and not math.isnan(start):
            ax.axhline(start, color="black", ls="--", lw=0.9, label="SFT start")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        if len(keys) > 1:
            ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(wrap_title(f"{title} — mean and {int(CONFIDENCE * 100)}% CI over seeds",
                            width=max(50, 34 * len(keys))), fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def final_value(b: pd.DataFrame) -> float:
    """An arm's final score on its curve: the last value of its (smoothed) seed-mean curve."""
    return float(b["mean"].iloc[-1]) if not b.empty else float("nan")


def efficiency(bands: dict[str, pd.DataFrame], start: float, fraction: float = 0.5) -> dict[str, float | None]:
    """Steps for each arm to reach ``fraction`` of the way from ``start`` to the best final score.

    The final score of an arm is :func:`final_value` (with :func:`band`'s smoothing, the mean of
    its last ``smooth`` logged steps); the best final score is the largest over arms; each arm's
    step is :func:`~segrl.eval.stats.steps_to_fraction` on its seed-mean curve.

    Returns:
        ``{arm: step or None}`` (None: never reached, or no arm ended above ``start``).
    """
    finals = {a: final_value(b) for a, b in bands.items() if not b.empty}
    if not finals:
        return {}
    best = max(finals.values())
    return {a: steps_to_fraction(b["step"], b["mean"], start, best, fraction) for a, b in bands.items()
            if not b.empty}


def seed_steps(curves: list[pd.DataFrame], start: float, best: float, fraction: float = 0.5,
               smooth: int = 1) -> list[float | None]:
    """Per seed: the step its own curve (smoothed as in :func:`band`) first reaches the same
    threshold as :func:`efficiency` (``start + fraction (best - start)``); None where it never does."""
    out = []
    for c in curves:
        s = c.set_index("step")["value"].rolling(max(1, smooth), min_periods=1).mean()
        out.append(steps_to_fraction(s.index, s.to_numpy(), start, best, fraction))
    return out


def start_value(bands: dict[str, pd.DataFrame]) -> float:
    """The SFT start on the training curves: the mean over arms of each arm's first logged value
    (the first step's rollouts are sampled from the SFT policy before any update)."""
    firsts = [float(b["mean"].iloc[0]) for b in bands.values() if not b.empty]
    return float(np.mean(firsts)) if firsts else float("nan")
