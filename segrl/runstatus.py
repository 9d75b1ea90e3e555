"""Sweeps never reuse a stale run: is a finished run the one a sweep asks for?

A sweep (the Makefile's ``reproduce-*`` loops) asks for a run with the same arguments it would give
``segrl train`` (``--config``, ``--set``, ``--algo``, ``--seed``, ``--model``, ``--output-dir``).
:func:`run_status` compares that request with the run's ``run.json`` (written when training
finished, :mod:`segrl.provenance`):

* the resolved experiment config (every key but ``output_dir``, the run's own location),
* the starting model (``--model`` or ``model.name_or_path``),
* the task name and version (:data:`segrl.tasks.TASKS`),
* the data fingerprint (:func:`segrl.provenance.dataset_fingerprint` of ``data.path`` now).

The git commit is reported but not compared (a commit that changes no number must not void every
finished run; a commit that does is what ``--rerun-stale`` or a new output directory is for).

``segrl run-status`` exits 0 (finished and matching: skip it), 1 (nothing finished there: train it;
also after ``--rerun-stale`` moved a stale run aside to ``stale-runs/RUN-<time>``, outside the sweep's run
tree) or 3 (finished but
stale: the sweep stops, the message names each mismatch); 2 is a user error (bad config).
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_MATCH, EXIT_TRAIN, EXIT_STALE = 0, 1, 3
IGNORED_CONFIG_KEYS = ("output_dir",)


@dataclass
class RunStatus:
    """``state``: ``"absent"`` (no finished run), ``"match"`` or ``"stale"``; ``mismatches``: one
    ``"key: run has X, requested Y"`` per difference; ``record``: the run's ``run.json`` (or None)."""

    state: str
    mismatches: list[str] = field(default_factory=list)
    record: dict | None = None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def diff_configs(run: dict | None, requested: dict) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (``output_dir`` aside).

    Returns:
        ``["train.learning_rate: run has 0.001, requested 0.0005", "train.alpha: missing in the run", ...]``.
    """
    a = {k: v for k, v in _flatten(run or {}).items() if k.split(".")[0] not in IGNORED_CONFIG_KEYS}
    b = {k: v for k, v in _flatten(requested).items() if k.split(".")[0] not in IGNORED_CONFIG_KEYS}
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            out.append(f"config {key}: missing in the run, requested {_short(b[key])}")
        elif key not in b:
            out.append(f"config {key}: run has {_short(a[key])}, not in the request")
        elif a[key] != b[key]:
            out.append(f"config {key}: run has {_short(a[key])}, requested {_short(b[key])}")
    return out


def request(config: str | Path, overrides: list[str], model: str | None = None) -> dict:
    """What ``segrl train --config config --set ... [--model model]`` would record, before training.

    Returns:
        ``{"config": dict, "model": str, "task": {"name", "version"}, "data": {"path", "fingerprint"}}``.

    Raises:
        ConfigError / FileNotFoundError: as :func:`segrl.config.load_config`.
        UnknownNameError: ``task`` is not registered.
    """
    from segrl.config import config_to_dict, load_config
    from segrl.provenance import dataset_fingerprint
    from segrl.tasks import TASKS

    cfg = load_config(config, overrides)
    task = TASKS.get(cfg.task)
    return {
        "config": config_to_dict(cfg),
        "model": model or cfg.model.name_or_path,
        "task": {"name": task.name, "version": task.version},
        "data": {"path": cfg.data.path, "fingerprint": dataset_fingerprint(cfg.data.path)},
    }


def run_status(run_dir: str | Path, requested: dict) -> RunStatus:
    """Compare the finished run in ``run_dir`` (its ``run.json``) with ``requested`` (:func:`request`).

    A ``run.json`` that is unreadable, fails :func:`segrl.provenance.validate_run_json` or is not a
    training record is stale, with the problems as its mismatches.
    """
    from segrl.provenance import validate_run_json

    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return RunStatus("absent")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return RunStatus("stale", [f"{path}: unreadable ({e})"])
    problems = validate_run_json(record)
    if problems:
        return RunStatus("stale", [f"{path}: {p}" for p in problems], record)
    if record.get("kind") != "train":
        return RunStatus("stale", [f"{path}: kind is {record.get('kind')!r}, not a training run"], record)
    mismatches = diff_configs(record.get("config"), requested["config"])
    if record.get("model") != requested["model"]:
        mismatches.append(f"model: run has {_short(record.get('model'))}, requested {_short(requested['model'])}")
    for key in ("name", "version"):
        if record["task"][key] != requested["task"][key]:
            mismatches.append(f"task {key}: run has {_short(record['task'][key])}, "
                              f"requested {_short(requested['task'][key])}")
    if record["data"]["fingerprint"] != requested["data"]["fingerprint"]:
        mismatches.append(f"data fingerprint of {requested['data']['path']}: run has "
                          f"{record['data']['fingerprint']}, the data now {requested['data']['fingerprint']}")
    return RunStatus("stale" if mismatches else "match", mismatches, record)


STALE_ROOT = "stale-runs"
"""Where ``--rerun-stale`` moves stale runs, relative to the working directory: outside the sweep's own
run tree, so ``segrl report`` (which collects every ``metrics.json`` below its run directories) never
puts a stale run back into a table."""


def move_aside(run_dir: str | Path, root: str | Path = STALE_ROOT) -> Path:
    """Move a stale run to ``root/<run path>-<UTC time>`` (nothing is deleted); returns the new path.

    The run's path is kept below ``root`` (relative to the working directory when it lies below it,
    else its absolute path without the leading ``/``), so ``runs/table1/k1/grpo/seed0`` goes to
    ``stale-runs/runs/table1/k1/grpo/seed0-20261201T112233``.
    """
    run_dir = Path(run_dir)
    absolute = run_dir.resolve()
    try:
        rel = absolute.relative_to(Path.cwd().resolve())
    except ValueError:
        rel = absolute.relative_to(absolute.anchor)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    target = Path(root) / rel.parent / f"{rel.name}-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = Path(root) / rel.parent / f"{rel.name}-{stamp}-{n}"
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.move(str(run_dir), str(target)))
