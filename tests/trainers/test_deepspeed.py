"""Two CPU processes through accelerate + DeepSpeed ZeRO-2 (gloo): SD-GRPO trains and the ranks agree.

A group's G rollouts can sit on different ranks, so segment rewards are gathered before the
group statistics; every rank must then hold the same (B, K) advantages for the same rollouts.
"""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from datasets import DatasetDict

from segrl.tasks.base import save_dataset_atomic
from segrl.trainers.checkpoint import ResumeError, resolve_resume

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE_CONFIG = ROOT / "configs" / "accelerate" / "zero2_cpu_2proc.yaml"
import deepspeed  # noqa: E402,F401  (a pinned dependency: missing is an error, not a skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_zero2_sd_grpo(tmp_path, colour_warm_model, colour_data):
    sft, _ = colour_warm_model
    data = save_dataset_atomic(DatasetDict({"train": colour_data, "test": colour_data}), tmp_path / "data")
    out = tmp_path / "run"
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({
        "task": "multichart", "output_dir": str(out), "data": {"path": str(data)},
        "train": {"algo": "sd_grpo", "num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 2,
                  "max_completion_length": 12, "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "steps",
                  "save_steps": 1,
                  "beta": 0.0, "temperature": 1.0, "dump_advantages": True, "seed": 0},
    }))
    accelerate = Path(sys.executable).parent / "accelerate"
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    def launch(*extra):
        cmd = [str(accelerate), "launch", "--config_file", str(ACCELERATE_CONFIG), "--main_process_port",
               str(free_port()), "-m", "segrl.cli", "train", "--config", str(config), "--model", str(sft), *extra]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "DeepSpeed" in proc.stdout + proc.stderr

    launch("--resume", "off")

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert json.loads((out / "run.json").read_text())["world_size"] == 2

    nonzero = False
    for step in (0, 1):
        r0 = torch.load(out / "advantages" / f"step{step}_rank0.pt")
        r1 = torch.load(out / "advantages" / f"step{step}_rank1.pt")
        for key in ("holistic", "segment_rewards", "segment_mask", "rollout", "segment"):
            assert torch.equal(r0[key], r1[key]), f"step {step}: ranks disagree on {key}"
        assert r0["segment"].shape[0] == 8  # 2 processes x 4 rollouts, gathered
        # The gathered advantages, by hand from the gathered rewards (groups of G = 4, Bessel std + 1e-4).
        seg = torch.where(r0["segment_mask"], r0["segment_rewards"], torch.nan).reshape(2, 4, -1)
        mean = seg.nanmean(1, keepdim=True)
        std = ((seg - mean) ** 2).nansum(1, keepdim=True).div(seg.isfinite().sum(1, keepdim=True) - 1).sqrt()
        want = torch.nan_to_num((seg - mean) / (std + 1e-4)).reshape(8, -1)
        torch.testing.assert_close(r0["segment"], want, atol=1e-5, rtol=0)
        # Each rank's (4, T) token advantages come from its own 4 rollouts (rank r: rows 4r..4r+3),
        # not another rank's: every value is that rollout's rollout or segment advantage.
        for rank, dump in enumerate((r0, r1)):
            local = dump["token_advantages"]
            assert local.shape[0] == 4
            for i in range(4):
                g = 4 * rank + i
                allowed = {round(float(v), 5) for v in (r0["rollout"][g], *r0["segment"][g])}
                assert {round(float(v), 5) for v in local[i]} <= allowed, (step, rank, i)
        nonzero |= bool(r0["segment"].abs().sum() > 0)
    assert nonzero, "all advantages were zero: the check would be vacuous"

    # Resume under DeepSpeed: the engine keeps the optimizer in checkpoint-N/global_stepN/ (no optimizer.pt).
    checkpoint = out / "checkpoint-2"
    assert (out / "latest").read_text().strip() == "checkpoint-2"
    assert not (checkpoint / "optimizer.pt").exists() and (checkpoint / "global_step2").is_dir()
    assert resolve_resume("auto", out, world_size=2) == str(checkpoint)
    launch("--resume", "auto", "--set", "train.max_steps=3")
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [r["step"] for r in state["log_history"] if "loss" in r] == [1, 2, 3]  # continued, not restarted
    for name in (out / "checkpoint-3" / "global_step3").glob("*optim_states.pt"):
        name.unlink()
    with pytest.raises(ResumeError, match=r"global_step3/\*optim_states.pt \(0 of 2 ranks\)"):
        resolve_resume("auto", out, world_size=2)
