"""The Makefile's Dr. Seg comparison: every (arm, seed) cell is trained from the one SFT start, and DRSEG_SET's
overrides reach every arm's training arguments (scripts/run_one.sh passes them to `segrl run-status`, then to
`segrl train`) (a pilot's setting is the same for all arms). `make reproduce-drseg` is
run for real against a stand-in `segrl` that only records its arguments."""

from pathlib import Path


def _all_calls(tmp_path: Path, run_make, *overrides: str) -> list[str]:
    proc = run_make(tmp_path, "reproduce-drseg", "PY=echo", "JOBS=1", *overrides)
    assert proc.returncode == 0, proc.stderr
    return (tmp_path / "calls.txt").read_text().splitlines()


def _train_calls(tmp_path: Path, run_make, *overrides: str) -> list[str]:
    return [c for c in _all_calls(tmp_path, run_make, *overrides) if c.startswith("run-status ")]


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


def test_grid_and_image_size_reach_the_data_and_the_tiny_model(tmp_path, run_make):
    """DRSEG_GRID / DRSEG_IMAGE_SIZE (the v6-v8 testbed: grid 3 at 84 px) reach build-data and make-tiny-model;
    unset, they give v1's 2 x 2 grid at 56 px."""
    calls = _all_calls(tmp_path, run_make, "DRSEG_SEEDS=0", "DRSEG_GRID=3", "DRSEG_IMAGE_SIZE=84", "DRSEG_NAME=g3")
    build = [c for c in calls if c.startswith("build-data grounding ")]
    tiny = [c for c in calls if c.startswith("make-tiny-model ")]
    assert len(build) == 1 and "--grid 3 " in build[0] and "--out data/g3-testbed" in build[0]
    assert len(tiny) == 1 and "--image-size 84 " in tiny[0] and "--out models/tiny-g3" in tiny[0]
    (tmp_path / "v1").mkdir()
    default = _all_calls(tmp_path / "v1", run_make, "DRSEG_SEEDS=0")
    assert any(c.startswith("build-data grounding --grid 2 ") for c in default)
    assert any(c.startswith("make-tiny-model ") and "--image-size 56 " in c for c in default)
