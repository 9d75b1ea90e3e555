"""``segrl report``: collect eval runs into one table (pandas), print it (rich); the one writer of every report (:func:`write_report`: md, csv, runs.csv)."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

SCALAR_METRICS = ("accuracy", "accuracy_example_mean", "all_correct", "format")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e


def find_eval_dirs(paths: list[str | Path]) -> list[Path]:
    """Every directory at or below ``paths`` holding a ``metrics.json`` (sorted).

    The search follows symbolic links to directories (a run directory may link a shared SFT start, e.g.
    ``runs/pilot/sft -> ../other/sft``); a directory reached twice through links is searched once.

    A path with a glob pattern (``*``, ``?``, ``[``), e.g. ``runs/table2/k4/*/seed*/eval``, stands for the
    eval directories it matches (only those: not the other evals beside them, such as ``eval-real``).

    Raises:
        FileNotFoundError: a path is not a directory, or a pattern matches no eval directory.
    """
    found: set[Path] = set()
    for p in map(Path, paths):
        if any(c in str(p) for c in "*?["):
            hits = [Path(m).parent for m in glob.glob(str(p / "metrics.json"))]
            if not hits:
                raise FileNotFoundError(f"no eval run matches {p} (expected directories with metrics.json)")
            found.update(hits)
        elif (p / "metrics.json").exists():
            found.add(p)
        elif p.is_dir():
            found.update(_walk_metrics(p))
        else:
            raise FileNotFoundError(f"no eval run at {p} (expected a directory with metrics.json)")
    return sorted(found)


def _walk_metrics(root: Path) -> list[Path]:
    """The directories at or below ``root`` holding a ``metrics.json``, following directory links
    (``Path.rglob`` does not before Python 3.13); each real directory is visited once, so a link cycle ends."""
    seen: set[str] = set()
    hits = []
    for d, subdirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(d)
        if real in seen:
            subdirs[:] = []
            continue
        seen.add(real)
        if "metrics.json" in files:
            hits.append(Path(d))
    return hits


def collect(paths: list[str | Path], *, allow_mixed: bool = False) -> pd.DataFrame:
    """One row per eval run: run, task (with version), algo, n, segments, the scalar metrics,
    data (the dataset fingerprint from the run's ``run.json``) and commit (8 characters of the
    run's git commit, ``+dirty`` when the checkout had changes, ``?`` when unknown).

    ``algo`` comes from the evaluated model's own ``run.json`` when it was trained by
    ``segrl train``; otherwise it is ``"(init)"`` (a warm-started or base model).

    Args:
        paths: eval run directories, or directories to search for them.
        allow_mixed: keep runs whose task versions or data fingerprints differ in one table
            (the ``task`` and ``data`` columns then tell them apart); by default that is refused.

    Raises:
        FileNotFoundError: a path holds no eval run.
        ValueError: without ``allow_mixed``, the runs mix task versions or data fingerprints
            (a run without ``run.json`` has an unknown fingerprint, which counts as different):
            their numbers are not comparable. The message lists the values and the runs.
    """
    rows = []
    for d in find_eval_dirs(paths):
        m = _read_json(d / "metrics.json")
        run = _read_json(d / "run.json") if (d / "run.json").exists() else {}
        model_run = Path(m["model"]) / "run.json"
        algo = _read_json(model_run).get("algo", "(init)") if model_run.exists() else "(init)"
        row = {
            "run": d.name if d.name != "eval" else d.parent.name,
            "task": f"{m['task']} v{m.get('task_version', '?')}",
            "algo": algo,
            "n": m["n_examples"],
            "segments": m["n_segments"],
        }
        for k in SCALAR_METRICS:
            v = m["metrics"].get(k)
            if v is not None:
                row[k] = round(float(v), 4)
        row["data"] = (run.get("data") or {}).get("fingerprint")
        commit = (run.get("git") or {}).get("commit")
        row["commit"] = (commit or "?")[:8] + ("+dirty" if (run.get("git") or {}).get("dirty") else "")
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:  # initial models first, then by run name
        trained = df["algo"] != "(init)"
        df = df.assign(_trained=trained).sort_values(["_trained", "run"]).drop(columns="_trained")
        df = df.reset_index(drop=True)
        for col in ("task", "data"):
            if not allow_mixed and df[col].nunique(dropna=False) > 1:
                groups = {(str(v) if pd.notna(v) else "unknown"): sorted(g["run"])
                          for v, g in df.groupby(col, dropna=False)}
                raise ValueError(
                    f"runs differ in {col}: {groups}; their numbers are not comparable. Report them "
                    "separately, or pass --allow-mixed to put them in one table"
                )
    return df


def write_report(out_dir: str | Path, *, title: str, body: list[str], table: pd.DataFrame,
                 runs: pd.DataFrame | None = None) -> dict[str, Path]:
    """The one writer of every report: ``table.md`` (``# title`` then ``body``, markdown lines),
    ``table.csv`` (``table``, its columns starting with ``_`` left out) and, when given,
    ``runs.csv`` (one row per run). Returns the paths by name (``md``, ``csv``, ``runs``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shown = table[[c for c in table.columns if not str(c).startswith("_")]] if not table.empty else table
    shown.to_csv(out / "table.csv", index=False)
    files = {"md": out / "table.md", "csv": out / "table.csv"}
    if runs is not None:
        runs.to_csv(out / "runs.csv", index=False)
        files["runs"] = out / "runs.csv"
    (out / "table.md").write_text("\n".join([f"# {title}", "", *body]).rstrip("\n") + "\n")
    return files


def write(df: pd.DataFrame, out_dir: str | Path, *, title: str, command: str,
          runs: list[str | Path] | None = None) -> dict[str, Path]:
    """Write the per-run table (:func:`write_report`: ``table.md`` with the command that made it,
    ``table.csv``) and, when the trained models of ``runs`` logged training, ``curves.png``: the
    training reward against step per algorithm (mean and 95 % CI over the runs of an algorithm,
    the SFT start dashed; :mod:`segrl.eval.curves`)."""
    body = [f"Made by: `{command}`", "", df.to_markdown(index=False), ""]
    curves = {}
    if runs:
        from segrl.eval.curves import band, plot_curves, read_curve, start_value

        by_algo: dict[str, list] = {}
        for d in find_eval_dirs(runs):
            model = Path(_read_json(d / "metrics.json")["model"])
            if (model / "train_log.jsonl").exists() and (model / "run.json").exists():
                c = read_curve(model, "reward")
                if not c.empty:
                    by_algo.setdefault(_read_json(model / "run.json").get("algo", "?"), []).append(c)
        if by_algo:
            bands = {a: band(cs, smooth=5) for a, cs in sorted(by_algo.items())}
            png = plot_curves({"all": bands}, Path(out_dir) / "curves.png", title=title,
                              starts={"all": start_value(bands)})
            curves["curves"] = png
            body += ["![training reward against step, per algorithm](curves.png)", "",
                     "Training reward per logged step (each run smoothed over 5 logged steps); the dashed line is "
                     "the SFT start (the first step's rollouts come from the SFT policy).", ""]
    return {**write_report(out_dir, title=title, body=body, table=df), **curves}


def show(df: pd.DataFrame, title: str, console: Console | None = None) -> None:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "fi" else "left")
    for _, r in df.iterrows():
        table.add_row(*["" if pd.isna(v) else str(v) for v in r.tolist()])
    (console or Console()).print(table)
