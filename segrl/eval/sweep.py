"""Sweep tables: many eval runs (algorithm × K × seed) → tables of means with 95 % CIs, paired gains,
the baseline-learns gate, and plots.

Used by the paper tables (``segrl report table1`` ...): each eval run says its task, model
and metrics (``metrics.json``); the evaluated model's ``run.json`` says its algorithm and
seed (and, for ``blend``, its ``train.alpha``); K is the number of segments per example of
the evaluated split. Table 1 groups by algorithm and K; the blend sweep (table 3) groups by
alpha instead. :mod:`segrl.eval.tables` assembles these pieces into a table from its spec
(``configs/reports/*.yaml``); the statistics are :mod:`segrl.eval.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from segrl.eval.report import _read_json, find_eval_dirs, write_report  # noqa: F401 (the one writer)
from segrl.eval.stats import CONFIDENCE, MIN_SEEDS, Interval, mean_ci, paired, slope_ci
from segrl.provenance import trainer_argument


def _save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` as a 120-dpi PNG at ``path`` (parents created), close it, return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

def run_alpha(trained: dict) -> float | None:
    """The blend weight of a trained run (its ``run.json`` record): the resolved ``trainer_args.alpha``
    it ran with, else its ``config.train.alpha`` (:func:`segrl.provenance.trainer_argument`);
    None for any algorithm other than ``blend``.

    Raises:
        ValueError: a ``blend`` run records neither (a run written before ``trainer_args`` existed,
            with alpha left at the code default: its value cannot be known from the run).
    """
    if trained.get("algo") != "blend":
        return None
    try:
        return float(trainer_argument(trained, "alpha"))
    except KeyError as e:
        where = trained.get("_path", "a blend run")
        raise ValueError(f"{where}: cannot tell its alpha: {e.args[0]}") from None


def metric_value(metrics: dict, name: str, where: Path | str) -> float:
    """``metrics[name]``; ``sampled_<m>`` reads ``metrics["sampled"][m]`` (the sampled evaluation's mean).

    Raises:
        KeyError: the metric is missing (naming ``where``/metrics.json).
    """
    value = metrics.get(name)
    if value is None and name.startswith("sampled_"):
        value = (metrics.get("sampled") or {}).get(name[len("sampled_"):])
    if value is None:
        raise KeyError(f"{where}/metrics.json has no metric {name!r}")
    return float(value)


def collect_sweep(paths: list[str | Path], metrics: list[str]) -> pd.DataFrame:
    """One row per eval run: ``algo``, ``arm`` (the trained run's parent directory name, e.g.
    ``sapo-entropy`` for ``runs/sapo/sapo-entropy/seed0``), ``seed``, ``K``, ``alpha``
    (:func:`run_alpha`), ``task``, ``data``, ``commit``, ``run`` (the eval directory), ``model``
    (the evaluated model's directory, holding its ``train_log.jsonl``) and ``metrics``.

    Runs of an untrained model (no ``run.json`` with an ``algo``) get ``algo="(init)"``.

    Raises:
        FileNotFoundError: a path holds no eval run.
        KeyError: a requested metric is missing from a run (naming the run).
    """
    rows = []
    for d in find_eval_dirs(paths):
        m = _read_json(d / "metrics.json")
        model_run = Path(m["model"]) / "run.json"
        trained = _read_json(model_run) if model_run.exists() else {}
        if trained:
            trained["_path"] = str(model_run)
        run = _read_json(d / "run.json") if (d / "run.json").exists() else {}
        algo = trained.get("algo", "(init)")
        row = {
            "algo": algo,
            # the experiment arm: the trained run's parent directory (runs/<table>/<arm>/seedN)
            "arm": Path(m["model"]).parent.name if algo != "(init)" else "(init)",
            "seed": trained.get("seed"),
            "K": int(round(m["n_segments"] / max(1, m["n_examples"]))),
            "alpha": run_alpha(trained),
            "task": f"{m['task']} v{m.get('task_version', '?')}",
            "data": (run.get("data") or {}).get("fingerprint"),
            "commit": ((run.get("git") or {}).get("commit") or "?")[:8],
            "run": str(d),
            "model": str(m["model"]),
        }
        for name in metrics:
            row[name] = metric_value(m["metrics"], name, d)
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(values, confidence: float, method: str, min_seeds: int) -> str:
    """``"mean [low, high] (n=N)"`` of the finite ``values`` (``""`` when there are none)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    return mean_ci(v, confidence, method).text(min_n=min_seeds) if len(v) else ""


def summarize(df: pd.DataFrame, metrics: list[str], by: str = "algo", *, confidence: float = CONFIDENCE,
              method: str = "t", min_seeds: int = MIN_SEEDS) -> pd.DataFrame:
    """Rows = ``by`` (algorithm, arm or ``alpha``), columns = ``K=k metric`` as
    ``mean [low, high] (n=N)`` over seeds: the mean with its ``confidence`` interval
    (:func:`segrl.eval.stats.mean_ci`); a ``†`` after N marks a cell with fewer than ``min_seeds``
    seeds; a run without the metric (NaN) is left out of its cell."""
    cells: dict[tuple, str] = {}
    for (key, k), g in df.groupby([by, "K"]):
        for name in metrics:
            text = _cell(g[name], confidence, method, min_seeds)
            if text:
                cells[(key, f"K={k} {name}")] = text
    if by in ("algo", "arm"):
        keys = sorted(df[by].unique(), key=lambda a: (a != "(init)", a))
    else:
        keys = sorted(df[by].unique())
    cols = [f"K={k} {name}" for k in sorted(df["K"].unique()) for name in metrics]
    return pd.DataFrame([{by: a, **{c: cells.get((a, c), "") for c in cols}} for a in keys])


def paired_gain(df: pd.DataFrame, metric: str, treatment="sd_grpo", control="grpo", by: str = "algo", *,
                confidence: float = CONFIDENCE, method: str = "t") -> pd.DataFrame:
    """Per K: ``metric(treatment) - metric(control)`` paired by seed (``treatment`` / ``control`` are
    values of column ``by``), with its mean and ``confidence`` interval over the paired seeds.

    Returns:
        Columns ``K``, ``gain_mean``, ``gain_low``, ``gain_high`` (NaN with one pair), ``n`` (paired
        seeds) and ``unpaired`` (``""`` or the seeds only one arm has, which are left out); one row
        per K with at least one pair.
    """
    out = []
    for k, g in df.groupby("K"):
        p = paired(g, metric, treatment, control, by=by)
        if len(p.diffs):
            ci = p.ci(confidence, method)
            out.append({"K": int(k), "gain_mean": ci.estimate, "gain_low": ci.low, "gain_high": ci.high,
                        "n": ci.n, "unpaired": p.unpaired_text()})
    return pd.DataFrame(out, columns=["K", "gain_mean", "gain_low", "gain_high", "n", "unpaired"])


def gain_points(df: pd.DataFrame, metric: str, treatment, control, by: str = "algo") -> pd.DataFrame:
    """Every paired (K, seed) gain ``treatment - control``: columns ``K``, ``seed``, ``gain``."""
    rows = []
    for k, g in df.groupby("K"):
        p = paired(g, metric, treatment, control, by=by)
        rows += [{"K": int(k), "seed": s, "gain": float(d)} for s, d in zip(p.seeds, p.diffs)]
    return pd.DataFrame(rows, columns=["K", "seed", "gain"])


def gain_slope(df: pd.DataFrame, metric: str, treatment="sd_grpo", control="grpo", by: str = "algo", *,
               confidence: float = CONFIDENCE) -> Interval:
    """The trend of the paired gain in K: the least-squares slope of each (K, seed) paired gain
    against log2 K, with its ``confidence`` interval (:func:`segrl.eval.stats.slope_ci`); units:
    metric units per doubling of K."""
    pts = gain_points(df, metric, treatment, control, by)
    return slope_ci(np.log2(pts["K"].to_numpy(float)), pts["gain"].to_numpy(float), confidence)


def _k_text(k) -> str:
    return f"K={int(k)}"


@dataclass(frozen=True)
class Gate:
    """The baseline-learns gate of a table (EXPERIMENTS.md "The baseline must learn").

    Attributes:
        baseline: the baseline arm (``grpo``; ``1.0`` in the blend sweep, where alpha = 1 is GRPO).
        metric: the metric it is judged on.
        per_k: ``{K: Interval}`` of the baseline's per-seed score minus its SFT start's score at that K.
        missing: Ks where the baseline has runs but no SFT-start eval exists (so no gain).
        passed: True when every K's interval lies above 0; False when one does not; None when no
            K could be judged (no SFT-start eval, or no baseline run).
    """

    baseline: object
    metric: str
    per_k: dict
    missing: list
    passed: bool | None

    def lines(self, min_seeds: int = MIN_SEEDS) -> list[str]:
        """The gate's markdown paragraph (always present in a table's text)."""
        head = f"**Baseline-learns gate** ({self.baseline} − its SFT start, {self.metric}, paired per K): "
        cells = [f"{_k_text(k)} {ci.text(signed=True, min_n=min_seeds)}" for k, ci in sorted(self.per_k.items())]
        cells += [f"{_k_text(k)} no SFT-start eval" for k in self.missing]
        state = {True: "**passed** (every CI above 0).",
                 False: "**failed**: this table is **uninformative** (the baseline did not learn).",
                 None: "**not computable** (no SFT-start eval beside the runs): this table is "
                       "**uninformative** until one is added."}[self.passed]
        return [head + ("; ".join(cells) if cells else "no baseline runs") + ". Gate " + state]


def start_scores(start: pd.DataFrame, metric: str) -> dict[int, float]:
    """``{K: mean score of the SFT-start evals at K}`` (rows of ``algo == "(init)"``)."""
    if start.empty or metric not in start:
        return {}
    return {int(k): float(g[metric].mean()) for k, g in start.groupby("K") if g[metric].notna().any()}


def baseline_gate(df: pd.DataFrame, start: pd.DataFrame, metric: str, baseline="grpo", by: str = "algo", *,
                  confidence: float = CONFIDENCE, method: str = "t") -> Gate:
    """:class:`Gate` of ``baseline`` (a value of column ``by``) against the SFT-start evals ``start``.

    The SFT start is one model per K (shared by every arm and seed), so the gain of seed s is
    ``score(baseline, s) - mean SFT-start score at K`` and its CI is over the baseline's seeds.
    """
    starts = start_scores(start, metric)
    per_k, missing = {}, []
    for k, g in df[df[by] == baseline].groupby("K"):
        v = g[metric].to_numpy(float)
        v = v[~np.isnan(v)]
        if not len(v):
            continue
        if int(k) not in starts:
            missing.append(int(k))
            continue
        per_k[int(k)] = mean_ci(v - starts[int(k)], confidence, method)
    if not per_k:
        passed = None
    elif any(not (ci.defined and ci.low > 0) for ci in per_k.values()):
        passed = False
    else:
        passed = None if missing else True
    return Gate(baseline, metric, per_k, sorted(missing), passed)


def split_start(df: pd.DataFrame, by: str = "algo") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs of trained models, SFT-start evals)``: the evals of untrained models (``algo ==
    "(init)"``) are the SFT start; for ``by="alpha"`` the trained runs are those with an alpha."""
    init = df["algo"] == "(init)" if "algo" in df else pd.Series(False, index=df.index)
    return df[~init].reset_index(drop=True), df[init].reset_index(drop=True)


def _n_range(n: pd.Series) -> str:
    lo, hi = int(n.min()), int(n.max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def plot_gain(gains: dict[str, pd.DataFrame], path: str | Path, *, title: str, treatment: str = "sd_grpo",
              control: str = "grpo") -> Path:
    """The paired gain against K (log2 axis), one line per metric, its CI as a shaded band (and
    error bars); a grey line at 0 (no gain; the K = 1 identity check sits on it). Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segrl.eval.curves import wrap_title

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, g in gains.items():
        if g.empty:
            continue
        g = g.sort_values("K")
        err = np.vstack([g["gain_mean"] - g["gain_low"], g["gain_high"] - g["gain_mean"]])
        bars = ax.errorbar(g["K"], g["gain_mean"], yerr=np.nan_to_num(err), marker="o", capsize=4,
                           label=f"{name} (n={_n_range(g['n'])} seeds)")
        ok = g["gain_low"].notna()
        ax.fill_between(g["K"][ok], g["gain_low"][ok], g["gain_high"][ok], color=bars[0].get_color(), alpha=0.15)
    ax.axhline(0.0, color="grey", lw=0.9, ls="--", label="no gain")
    ks = sorted({int(k) for g in gains.values() for k in g.get("K", [])})
    if ks:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("K (segments per answer)")
    ax.set_ylabel(f"{treatment} − {control}, same seed")
    ax.set_title(wrap_title(f"{title}: paired gain, mean and {int(CONFIDENCE * 100)}% CI", 60), fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, path)


def gain_lines(df: pd.DataFrame, metrics: list[str], pairs: list[tuple], by: str = "algo", *,
               confidence: float = CONFIDENCE, method: str = "t", min_seeds: int = MIN_SEEDS,
               slope: bool = True) -> list[str]:
    """The paired-gain section of a table's text: one row per (pair, metric, K) with the gain's CI
    and n (and the unpaired seeds, flagged); with ``slope`` and ≥ 2 Ks, the slope of the gain
    against log2 K with its CI per (pair, metric)."""
    rows = ["| pair | metric | K | gain (same seed) | flags |", "|---|---|---|---|---|"]
    slopes = []
    for treatment, control in pairs:
        for name in metrics:
            g = paired_gain(df, name, treatment, control, by, confidence=confidence, method=method)
            for r in g.itertuples():
                ci = Interval(r.gain_mean, r.gain_low, r.gain_high, int(r.n), confidence)
                rows.append(f"| {treatment} − {control} | {name} | {int(r.K)} | "
                            f"{ci.text(signed=True, min_n=min_seeds)} | {r.unpaired} |")
            if slope and g["K"].nunique() >= 2:
                s = gain_slope(df, name, treatment, control, by, confidence=confidence)
                slopes.append(f"| {treatment} − {control} | {name} | {s.text(signed=True)} |")
    out = rows + [""]
    if slopes:
        out += [f"Trend in K: slope of the paired gain against log2 K (per doubling of K; every (K, seed) "
                f"gain one point; scipy.stats.linregress, {int(confidence * 100)} % t interval).", "",
                "| pair | metric | slope per doubling of K |", "|---|---|---|", *slopes, ""]
    return out


def header_lines(df: pd.DataFrame, command: str, confidence: float = CONFIDENCE, method: str = "t",
                 min_seeds: int = MIN_SEEDS) -> list[str]:
    """The lines every table's text starts with: the command, runs, commits, tasks and how to read a cell."""
    commits = ", ".join(sorted(set(df["commit"]))) if "commit" in df and not df.empty else "?"
    tasks = ", ".join(sorted(set(df["task"]))) if "task" in df and not df.empty else "?"
    how = "Student t" if method == "t" else "BCa bootstrap"
    return [f"Made by: `{command}`", "", f"Runs: {len(df)}; commits: {commits}; task: {tasks}.", "",
            f"Cells: mean [{int(confidence * 100)} % CI] (n = seeds), {how} interval (scipy.stats); "
            f"† marks fewer than {min_seeds} seeds.", ""]


# --- the blend sweep (table 3): rows = alpha ----------------------------------------------------
def _ci_errorbar(ax, x, values_by_x: dict, **kw):
    """Mean and CI error bars at each x (t interval over the values at that x)."""
    xs, means, lo, hi = [], [], [], []
    for x_, v in sorted(values_by_x.items()):
        v = np.asarray(v, float)
        v = v[~np.isnan(v)]
        if not len(v):
            continue
        ci = mean_ci(v)
        xs.append(x_)
        means.append(ci.estimate)
        lo.append(0.0 if not ci.defined else ci.estimate - ci.low)
        hi.append(0.0 if not ci.defined else ci.high - ci.estimate)
    if xs:
        ax.errorbar(xs, means, yerr=[lo, hi], marker="o", capsize=4, **kw)


def _start_line(ax, start: pd.DataFrame, metric: str, label: str = "SFT start") -> None:
    """A dashed reference line at the SFT-start score (its mean over K when several Ks)."""
    scores = start_scores(start, metric) if start is not None else {}
    if scores:
        ax.axhline(float(np.mean(list(scores.values()))), color="black", ls="--", lw=0.9, label=label)


def plot_alpha(df: pd.DataFrame, metrics: list[str], path: str | Path, *, title: str,
               start: pd.DataFrame | None = None) -> Path:
    """One panel per metric: mean and 95 % CI over seeds against alpha, one line per K, the SFT
    start as a dashed line; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segrl.eval.curves import wrap_title

    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5.0, 4 * len(metrics)), 3.8), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        for k, g in df.groupby("K"):
            _ci_errorbar(ax, None, {a: gg[name] for a, gg in g.groupby("alpha")}, label=f"K={k}")
        _start_line(ax, start, name)
        ax.set_xlabel("alpha (0 = per-segment, 1 = holistic)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(wrap_title(f"{title} — mean and 95% CI over seeds", max(50, 40 * len(metrics))), fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def alpha_gain_lines(df: pd.DataFrame, metrics: list[str], *, confidence: float = CONFIDENCE, method: str = "t",
                     min_seeds: int = MIN_SEEDS) -> list[str]:
    """Table 3's paired-gain section: per (metric, K, alpha) the gain over alpha = 0 (SD-GRPO) and over
    alpha = 1 (GRPO), same seed, with CIs.

    Raises:
        ValueError: a run is not a ``blend`` run (it has no alpha; the message names it).
    """
    if df["alpha"].isna().any():
        bad = df[df["alpha"].isna()]
        raise ValueError(f"not blend runs (no alpha): {sorted(bad['run'])} ({sorted(set(bad['algo']))})")
    lines = []
    for name in metrics:
        for a in sorted(df["alpha"].unique()):
            cells = []
            for control in (0.0, 1.0):
                g = paired_gain(df, name, a, control, by="alpha", confidence=confidence, method=method) \
                    if a != control else pd.DataFrame(columns=["K"])
                cells.append({int(r.K): Interval(r.gain_mean, r.gain_low, r.gain_high, int(r.n)).text(
                    signed=True, min_n=min_seeds) + (f" ({r.unpaired})" if r.unpaired else "")
                    for r in g.itertuples()})
            for k in sorted(df["K"].unique()):
                lines.append(f"| {name} | {k} | {a:g} | {cells[0].get(k, '')} | {cells[1].get(k, '')} |")
    return ["| metric | K | alpha | − alpha=0 (SD-GRPO) | − alpha=1 (GRPO) |", "|---|---|---|---|---|", *lines, ""]


# --- long-form QA (table 2): several evals of one model + its credit diagnostics -------------------
def train_log_means(run_dir: str | Path, keys: dict[str, str]) -> dict[str, float]:
    """``{column: mean over logged steps of train_log.jsonl key}``; NaN for a key never logged
    (the trainer leaves a credit diagnostic out of a step where it is undefined).

    Raises:
        FileNotFoundError: ``run_dir`` has no ``train_log.jsonl``.
    """
    import json

    path = Path(run_dir) / "train_log.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (the credit diagnostics come from the training log)")
    values: dict[str, list[float]] = {col: [] for col in keys}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        for col, key in keys.items():
            if rec.get(key) is not None:
                values[col].append(float(rec[key]))
    return {col: (float(np.mean(v)) if v else float("nan")) for col, v in values.items()}


def collect_longform(paths: list[str | Path], evals: dict[str, dict[str, str]],
                     train_metrics: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per trained model: ``algo``, ``seed``, ``K``, ``task``, ``data``, ``commit``, ``run`` (the primary eval directory), ``model`` (the evaluated model),
    one column per entry of ``evals`` and ``train_metrics``.

    Args:
        paths: directories to search for eval runs (``metrics.json``).
        evals: eval directory name -> ``{column: metric}``; e.g. ``{"eval": {"accuracy": "accuracy"},
            "eval-real": {"real_accuracy": "accuracy"}}``. The first entry is the model's primary
            eval (K comes from it and every model needs it); eval runs under other names are ignored;
            a model without a later entry gets NaN there.
        train_metrics: ``{column: train_log.jsonl key}`` averaged over the model's logged steps
            (:func:`train_log_means`).

    Raises:
        FileNotFoundError: a path holds no eval run, or a model's training log is missing.
        KeyError: a requested metric is missing from an eval run (naming it).
        ValueError: a model lacks its primary eval, or its evals disagree on K (naming them).
    """
    primary = next(iter(evals))
    models: dict[str, dict] = {}
    for d in find_eval_dirs(paths):
        if d.name not in evals:
            continue
        m = _read_json(d / "metrics.json")
        model = str(m["model"])
        row = models.setdefault(model, {"_evals": {}})
        K = int(round(m["n_segments"] / max(1, m["n_examples"])))
        row["_evals"][d.name] = (K, d)
        for col, metric in evals[d.name].items():
            row[col] = metric_value(m["metrics"], metric, d)
        run = _read_json(d / "run.json") if (d / "run.json").exists() else {}
        row.setdefault("_tasks", set()).add(f"{m['task']} v{m.get('task_version', '?')}")
        row.setdefault("_data", []).append((run.get("data") or {}).get("fingerprint") or "?")
        row.setdefault("_commits", set()).add(((run.get("git") or {}).get("commit") or "?")[:8])
    rows = []
    for model, row in sorted(models.items()):
        found = row.pop("_evals")
        if primary not in found:
            raise ValueError(f"{model}: no {primary}/metrics.json (evals found: {sorted(found)})")
        K = found[primary][0]
        bad = {name: k for name, (k, _) in found.items() if k != K}
        if bad:
            raise ValueError(f"{model}: {primary} has K={K} but {bad} (evaluate every split with the same K)")
        model_run = Path(model) / "run.json"
        trained = _read_json(model_run) if model_run.exists() else {}
        out = {"algo": trained.get("algo", "(init)"), "seed": trained.get("seed"), "K": K,
               "task": " + ".join(sorted(row.pop("_tasks"))), "data": "+".join(row.pop("_data")),
               "commit": ",".join(sorted(row.pop("_commits"))), "run": str(found[primary][1]), "model": model}
        for cols in evals.values():
            for col in cols:
                out[col] = row.get(col, float("nan"))
        if train_metrics:  # an SFT start (not trained by segrl train) has no training log: NaN
            out.update(train_log_means(model, train_metrics) if trained.get("algo") else
                       {col: float("nan") for col in train_metrics})
        rows.append(out)
    return pd.DataFrame(rows)


def plot_vs_k(df: pd.DataFrame, metrics: list[str], path: str | Path, *, title: str,
              start: pd.DataFrame | None = None) -> Path:
    """One panel per metric: mean and 95 % CI over seeds against K (log2 axis), one line per
    algorithm, the SFT start (mean over K) dashed; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segrl.eval.curves import wrap_title

    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5.0, 3.8 * len(metrics)), 3.8), squeeze=False)
    ks = sorted(int(k) for k in df["K"].unique())
    for ax, name in zip(axes[0], metrics):
        for algo, g in df.groupby("algo"):
            _ci_errorbar(ax, None, {int(k): gg[name] for k, gg in g.groupby("K")}, label=algo)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K (questions per answer)")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(wrap_title(f"{title} — mean and 95% CI over seeds", max(50, 34 * len(metrics))), fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


# --- Dr. GRPO integration (table 4): SD- vs plain, gathered from the other tables -------------------
def gather_pairs(tables: dict[str, pd.DataFrame], metrics: dict[str, list[str]],
                 pairs: list[tuple[str, str]], *, confidence: float = CONFIDENCE, method: str = "t",
                 min_seeds: int = MIN_SEEDS) -> pd.DataFrame:
    """One row per (table, metric, K): for each ``(treatment, control)`` pair, both means with CIs over
    seeds and the paired gain (same seed) with its CI as text, plus numbers for plotting.

    Args:
        tables: table name -> its sweep frame (:func:`collect_sweep` / :func:`collect_longform`).
        metrics: table name -> the metric columns to report.
        pairs: e.g. ``[("sd_dr_grpo", "dr_grpo"), ("sd_grpo", "grpo")]``.

    Returns:
        Columns ``table``, ``task``, ``metric``, ``K``, then per pair ``<control>``, ``<treatment>``,
        ``<treatment> − <control>`` (text) and ``_gain_<treatment>`` / ``_low_<treatment>`` /
        ``_high_<treatment>`` (numbers, NaN when the pair has no common seed). A (table, metric, K)
        with a value for one algorithm of the pairs gets a row (the others' cells empty); one with
        none gets no row.
    """
    wanted = {a for p in pairs for a in p}
    rows = []
    for name, df in tables.items():
        df = df[df["algo"].isin(wanted)]
        if df.empty:
            continue
        for metric in metrics[name]:
            for k, g in df.groupby("K"):
                row = {"table": name, "task": ", ".join(sorted(g["task"].unique())), "metric": metric, "K": int(k)}
                for treat, ctrl in pairs:
                    row[ctrl] = _cell(g[g.algo == ctrl][metric], confidence, method, min_seeds)
                    row[treat] = _cell(g[g.algo == treat][metric], confidence, method, min_seeds)
                    gain = paired_gain(g, metric, treat, ctrl, confidence=confidence, method=method)
                    if gain.empty:
                        row[f"{treat} − {ctrl}"] = ""
                        row[f"_gain_{treat}"] = row[f"_low_{treat}"] = row[f"_high_{treat}"] = float("nan")
                    else:
                        r = gain.iloc[0]
                        ci = Interval(r.gain_mean, r.gain_low, r.gain_high, int(r.n), confidence)
                        row[f"{treat} − {ctrl}"] = ci.text(signed=True, min_n=min_seeds) + (
                            f" ({r.unpaired})" if r.unpaired else "")
                        row[f"_gain_{treat}"], row[f"_low_{treat}"], row[f"_high_{treat}"] = ci.estimate, ci.low, ci.high
                if any(row[a] for p in pairs for a in p):  # e.g. no real-sample eval at this K: no row
                    rows.append(row)
    return pd.DataFrame(rows)


def plot_gathered(table: pd.DataFrame, path: str | Path, *, title: str, pairs: list[tuple[str, str]]) -> Path:
    """Table 4's ``gain.png``: the paired gain (mean and 95 % CI) against K, one panel per
    (table, metric), one line per pair, 0 dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segrl.eval.curves import wrap_title

    panels = [] if table.empty else list(table.groupby(["table", "metric"], sort=True))
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(max(5.0, 3.8 * n), 3.8), squeeze=False)
    for ax, ((name, metric), g) in zip(axes[0], panels):
        for treat, ctrl in pairs:
            gg = g.dropna(subset=[f"_gain_{treat}"]).sort_values("K")
            if not gg.empty:
                m = gg[f"_gain_{treat}"]
                err = np.nan_to_num(np.vstack([m - gg[f"_low_{treat}"], gg[f"_high_{treat}"] - m]))
                ax.errorbar(gg["K"], m, yerr=err, marker="o", capsize=3, label=f"{treat} − {ctrl}")
        ax.axhline(0.0, color="grey", lw=0.9, ls="--")
        ax.set_xscale("log", base=2)
        ks = sorted(int(k) for k in g["K"].unique())
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K (segments per answer)")
        ax.set_title(f"{name}: {metric}", fontsize=9)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(wrap_title(f"{title} — paired gain, mean and 95% CI", max(50, 34 * n)), fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


# --- method comparisons (SAPO, SRPO, Dr. Seg): rows = experiment arm ------------------------------
def plot_methods(df: pd.DataFrame, metrics: list[str], path: str | Path, *, title: str,
                 start: pd.DataFrame | None = None) -> Path:
    """One bar panel per metric: mean and 95 % CI over seeds of each arm, the SFT start dashed;
    writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segrl.eval.curves import wrap_title

    arms = sorted(df["arm"].unique())
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5.0, 3.4 * len(metrics)), 3.8), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        cis = [mean_ci(df[df.arm == a][name]) for a in arms]
        err = [[0.0 if not c.defined else c.estimate - c.low for c in cis],
               [0.0 if not c.defined else c.high - c.estimate for c in cis]]
        ax.bar(range(len(arms)), [c.estimate for c in cis], yerr=err, capsize=3)
        _start_line(ax, start, name)
        ax.set_xticks(range(len(arms)), arms, rotation=35, ha="right", fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(wrap_title(f"{title} — mean and 95% CI over seeds", max(50, 30 * len(metrics))), fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)
