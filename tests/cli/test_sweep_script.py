"""scripts/sweep.sh + scripts/run_one.sh (the Makefile's reproduce-* cells) against a stand-in `segrl` that
logs its calls: each cell trains unless run-status says done, evaluates unless metrics.json exists, a
second pass does nothing, and one failing cell fails the sweep without stopping the others."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
cmd=$1; shift
out=; prev=
for a in "$@"; do case $prev in --output-dir|--out) out=$a;; esac; prev=$a; done
case $cmd in
  run-status) test -f "$out/run.json" && exit 0 || exit 1 ;;
  train) case "$*" in *--seed\\ 9*) echo boom >&2; exit 1;; esac; mkdir -p "$out"; echo '{}' > "$out/run.json" ;;
  eval) mkdir -p "$out"; echo '{}' > "$out/metrics.json" ;;
esac
"""


def sweep(tmp_path, lines, jobs="2"):
    fake = tmp_path / "segrl"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    env = {**os.environ, "SEGRL": str(fake), "JOBS": jobs, "CALLS": str(tmp_path / "calls.log")}
    return subprocess.run(["bash", str(ROOT / "scripts/sweep.sh")], input="\n".join(lines) + "\n", text=True,
                          capture_output=True, cwd=tmp_path, env=env)


def calls(tmp_path):
    return (tmp_path / "calls.log").read_text().splitlines()


def test_cells_train_then_evaluate_and_resume_as_a_no_op(tmp_path):
    cells = [f"runs/k1/{algo}/seed0|docci|--data d --config c.yaml|--config c.yaml --algo {algo} --seed 0"
             for algo in ("grpo", "sd_grpo")]
    r = sweep(tmp_path, cells)
    assert r.returncode == 0, r.stderr
    log = calls(tmp_path)
    for algo in ("grpo", "sd_grpo"):
        assert f"train --config c.yaml --algo {algo} --seed 0 --output-dir runs/k1/{algo}/seed0 --resume off" in log
        assert f"eval docci --model runs/k1/{algo}/seed0 --data d --config c.yaml --out runs/k1/{algo}/seed0/eval" in log
        assert (tmp_path / f"runs/k1/{algo}/seed0/eval/metrics.json").exists()
    (tmp_path / "calls.log").unlink()
    assert sweep(tmp_path, cells).returncode == 0
    assert [c.split()[0] for c in calls(tmp_path)] == ["run-status", "run-status"]  # nothing re-run


def test_a_failing_cell_fails_the_sweep_but_the_others_finish(tmp_path):
    cells = ["runs/a|docci|--data d|--seed 9", "runs/b|docci|--data d|--seed 1"]
    r = sweep(tmp_path, cells, jobs="1")
    assert r.returncode != 0 and "FAILED: segrl train ... --output-dir runs/a" in r.stderr
    assert (tmp_path / "runs/b/eval/metrics.json").exists() and not (tmp_path / "runs/a/eval").exists()


def parallel(tmp_path, lines, jobs="2"):
    env = {**os.environ, "JOBS": jobs}
    env.pop("OMP_NUM_THREADS", None)
    return subprocess.run(["bash", str(ROOT / "scripts/parallel.sh")], input="\n".join(lines) + "\n", text=True,
                          capture_output=True, cwd=tmp_path, env=env)


def test_parallel_runs_every_line_with_its_thread_share_and_reports_the_failed_one(tmp_path):
    lines = [f'echo "$OMP_NUM_THREADS" > out{i}.txt' for i in range(4)] + ["echo x > bad.txt; exit 3", ""]
    r = parallel(tmp_path, lines, jobs="2")
    assert r.returncode != 0
    assert "parallel.sh: failed (exit 3): echo x > bad.txt; exit 3" in r.stderr
    threads = str(max(os.cpu_count() // 2, 1))
    assert [(tmp_path / f"out{i}.txt").read_text().strip() for i in range(4)] == [threads] * 4
    assert (tmp_path / "bad.txt").exists()  # the failing line ran; the others were not stopped by it
    assert parallel(tmp_path, lines[:4], jobs="1").returncode == 0
