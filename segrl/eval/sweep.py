"""Sweep tables: many eval runs (algorithm × K × seed) → mean ± std tables and a gain plot.

Used by the paper tables (``segrl report table1`` ...): each eval run says its task, model
and metrics (``metrics.json``); the evaluated model's ``run.json`` says its algorithm and
seed; K is the number of segments per example of the evaluated split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from segrl.eval.report import _read_json, find_eval_dirs


def collect_sweep(paths: list[str | Path], metrics: list[str]) -> pd.DataFrame:
    """One row per eval run: ``algo``, ``seed``, ``K``, ``task``, ``data``, ``commit`` and ``metrics``.

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
            "seed": trained.get("seed"),
            "K": int(round(m["n_segments"] / max(1, m["n_examples"]))),
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


def summarize(df: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Rows = algorithm, columns = ``K=k metric`` as ``mean ± std (n)`` over seeds (sample std)."""
    cells: dict[tuple[str, str], str] = {}
    for (algo, k), g in df.groupby(["algo", "K"]):
        for name in metrics:
            v = g[name].to_numpy(float)
            std = v.std(ddof=1) if len(v) > 1 else 0.0
            cells[(algo, f"K={k} {name}")] = f"{v.mean():.4f} ± {std:.4f} ({len(v)})"
    algos = sorted(df["algo"].unique(), key=lambda a: (a != "(init)", a))
    cols = [f"K={k} {name}" for k in sorted(df["K"].unique()) for name in metrics]
    return pd.DataFrame([{"algo": a, **{c: cells.get((a, c), "") for c in cols}} for a in algos])


def paired_gain(df: pd.DataFrame, metric: str, treatment: str = "sd_grpo", control: str = "grpo") -> pd.DataFrame:
    """Per K: mean and std over seeds of ``metric(treatment) - metric(control)``, paired by seed."""
    out = []
    for k, g in df.groupby("K"):
        t = g[g.algo == treatment].set_index("seed")[metric]
        c = g[g.algo == control].set_index("seed")[metric]
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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

