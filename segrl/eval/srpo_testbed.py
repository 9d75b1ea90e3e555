"""SRPO's CPU testbed (issue 16): how often the structure is written, and does the structured policy see.

SRPO's token weights act only on rollouts that write the whole ``<perception>`` / ``<reasoning>``
structure (:attr:`segrl.rewards.srpo_format.Structure.complete`); any other rollout trains as
plain GRPO. A comparison is only informative when most rollouts carry it, so
``make reproduce-srpo`` reports the rate two ways:

* **training**: ``1 - srpo/structure_missing_frac`` of each step (the SRPO trainer's log,
  ``<run>/train_log.jsonl``; one value per generation batch of 32 rollouts), averaged over the
  first and the last :data:`WINDOW` steps and over all steps;
* **evaluation**: the fraction of complete structures in the held-out completions
  (``<run>/eval/predictions.jsonl``, greedy, and ``predictions_sampled.jsonl``, the policy's own
  sampling), for every arm (GRPO does not log it) and for the warm start itself.

The sight gate (:func:`segrl.sight.check_sight`) teacher-forces the task's plain answers; a
policy warm-started on structured answers expects its perception block first, so on plain
candidates it is off its own distribution. :func:`structured_check_sight` runs the same gate on
candidates written in the warm start's layout (:func:`segrl.trainers.srpo.structured_reference`
of each candidate's segment values, so a distractor's perception evidence changes with its
answer line, and the true answer's evidence cannot be copied into its answer).

Command line (the Makefile's ``reproduce-srpo`` calls both)::

    python -m segrl.eval.srpo_testbed sight MODEL DATA --evidence-words 4 --out check-sight.json
    python -m segrl.eval.srpo_testbed structure RUNS_ROOT --start START_EVAL --out results/srpo/structure
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

from segrl.rewards.srpo_format import complete_fraction

WINDOW = 10
"""Steps averaged at each end of a training log (first / last)."""


def train_structure_rates(log_path: str | Path, window: int = WINDOW) -> dict | None:
    """Structure rate of an SRPO run's rollouts, from its training log.

    Args:
        log_path: ``train_log.jsonl`` (one JSON object per logged step).
        window: steps averaged at each end.

    Returns:
        ``{"steps": n, "first": r, "last": r, "mean": r}`` with ``r = mean(1 - srpo/structure_missing_frac)``
        over the first / last ``window`` logged steps and over all; None when no row has the key
        (a GRPO run) or the log does not exist.

    Raises:
        ValueError: ``window < 1``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    path = Path(log_path)
    if not path.exists():
        return None
    rates = []
    for line in path.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if "srpo/structure_missing_frac" in row:
            rates.append(1.0 - float(row["srpo/structure_missing_frac"]))
    if not rates:
        return None
    return {"steps": len(rates), "first": _mean(rates[:window]), "last": _mean(rates[-window:]),
            "mean": _mean(rates)}


def eval_structure_rates(eval_dir: str | Path) -> dict:
    """Structure rate of held-out completions: ``{"greedy": r, "n_greedy": n, "sampled": r, "n_sampled": n}``.

    Reads ``predictions.jsonl`` and, when present, ``predictions_sampled.jsonl`` (``segrl eval``); a
    missing file gives ``None`` rates and ``n = 0``.
    """
    out: dict = {}
    for name, file in (("greedy", "predictions.jsonl"), ("sampled", "predictions_sampled.jsonl")):
        path = Path(eval_dir) / file
        texts = ([json.loads(line)["completion"] for line in path.read_text().splitlines() if line.strip()]
                 if path.exists() else [])
        out[name] = complete_fraction(texts) if texts else None
        out[f"n_{name}"] = len(texts)
    return out


def structure_summary(root: str | Path, start_eval: str | Path | None = None) -> dict:
    """Structure rates of every run ``root/ARM/seedN`` (training log and eval) and of the warm start.

    Returns:
        ``{"start": eval rates of start_eval or None, "runs": [{"arm", "seed", "train", "eval"}, ...],
        "arms": {arm: {"n": seeds, "train_first" / "train_last" / "eval_greedy" / "eval_sampled":
        [mean, min, max] over seeds or None}}}``.
    """
    runs = []
    for arm_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for run in sorted((p for p in arm_dir.glob("seed*") if p.is_dir() and _is_seed(p.name)),
                          key=lambda p: int(p.name[4:])):
            runs.append({"arm": arm_dir.name, "seed": int(run.name[4:]),
                         "train": train_structure_rates(run / "train_log.jsonl"),
                         "eval": eval_structure_rates(run / "eval")})
    arms: dict = {}
    for arm in sorted({r["arm"] for r in runs}):
        rows = [r for r in runs if r["arm"] == arm]
        arms[arm] = {"n": len(rows),
                     "train_first": _spread([r["train"]["first"] for r in rows if r["train"]]),
                     "train_last": _spread([r["train"]["last"] for r in rows if r["train"]]),
                     "eval_greedy": _spread([r["eval"]["greedy"] for r in rows]),
                     "eval_sampled": _spread([r["eval"]["sampled"] for r in rows])}
    start = eval_structure_rates(start_eval) if start_eval is not None and Path(start_eval).exists() else None
    return {"window": WINDOW, "start": start, "runs": runs, "arms": arms}


