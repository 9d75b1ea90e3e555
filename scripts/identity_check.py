#!/usr/bin/env python3
"""Are two runs the same run? Compares their logged training values and their eval metrics exactly.

    python scripts/identity_check.py runs/table1/k1/grpo runs/table1/k1/sd_grpo

Each argument is an arm directory holding seed*/ runs (or one run). For every seed present in both, prints the
number of logged steps, how many logged values differ (reward, loss, grad_norm, segment rewards, completion
length: bitwise), and whether eval/metrics.json's metrics are identical. Exit 1 when anything differs: the K = 1
identity check of Table 1 (sd_grpo = grpo, sd_dr_grpo = dr_grpo when every answer has one segment).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEYS = ("reward", "loss", "grad_norm", "rewards/segments/mean", "completions/mean_length")


def runs(arm: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(arm.glob("seed*")) if p.is_dir()} or {arm.name: arm}


def compare(a: Path, b: Path) -> tuple[int, int, bool]:
    """(logged steps, differing logged values, eval metrics identical) of runs ``a`` and ``b``."""
    la = [json.loads(x) for x in (a / "train_log.jsonl").read_text().splitlines() if x.strip()]
    lb = [json.loads(x) for x in (b / "train_log.jsonl").read_text().splitlines() if x.strip()]
    diff = abs(len(la) - len(lb)) + sum(x.get(k) != y.get(k) for x, y in zip(la, lb) for k in KEYS)
    ma = json.loads((a / "eval" / "metrics.json").read_text())["metrics"]
    mb = json.loads((b / "eval" / "metrics.json").read_text())["metrics"]
    return len(la), diff, ma == mb


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    ra, rb = runs(Path(argv[0])), runs(Path(argv[1]))
    bad = 0
    for seed in sorted(set(ra) & set(rb)):
        steps, diff, same = compare(ra[seed], rb[seed])
        bad += diff > 0 or not same
        print(f"{seed}: {steps} logged steps, {diff} differing logged values, eval metrics identical: {same}")
    if not set(ra) & set(rb):
        print("no seed in common", file=sys.stderr)
        return 2
    print("IDENTICAL" if not bad else f"DIFFERENT in {bad} seed(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
