"""scripts/identity_check.py: two runs are the same run only when every logged value and eval metric match."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "identity_check.py"


def run(root: Path, arm: str, seed: int, rewards: list[float], cider: float) -> None:
    d = root / arm / f"seed{seed}"
    (d / "eval").mkdir(parents=True)
    (d / "train_log.jsonl").write_text("".join(json.dumps({"step": i, "reward": r, "loss": 0.0}) + "\n"
                                               for i, r in enumerate(rewards, 1)))
    (d / "eval" / "metrics.json").write_text(json.dumps({"metrics": {"cider_d": cider}}))


def check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(root / "grpo"), str(root / "sd_grpo")],
                          capture_output=True, text=True)


def test_identical_runs_pass_and_one_differing_value_fails(tmp_path):
    for arm in ("grpo", "sd_grpo"):
        run(tmp_path, arm, 0, [0.1, 0.2], 2.0)
    r = check(tmp_path)
    assert r.returncode == 0 and "seed0: 2 logged steps, 0 differing logged values" in r.stdout
    run(tmp_path, "grpo", 1, [0.1, 0.2], 2.0)
    run(tmp_path, "sd_grpo", 1, [0.1, 0.2 + 1e-12], 2.0)  # one logged reward differs in its last bits
    r = check(tmp_path)
    assert r.returncode == 1 and "seed1: 2 logged steps, 1 differing logged values" in r.stdout
    assert "DIFFERENT in 1 seed(s)" in r.stdout
