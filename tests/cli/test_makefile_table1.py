"""The Makefile's Table 1 cells (v3): K = 1 sd_grpo is run at TABLE1_IDENTITY_SEEDS only (bit-equal to grpo there),
every other (K, algo, seed) is run; the identity check compares the seeds run. `make reproduce-table1` is run for
real against a stand-in `segrl` that only records its arguments."""

import subprocess
from pathlib import Path


def _reproduce(tmp_path: Path, run_make, *overrides: str, ok: bool = True
               ) -> tuple[list[str], subprocess.CompletedProcess]:
    proc = run_make(tmp_path, "reproduce-table1", "PY=echo", "JOBS=2", *overrides)
    assert (proc.returncode == 0) == ok, proc.stderr
    return (tmp_path / "calls.txt").read_text().splitlines(), proc


def _cells(calls: list[str]) -> list[str]:
    return sorted(c.split("--output-dir ")[1].split()[0] for c in calls if c.startswith("run-status"))


def test_k1_sd_grpo_runs_only_its_identity_seed(tmp_path, run_make):
    calls, proc = _reproduce(tmp_path, run_make)
    want = sorted(f"runs/table1/k{K}/{algo}/seed{s}" for K in (1, 2, 4) for algo in ("grpo", "sd_grpo")
                  for s in range(5) if (K, algo) != (1, "sd_grpo") or s == 0)
    assert _cells(calls) == want and len(want) == 26
    assert "report table1" in calls
    assert (tmp_path / "results/table1/identity_k1.txt").read_text() == (
        "scripts/identity_check.py runs/table1/k1/grpo runs/table1/k1/sd_grpo\n")


def test_identity_seeds_and_an_empty_not_run_list(tmp_path, run_make):
    a = tmp_path / "a"
    a.mkdir()
    calls, _ = _reproduce(a, run_make, "TABLE1_IDENTITY_SEEDS=0 3")
    assert [c for c in _cells(calls) if "k1/sd_grpo" in c] == ["runs/table1/k1/sd_grpo/seed0",
                                                                "runs/table1/k1/sd_grpo/seed3"]
    b = tmp_path / "b"
    b.mkdir()
    calls, _ = _reproduce(b, run_make, "TABLE1_NOT_RUN=")
    assert len(_cells(calls)) == 30


def test_a_failed_identity_check_fails_the_target(tmp_path, run_make):
    """identity_check.py exits 1 when the runs differ: make must stop with it (a pipe into tee once hid it)."""
    _, proc = _reproduce(tmp_path, run_make, "PY=false", ok=False)
    assert "reproduce-table1" in proc.stderr and "Error 1" in proc.stderr
