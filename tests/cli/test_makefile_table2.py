"""The Makefile's Table 2 inputs: each K's warm start gets its own SFT length (TABLE2_SFT_STEPS, Table 2 v5).

`make table2-inputs` is run for real against a stand-in `segrl` that only records its arguments, so what is
checked is the command line each K's warm start would get, and the error for a K without an entry."""

import subprocess
from pathlib import Path


def _run_inputs(tmp_path: Path, run_make, *overrides: str) -> subprocess.CompletedProcess:
    return run_make(tmp_path, "table2-inputs", *overrides, timeout=60)


def _warm_starts(tmp_path: Path) -> dict[str, list[str]]:
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    out = {}
    for line in calls:
        args = line.split()
        if args[0] == "warm-start":
            out[args[args.index("--out") + 1]] = args
    return out


def test_each_k_warm_start_gets_its_sft_steps(tmp_path, run_make):
    proc = _run_inputs(tmp_path, run_make)
    assert proc.returncode == 0, proc.stderr
    starts = _warm_starts(tmp_path)
    got = {}
    for out, args in starts.items():
        sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        got[out] = [s for s in sets if s.startswith("sft.max_steps=")]
    assert got == {
        "models/tiny-table2-v5-k1-sft": ["sft.max_steps=120"],
        "models/tiny-table2-v5-k2-sft": ["sft.max_steps=120"],
        "models/tiny-table2-v5-k4-sft": ["sft.max_steps=200"],
    }


def test_a_k_without_sft_steps_is_an_error_that_names_it(tmp_path, run_make):
    proc = _run_inputs(tmp_path, run_make, "TABLE2_SFT_STEPS=1=120 4=200")
    assert proc.returncode != 0
    assert "TABLE2_SFT_STEPS has no K=2 entry" in proc.stderr
    # the error comes before K = 2's warm start: K = 1's ran, K = 2's and K = 4's did not
    assert list(_warm_starts(tmp_path)) == ["models/tiny-table2-v5-k1-sft"]


def _reproduce(tmp_path: Path, run_make, *overrides: str) -> list[str]:
    proc = run_make(tmp_path, "reproduce-table2", "JOBS=2", *overrides)
    assert proc.returncode == 0, proc.stderr
    return (tmp_path / "calls.txt").read_text().splitlines()


def _cells(calls: list[str], prefix: str, flag: str) -> list[str]:
    return sorted(c.split(flag)[1].split()[0] for c in calls if c.startswith(prefix))


def test_runs_and_real_sample_evals_skip_k1_sd_grpo_and_finished_evals(tmp_path, run_make):
    """v6: reproduce-table2 runs and evaluates on the real sample every (K, algo, seed) but K = 1 sd_grpo
    (TABLE2_NOT_RUN, bit-equal to grpo there); a run whose eval-real/metrics.json exists is not re-evaluated."""
    done = tmp_path / "runs/table2/k2/grpo/seed3/eval-real"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    calls = _reproduce(tmp_path, run_make)
    want = sorted(f"runs/table2/k{K}/{algo}/seed{s}" for K in (1, 2, 4) for algo in ("grpo", "sd_grpo")
                  for s in range(5) if (K, algo) != (1, "sd_grpo"))
    assert _cells(calls, "run-status", "--output-dir ") == want
    want.remove("runs/table2/k2/grpo/seed3")
    assert _cells(calls, "eval multichart", "--model ") == want
    assert calls[-1] == "report table2"


def test_an_empty_not_run_list_runs_every_cell(tmp_path, run_make):
    calls = _reproduce(tmp_path, run_make, "TABLE2_NOT_RUN=")
    assert len(_cells(calls, "run-status", "--output-dir ")) == 30
    assert len(_cells(calls, "eval multichart", "--model ")) == 30
