"""Sweep tables: many eval runs (algorithm × K × seed) → mean ± std tables and a gain plot.

Used by the paper tables (``segrl report table1`` ...): each eval run says its task, model
and metrics (``metrics.json``); the evaluated model's ``run.json`` says its algorithm and
seed (and, for ``blend``, its ``train.alpha``); K is the number of segments per example of
the evaluated split. Table 1 groups by algorithm and K; the blend sweep (table 3) groups by
alpha instead (:func:`write_alpha_sweep`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from segrl.eval.report import _read_json, find_eval_dirs


def _save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` as a 120-dpi PNG at ``path`` (parents created), close it, return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

def run_alpha(trained: dict) -> float | None:
    """The blend weight of a trained run (its ``run.json``): ``config.train.alpha``, or the
    :class:`~segrl.trainers.config.SegmentGRPOConfig` default when the config did not set it;
    None for any algorithm other than ``blend``."""
    if trained.get("algo") != "blend":
        return None
    train = (trained.get("config") or {}).get("train") or {}
    if train.get("alpha") is not None:
        return float(train["alpha"])
    from segrl.trainers.config import SegmentGRPOConfig

    return float(next(f.default for f in dataclasses.fields(SegmentGRPOConfig) if f.name == "alpha"))


def collect_sweep(paths: list[str | Path], metrics: list[str]) -> pd.DataFrame:
    """One row per eval run: ``algo``, ``arm`` (the trained run's parent directory name, e.g.
    ``sapo-entropy`` for ``runs/sapo/sapo-entropy/seed0``), ``seed``, ``K``, ``alpha``
    (:func:`run_alpha`), ``task``, ``data``, ``commit`` and ``metrics``.

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
        run = _read_json(d / "run.json") if (d / "run.json").exists() else {}
        row = {
            "algo": trained.get("algo", "(init)"),
            # the experiment arm: the trained run's parent directory (runs/<table>/<arm>/seedN)
            "arm": Path(m["model"]).parent.name if trained else "(init)",
            "seed": trained.get("seed"),
            "K": int(round(m["n_segments"] / max(1, m["n_examples"]))),
            "alpha": run_alpha(trained),
            "task": f"{m['task']} v{m.get('task_version', '?')}",
            "data": (run.get("data") or {}).get("fingerprint"),
            "commit": ((run.get("git") or {}).get("commit") or "?")[:8],
            "run": str(d),
        }
        for name in metrics:
            if m["metrics"].get(name) is None:
                raise KeyError(f"{d}/metrics.json has no metric {name!r}")
            row[name] = float(m["metrics"][name])
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, metrics: list[str], by: str = "algo") -> pd.DataFrame:
    """Rows = ``by`` (algorithm, or ``alpha``), columns = ``K=k metric`` as ``mean ± std (n)`` over
    seeds (sample std)."""
    cells: dict[tuple, str] = {}
    for (key, k), g in df.groupby([by, "K"]):
        for name in metrics:
            v = g[name].to_numpy(float)
            v = v[~np.isnan(v)]  # a run without this number (e.g. no real-sample eval at that K) is left out
            if not len(v):
                continue
            std = v.std(ddof=1) if len(v) > 1 else 0.0
            cells[(key, f"K={k} {name}")] = f"{v.mean():.4f} ± {std:.4f} ({len(v)})"
    if by == "algo":
        keys = sorted(df["algo"].unique(), key=lambda a: (a != "(init)", a))
    else:
        keys = sorted(df[by].unique())
    cols = [f"K={k} {name}" for k in sorted(df["K"].unique()) for name in metrics]
    return pd.DataFrame([{by: a, **{c: cells.get((a, c), "") for c in cols}} for a in keys])


def paired_gain(
    df: pd.DataFrame, metric: str, treatment="sd_grpo", control="grpo", by: str = "algo"
) -> pd.DataFrame:
    """Per K: mean and std over seeds of ``metric(treatment) - metric(control)``, paired by seed
    (``treatment`` / ``control`` are values of column ``by``)."""
    out = []
    for k, g in df.groupby("K"):
        t = g[g[by] == treatment].set_index("seed")[metric]
        c = g[g[by] == control].set_index("seed")[metric]
        d = (t - c).dropna().to_numpy(float)
        if len(d):
            out.append({"K": int(k), "gain_mean": d.mean(), "gain_std": d.std(ddof=1) if len(d) > 1 else 0.0,
                        "n": len(d)})
    return pd.DataFrame(out)