def summary_markdown(summary: dict) -> str:
    """The summary of :func:`structure_summary` as a Markdown table (rates as mean [min, max] over seeds)."""

    def cell(v):
        return "–" if v is None else f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"

    lines = ["# How often the rollouts write SRPO's structure (complete <perception> and <reasoning> blocks)", "",
             f"Training: mean of 1 − `srpo/structure_missing_frac` over the first / last {summary['window']} steps "
             "(SRPO runs only, GRPO does not log it). Eval: fraction of complete structures "
             "in the held-out completions (greedy; sampled = T 0.7, 2 per prompt). mean [min, max] over seeds.", "",
             "| arm | seeds | train, first steps | train, last steps | eval greedy | eval sampled |",
             "|---|---|---|---|---|---|"]
    start = summary.get("start")
    if start:
        lines.append(f"| (warm start) | – | – | – | {_fmt(start['greedy'])} (n={start['n_greedy']}) | "
                     f"{_fmt(start['sampled'])} (n={start['n_sampled']}) |")
    for arm, a in summary["arms"].items():
        lines.append(f"| {arm} | {a['n']} | {cell(a['train_first'])} | {cell(a['train_last'])} | "
                     f"{cell(a['eval_greedy'])} | {cell(a['eval_sampled'])} |")
    return "\n".join(lines) + "\n"


def structured_check_sight(model, processor, dataset, *, evidence_words: int, reasoning: str | None = None, **kw):
    """The sight gate (:func:`segrl.sight.check_sight`) on candidates in SRPO's structured layout.

    Every candidate (the reference and each distractor) is
    :func:`segrl.trainers.srpo.structured_reference` of its own segment values, with the warm
    start's ``evidence_words`` and ``reasoning``, so the answer a policy trained on that layout
    would write is what gets ranked.

    Args:
        model, processor: the policy.
        dataset: held-out rows (row schema).
        evidence_words, reasoning: as in the structured warm start (default reasoning: the module's).
        **kw: :func:`segrl.sight.check_sight`'s options (``n_rows``, ``distractors``, ``seed``, ...).

    Returns:
        A :class:`segrl.sight.SightReport`.
    """
    from segrl.segments import format_answer
    from segrl.sight import check_sight
    from segrl.trainers.srpo import DEFAULT_REASONING, structured_reference

    sentence = DEFAULT_REASONING if reasoning is None else reasoning

    def render(labels: Sequence[str], values: Sequence[str]) -> str:
        return structured_reference(format_answer(labels, values), [[v] for v in values],
                                    evidence_words=evidence_words, reasoning=sentence)

    return check_sight(model, processor, dataset, render=render, **kw)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segrl.eval.srpo_testbed sight|structure ...`` (module docstring). Exit 1: sight gate FAIL."""
    parser = argparse.ArgumentParser(prog="python -m segrl.eval.srpo_testbed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sight", help="the sight gate on structured candidates")
    s.add_argument("model")
    s.add_argument("data")
    s.add_argument("--evidence-words", type=int, required=True)
    s.add_argument("--reasoning", default=None, help="the warm start's reasoning sentence (default: the module's)")
    s.add_argument("--split", default="test")
    s.add_argument("--rows", type=int, default=32)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path)
    t = sub.add_parser("structure", help="structure rates of RUNS_ROOT/ARM/seedN and of the warm start")
    t.add_argument("root", type=Path)
    t.add_argument("--start", type=Path, help="the warm start's eval directory")
    t.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if args.command == "structure":
        summary = structure_summary(args.root, args.start)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
        md = summary_markdown(summary)
        args.out.with_suffix(".md").write_text(md)
        print(md, end="")
        return 0
    import torch
    from datasets import load_from_disk

    from segrl.models.loading import load_policy

    torch.manual_seed(args.seed)
    model, processor = load_policy(args.model)
    report = structured_check_sight(model, processor, load_from_disk(args.data)[args.split],
                                    evidence_words=args.evidence_words, reasoning=args.reasoning,
                                    n_rows=args.rows, seed=args.seed)
    print(f"sight gate (structured candidates): {args.model} on {args.data} [{args.split}]")
    for line in report.lines():
        print(line)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0 if report.passed else 1


def _is_seed(name: str) -> bool:
    """``seedN`` with N a non-negative integer."""
    return name.startswith("seed") and name[4:].isdigit()


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _fmt(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _spread(xs: Sequence[float | None]) -> list[float] | None:
    vals = [x for x in xs if x is not None]
    return [_mean(vals), min(vals), max(vals)] if vals else None


if __name__ == "__main__":
    raise SystemExit(main())
