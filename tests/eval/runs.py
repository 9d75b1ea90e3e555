"""Synthetic run directories for the report tests: trained models (run.json, train_log.jsonl) with
their evals (metrics.json, run.json) and SFT-start evals, laid out as the Makefile lays them out."""

from __future__ import annotations

import json
from pathlib import Path


def with_sampled(metrics: dict) -> dict:
    """``metrics`` with a ``sampled`` block (the sampled evaluation, read as ``sampled_<name>``) repeating
    the greedy numbers, unless it has its own."""
    return {**metrics, "sampled": metrics.get("sampled", {"temperature": 0.7, **metrics})}


def table3_metrics(cider: float) -> dict:
    """Table 3's eval metrics (configs/reports/table3.yaml) derived from one CIDEr-D value."""
    return {"cider_d": cider, "bleu4": cider / 10, "meteor": cider / 5, "bertscore": 0.5 + cider / 10,
            "cider_d_holistic": 2 * cider}


def eval_dir(d: Path, model: Path, task: str, K: int, metrics: dict, n: int = 10) -> Path:
    """An eval at ``d``; unless ``metrics`` has its own ``sampled`` block, the sampled evaluation (the
    Tables' primary metrics, ``sampled_<name>``) repeats the greedy numbers."""
    d.mkdir(parents=True, exist_ok=True)
    metrics = with_sampled(metrics)
    (d / "metrics.json").write_text(json.dumps({
        "task": task, "task_version": 1, "model": str(model), "n_examples": n, "n_segments": n * K,
        "metrics": metrics}))
    (d / "run.json").write_text(json.dumps({"data": {"fingerprint": f"{task}{K}"}, "git": {"commit": "c0ffee0000"}}))
    return d


def trained(model: Path, algo: str, seed: int, K: int, metrics: dict, *, task: str = "docci",
            curve: list[float] | None = None, alpha: float | None = None, eval_name: str = "eval",
            log: list[dict] | None = None) -> Path:
    """A trained run at ``model`` with ``eval_name/metrics.json``; ``curve``: the logged reward per step
    (steps 1, 2, ...); ``log``: extra keys per logged step, merged in."""
    eval_dir(model / eval_name, model, task, K, metrics)
    args = {"seed": seed, "algo": algo, **({"alpha": alpha} if alpha is not None else {})}
    (model / "run.json").write_text(json.dumps({"algo": algo, "seed": seed, "config": {"train": {"algo": algo}},
                                                "trainer_args": args}))
    curve = curve if curve is not None else [0.1, 0.2]
    rows = [{"step": i, "reward": r, "loss": 0.0} for i, r in enumerate(curve, 1)]
    for row, extra in zip(rows, log or []):
        row.update(extra)
    (model / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model


def sft_eval(d: Path, K: int, metrics: dict, task: str = "docci") -> Path:
    """The SFT start's eval at ``d`` (its model has no ``run.json``, so its algo is ``(init)``)."""
    model = d.parent / "model"
    model.mkdir(parents=True, exist_ok=True)
    return eval_dir(d, model, task, K, metrics)