def plot_gain(gains: dict[str, pd.DataFrame], path: str | Path, *, title: str, treatment: str = "sd_grpo",
              control: str = "grpo") -> Path:
    """Error-bar plot of the paired gain against K, one line per metric; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, g in gains.items():
        if not g.empty:
            ax.errorbar(g["K"], g["gain_mean"], yerr=g["gain_std"], marker="o", capsize=4, label=name)
    ax.axhline(0.0, color="grey", lw=0.8)
    ks = sorted({int(k) for g in gains.values() for k in g.get("K", [])})
    if ks:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("K (segments per answer)")
    ax.set_ylabel(f"{treatment} − {control} (mean ± std over seeds)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, path)


def write_sweep(df: pd.DataFrame, metrics: list[str], out_dir: str | Path, *, title: str, command: str,
                gain_metrics: list[str] | None = None) -> dict[str, Path]:
    """Write ``table.md`` / ``table.csv`` (mean ± std), ``runs.csv`` (every run) and ``gain.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(df, metrics)
    gains = {m: paired_gain(df, m) for m in (gain_metrics or metrics)}
    table.to_csv(out / "table.csv", index=False)
    df.to_csv(out / "runs.csv", index=False)
    commits = ", ".join(sorted(df["commit"].unique()))
    gain_lines = []
    for name, g in gains.items():
        for _, r in g.iterrows():
            gain_lines.append(f"| {name} | {int(r.K)} | {r.gain_mean:+.4f} ± {r.gain_std:.4f} | {int(r.n)} |")
    md = [f"# {title}", "", f"Made by: `{command}`", "", f"Runs: {len(df)}; commits: {commits}; "
          f"task: {', '.join(sorted(df['task'].unique()))}.", "", table.to_markdown(index=False), "",
          "## Paired gain, sd_grpo − grpo (same seed)", "", "| metric | K | gain | seeds |", "|---|---|---|---|",
          *gain_lines, ""]
    (out / "table.md").write_text("\n".join(md))
    png = plot_gain(gains, out / "gain.png", title=title)
    return {"md": out / "table.md", "csv": out / "table.csv", "png": png}


# --- the blend sweep (table 3): rows = alpha ----------------------------------------------------
def plot_alpha(df: pd.DataFrame, metrics: list[str], path: str | Path, *, title: str) -> Path:
    """One panel per metric: mean ± std over seeds against alpha, one line per K; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        for k, g in df.groupby("K"):
            stats = g.groupby("alpha")[name].agg(["mean", "std"]).fillna(0.0).sort_index()
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=4, label=f"K={k}")
        ax.set_xlabel("alpha (0 = per-segment, 1 = holistic)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def write_alpha_sweep(df: pd.DataFrame, metrics: list[str], out_dir: str | Path, *, title: str,
                      command: str) -> dict[str, Path]:
    """Table 3's files: ``table.md`` / ``table.csv`` (rows = alpha, mean ± std over seeds),
    ``runs.csv`` (every run) and ``alpha.png`` (:func:`plot_alpha`); ``table.md`` also gives,
    per alpha, the paired gain over alpha = 0 (SD-GRPO) and over alpha = 1 (GRPO), same seed.

    Raises:
        ValueError: a run is not a ``blend`` run (it has no alpha; the message names it).
    """
    if df["alpha"].isna().any():
        bad = df[df["alpha"].isna()]
        raise ValueError(f"not blend runs (no alpha): {sorted(bad['run'])} ({sorted(set(bad['algo']))})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(df, metrics, by="alpha")
    table.to_csv(out / "table.csv", index=False)
    df.to_csv(out / "runs.csv", index=False)
    lines = []
    alphas = sorted(df["alpha"].unique())
    for name in metrics:
        for a in alphas:
            cells = []
            for control in (0.0, 1.0):
                g = paired_gain(df, name, a, control, by="alpha") if a != control else pd.DataFrame()
                cells.append({int(r.K): f"{r.gain_mean:+.4f} ± {r.gain_std:.4f} ({int(r.n)})"
                              for r in g.itertuples()})
            for k in sorted(df["K"].unique()):
                lines.append(f"| {name} | {k} | {a:g} | {cells[0].get(k, '')} | {cells[1].get(k, '')} |")
    commits = ", ".join(sorted(df["commit"].unique()))
    md = [f"# {title}", "", f"Made by: `{command}`", "", f"Runs: {len(df)}; commits: {commits}; "
          f"task: {', '.join(sorted(df['task'].unique()))}. Rows: alpha of `blend` "
          "(r' = alpha R + (1 - alpha) r_k; 0 = SD-GRPO, 1 = GRPO).", "", table.to_markdown(index=False), "",
          "## Paired gain over the two ends (same seed)", "",
          "| metric | K | alpha | − alpha=0 (SD-GRPO) | − alpha=1 (GRPO) |", "|---|---|---|---|---|",
          *lines, ""]
    (out / "table.md").write_text("\n".join(md))
    png = plot_alpha(df, metrics, out / "alpha.png", title=title)
    return {"md": out / "table.md", "csv": out / "table.csv", "png": png}


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
    """One row per trained model: ``algo``, ``seed``, ``K``, ``task``, ``data``, ``commit``, ``run``,
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
            if m["metrics"].get(metric) is None:
                raise KeyError(f"{d}/metrics.json has no metric {metric!r}")
            row[col] = float(m["metrics"][metric])
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
               "commit": ",".join(sorted(row.pop("_commits"))), "run": model}
        for cols in evals.values():
            for col in cols:
                out[col] = row.get(col, float("nan"))
        if train_metrics:
            out.update(train_log_means(model, train_metrics))
        rows.append(out)
    return pd.DataFrame(rows)


