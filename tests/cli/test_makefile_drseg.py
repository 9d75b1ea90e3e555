"""The Makefile's Dr. Seg comparison: every (arm, seed) cell is trained from the one SFT start, and DRSEG_SET's
overrides reach every arm's training arguments (scripts/run_one.sh passes them to `segrl run-status`, then to
`segrl train`) (a pilot's setting is the same for all arms). `make reproduce-drseg` is
run for real against a stand-in `segrl` that only records its arguments."""

from pathlib import Path


def _train_calls(tmp_path: Path, run_make, *overrides: str) -> list[str]:
    proc = run_make(tmp_path, "reproduce-drseg", "PY=echo", "JOBS=1", *overrides)
    assert proc.returncode == 0, proc.stderr
    return [c for c in (tmp_path / "calls.txt").read_text().splitlines() if c.startswith("run-status ")]


def test_every_arm_and_seed_trains_from_the_sft_start(tmp_path, run_make):
    calls = _train_calls(tmp_path, run_make)
    cells = sorted((c.split("--algo ")[1].split()[0], c.split("--seed ")[1].split()[0]) for c in calls)
    assert cells == sorted((a, str(s)) for a in ("vision_reasoner", "drseg", "sd_grpo") for s in range(5))
    assert all("--model models/tiny-grounding-sft" in c and "--set" in c and "freeze_vision" not in c
               for c in calls)


def test_drseg_set_reaches_every_arm(tmp_path, run_make):
    calls = _train_calls(tmp_path, run_make, "DRSEG_SEEDS=0 1", "DRSEG_RUNS=runs/drseg-pilot",
                         "DRSEG_SET=--set model.freeze_vision=true --set train.learning_rate=2e-4")
    assert len(calls) == 6
    assert all("--set model.freeze_vision=true --set train.learning_rate=2e-4 --output-dir runs/drseg-pilot/" in c
               for c in calls)


def test_every_command_runs_this_checkouts_code(tmp_path, run_make):
    """make exports PYTHONPATH=<checkout>: a clone that links another checkout's venv (whose editable install points
    there) still runs, and records in run.json, its own code."""
    _train_calls(tmp_path, run_make, "DRSEG_SEEDS=0")
    paths = (tmp_path / "pythonpath.txt").read_text().splitlines()
    assert len(paths) >= 5 and all(p.split(":")[0] == str(tmp_path) for p in paths)
