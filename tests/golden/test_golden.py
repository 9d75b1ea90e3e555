"""Per-step loss, reward and grad-norm of a fixed-seed 20-step run match the committed reference."""

import json

import numpy as np
from golden import KEYS, MULTICHART, STEPS, reference_path, run_golden

from tests.conftest import require

PER_STEP_ATOL = {"loss": 1e-3, "reward": 1e-3, "grad_norm": 1e-2}
MEAN_RESIDUAL_ATOL = 1e-4


def test_golden_trajectory(tmp_path):
    require(MULTICHART.is_dir(), f"the real MultiChartQA sample at {MULTICHART}")
    reference = json.loads(reference_path().read_text())["steps"]
    steps = run_golden(tmp_path)
    assert len(steps) == len(reference) == STEPS
    for key in KEYS:
        got = np.array([s[key] for s in steps], dtype=float)
        want = np.array([s[key] for s in reference], dtype=float)
        assert np.all(np.abs(got - want) <= PER_STEP_ATOL[key]), f"{key} vs {reference_path().name}: got {got.tolist()}, want {want.tolist()}"
        assert abs(float(np.mean(got - want))) <= MEAN_RESIDUAL_ATOL * max(1.0, float(np.abs(want).mean())), key