def plot_vs_k(df: pd.DataFrame, metrics: list[str], path: str | Path, *, title: str) -> Path:
    """One panel per metric: mean ± std over seeds against K (log2 axis), one line per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    ks = sorted(int(k) for k in df["K"].unique())
    for ax, name in zip(axes[0], metrics):
        for algo, g in df.groupby("algo"):
            st = g.groupby("K")[name].agg(["mean", "std"]).dropna(subset=["mean"]).fillna({"std": 0.0})
            if not st.empty:
                ax.errorbar(st.index, st["mean"], yerr=st["std"], marker="o", capsize=3, label=algo)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K (questions per answer)")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def write_longform_sweep(df: pd.DataFrame, metrics: list[str], out_dir: str | Path, *, title: str, command: str,
                         gain_metrics: list[str], notes: list[str] = ()) -> dict[str, Path]:
    """Table 2's files: :func:`write_sweep`'s (``table.md`` / ``table.csv`` / ``runs.csv`` / ``gain.png``,
    the paired gain over ``gain_metrics``) plus ``vs_k.png`` (:func:`plot_vs_k` of every metric);
    ``notes`` (one line each) are added to ``table.md``."""
    files = write_sweep(df, metrics, out_dir, title=title, command=command, gain_metrics=gain_metrics)
    png = plot_vs_k(df, metrics, Path(out_dir) / "vs_k.png", title=title)
    md = files["md"].read_text().rstrip("\n")
    extra = ["", "## Against K", "", f"![accuracy and credit diagnostics against K]({png.name})", "",
             *[f"- {n}" for n in notes], ""]
    files["md"].write_text(md + "\n" + "\n".join(extra))
    return {**files, "gain_png": files["png"], "png": png}


# --- Dr. GRPO integration (table 4): SD- vs plain, gathered from the other tables -------------------
def gather_pairs(tables: dict[str, pd.DataFrame], metrics: dict[str, list[str]],
                 pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """One row per (table, metric, K): for each ``(treatment, control)`` pair, both means ± std over
    seeds and the paired gain (same seed) as text, plus the numeric gain for plotting.

    Args:
        tables: table name -> its sweep frame (:func:`collect_sweep` / :func:`collect_longform`).
        metrics: table name -> the metric columns to report.
        pairs: e.g. ``[("sd_dr_grpo", "dr_grpo"), ("sd_grpo", "grpo")]``.

    Returns:
        Columns ``table``, ``task``, ``metric``, ``K``, then per pair ``<control>``, ``<treatment>``,
        ``<treatment> − <control>`` (text) and ``_gain_<treatment>`` / ``_gain_std_<treatment>``
        (numbers, NaN when the pair has no common seed). A (table, metric, K) with a value for one
        algorithm of the pairs gets a row (the others' cells empty); one with none gets no row.
    """
    def cell(v: np.ndarray) -> str:
        v = v[~np.isnan(v)]
        if not len(v):
            return ""
        return f"{v.mean():.4f} ± {(v.std(ddof=1) if len(v) > 1 else 0.0):.4f} ({len(v)})"

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
                    row[ctrl] = cell(g[g.algo == ctrl][metric].to_numpy(float))
                    row[treat] = cell(g[g.algo == treat][metric].to_numpy(float))
                    gain = paired_gain(g, metric, treat, ctrl)
                    gain = gain[gain["K"] == k] if not gain.empty else gain
                    if gain.empty:
                        row[f"{treat} − {ctrl}"] = ""
                        row[f"_gain_{treat}"] = row[f"_gain_std_{treat}"] = float("nan")
                    else:
                        r = gain.iloc[0]
                        row[f"{treat} − {ctrl}"] = f"{r.gain_mean:+.4f} ± {r.gain_std:.4f} ({int(r.n)})"
                        row[f"_gain_{treat}"], row[f"_gain_std_{treat}"] = float(r.gain_mean), float(r.gain_std)
                if any(row[a] for p in pairs for a in p):  # e.g. no real-sample eval at this K: no row
                    rows.append(row)
    return pd.DataFrame(rows)


def write_gathered(table: pd.DataFrame, out_dir: str | Path, *, title: str, command: str,
                   pairs: list[tuple[str, str]], notes: list[str] = ()) -> dict[str, Path]:
    """Table 4's files: ``table.md`` / ``table.csv`` (:func:`gather_pairs` without the numeric columns)
    and ``gain.png``: the paired gain against K, one panel per (table, metric), one line per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shown = table[[c for c in table.columns if not c.startswith("_")]] if not table.empty else table
    shown.to_csv(out / "table.csv", index=False)
    md = [f"# {title}", "", f"Made by: `{command}`", "", *[f"- {n}" for n in notes], "",
          shown.to_markdown(index=False) if not shown.empty else "(no Dr. GRPO / SD-Dr. GRPO runs found)", "",
          "![paired gain against K](gain.png)", ""]
    (out / "table.md").write_text("\n".join(md))
    panels = [] if table.empty else list(table.groupby(["table", "metric"], sort=True))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.6 * max(1, len(panels)), 3.4), squeeze=False)
    for ax, ((name, metric), g) in zip(axes[0], panels):
        for treat, ctrl in pairs:
            gg = g.dropna(subset=[f"_gain_{treat}"]).sort_values("K")
            if not gg.empty:
                ax.errorbar(gg["K"], gg[f"_gain_{treat}"], yerr=gg[f"_gain_std_{treat}"], marker="o", capsize=3,
                            label=f"{treat} − {ctrl}")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ks = sorted(int(k) for k in g["K"].unique())
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K (segments per answer)")
        ax.set_title(f"{name}: {metric}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "gain.png", dpi=120)
    plt.close(fig)
    return {"md": out / "table.md", "csv": out / "table.csv", "png": out / "gain.png"}


# --- method comparisons (SAPO, SRPO, Dr. Seg): rows = experiment arm ------------------------------
def plot_methods(df: pd.DataFrame, metrics: list[str], path: str | Path, *, title: str) -> Path:
    """One bar panel per metric: mean ± std over seeds of each arm; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = sorted(df["arm"].unique())
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        stats = df.groupby("arm")[name].agg(["mean", "std"]).reindex(arms)
        ax.bar(range(len(arms)), stats["mean"], yerr=stats["std"].fillna(0.0), capsize=3)
        ax.set_xticks(range(len(arms)), arms, rotation=35, ha="right", fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def write_methods(df: pd.DataFrame, metrics: list[str], out_dir: str | Path, *, title: str, command: str,
                  pairs: list[tuple[str, str]], notes: list[str] = ()) -> dict[str, Path]:
    """A method comparison: ``table.md`` / ``table.csv`` (rows = arm, mean ± std over seeds),
    ``runs.csv``, the paired gains ``treatment − control`` (same seed) of each pair of arms, and
    ``methods.png`` (:func:`plot_methods`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(df, metrics, by="arm")
    table.to_csv(out / "table.csv", index=False)
    df.to_csv(out / "runs.csv", index=False)
    gain_lines = []
    for treatment, control in pairs:
        for name in metrics:
            for _, r in paired_gain(df, name, treatment, control, by="arm").iterrows():
                gain_lines.append(f"| {treatment} − {control} | {name} | {r.gain_mean:+.4f} ± {r.gain_std:.4f} "
                                  f"| {int(r.n)} |")
    commits = ", ".join(sorted(df["commit"].unique()))
    md = [f"# {title}", "", f"Made by: `{command}`", "", f"Runs: {len(df)}; commits: {commits}; "
          f"task: {', '.join(sorted(df['task'].unique()))}.", "", table.to_markdown(index=False), "",
          "## Paired gains (same seed)", "", "| pair | metric | gain | seeds |", "|---|---|---|---|",
          *gain_lines, "", *[f"- {n}" for n in notes], ""]
    (out / "table.md").write_text("\n".join(md))
    png = plot_methods(df, metrics, out / "methods.png", title=title)
    return {"md": out / "table.md", "csv": out / "table.csv", "png": png}
