"""Crash-anywhere resume: kill real ``segrl train`` processes with SIGKILL, resume, compare.

One *trajectory* is a fresh output directory trained by repeated launches of the same command,
``segrl train --config job.yaml --model M --resume auto``, each with ``SEGRL_FAULT`` set to the next
kill point (:mod:`segrl.faults`): the process sends itself SIGKILL there, the next launch resumes
from whatever the dead one left behind. A launch whose kill point is never reached finishes the
run; its final weights (``model.safetensors``) and the per-step rewards of its ``train_log.jsonl``
are then compared with an uninterrupted run of the same command. Kill points are drawn from a
seeded RNG among every point of :mod:`segrl.faults` (mid-step, each piece of checkpoint writing, a
half-written file, the completion record, the ``latest`` update, and a timer that fires wherever
training is) with the pass number drawn among the passes the remaining run still makes.

Before each resume the checkpoints on disk are judged *independently* of segrl's completion
record: a checkpoint is intact when every binary file of the uninterrupted run's checkpoint of the
same step is present with the same bytes (the job is deterministic on CPU). The checkpoint the
resumed process announces (``segrl: resuming from ...``) must be intact; the torn ones present
must have been skipped or refused.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS, SAVE_STEPS = 6, 2
STEP_POINTS = ("rollout", "train_step", "optimizer_step")
SAVE_POINTS = ("save_model", "save_optimizer", "save_rng", "save_state", "torn:optimizer.pt",
               "torn:model.safetensors", "torn:rng_state.pth", "record_tmp", "record", "marker_tmp", "marker")
BINARY = (".pt", ".pth", ".safetensors", ".bin")


def write_job(workdir: Path, data: Path) -> Path:
    """The fault job's config: SD-GRPO, 6 steps, a checkpoint every 2 (2 kept), on ``data``."""
    config = workdir / "job.yaml"
    config.write_text(yaml.safe_dump({
        "task": "multichart",
        "data": {"path": str(data)},
        "train": {"algo": "sd_grpo", "num_generations": 4, "per_device_train_batch_size": 8,
                  "max_steps": MAX_STEPS, "max_completion_length": 12, "learning_rate": 5e-3, "logging_steps": 1,
                  "save_strategy": "steps", "save_steps": SAVE_STEPS, "save_total_limit": 2, "beta": 0.0,
                  "seed": 0},
    }))
    return config


def launch(config: Path, model: Path, out: Path, fault: str | None, *extra: str,
           timeout: float = 600) -> subprocess.CompletedProcess:
    """One ``segrl train`` process (1 thread, offline), ``SEGRL_FAULT=fault`` when given."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("SEGRL_FAULT", None)
    if fault:
        env["SEGRL_FAULT"] = fault
    cmd = [sys.executable, "-m", "segrl.cli", "train", "--config", str(config), "--model", str(model),
           "--output-dir", str(out), "--resume", "auto", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def rewards(run: Path) -> dict[int, float]:
    """``{step: reward}`` from a finished run's ``train_log.jsonl``.

    Raises:
        AssertionError: a step is logged twice (a replayed step's log kept beside the original).
    """
    out: dict[int, float] = {}
    for line in (run / "train_log.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "reward" in row:
            assert row["step"] not in out, f"step {row['step']} logged twice in {run}"
            out[row["step"]] = row["reward"]
    return out


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def max_param_diff(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)


def intact(checkpoint: Path, reference: Path) -> bool:
    """``checkpoint`` holds every binary file of ``reference`` (same step, uninterrupted run) byte for byte,
    and each JSON file of it parses."""
    for ref in reference.rglob("*"):
        if not ref.is_file():
            continue
        got = checkpoint / ref.relative_to(reference)
        if not got.is_file():
            return False
        if ref.suffix in BINARY and ref.name != "training_args.bin" and got.read_bytes() != ref.read_bytes():
            return False
        if ref.suffix == ".json":
            try:
                json.loads(got.read_text())
            except ValueError:
                return False
    return True


def step_of(out: Path) -> int:
    """The step the next launch resumes from, as the run directory says (0: none)."""
    marker = out / "latest"
    return int(marker.read_text().strip().split("-")[1]) if marker.exists() else 0


def draw(rng: random.Random, done: int, train_ms: float) -> str:
    """A kill point the remaining run (from step ``done``) still reaches, drawn with ``rng``."""
    kind = rng.choices(("step", "save", "timer"), weights=(3, 8, 2))[0]
    remaining = MAX_STEPS - done
    if kind == "timer":
        return f"timer@{rng.randint(0, int(train_ms))}"
    if kind == "step":
        return f"{rng.choice(STEP_POINTS)}@{rng.randint(1, remaining)}"
    name = rng.choice(SAVE_POINTS)
    saves = remaining // SAVE_STEPS + (1 if name in ("save_model", "torn:model.safetensors") else 0)  # + final save
    return f"{name}@{rng.randint(1, max(saves, 1))}"


@dataclass
class Campaign:
    """What a fault campaign saw; :meth:`summary` is what ``make test-faults`` prints."""

    kills: list[dict] = field(default_factory=list)  # one per launch killed: point, resumed_from, torn on disk
    trajectories: list[dict] = field(default_factory=list)  # one per finished run: diffs to the reference
    torn_seen: int = 0  # torn checkpoints on disk at a resume (each skipped or refused, never chosen)
    resumes: int = 0  # launches that resumed from a checkpoint
    reference_train_s: float = 0.0

    def summary(self) -> dict:
        return {
            "kill_points": len(self.kills),
            "points": sorted({k["fault"].split("@")[0] for k in self.kills}),
            "runs_finished": len(self.trajectories),
            "runs_equal_1e-6": sum(t["equal"] for t in self.trajectories),
            "resumes": self.resumes,
            "torn_checkpoints_seen_at_resume": self.torn_seen,
            "torn_checkpoints_chosen": 0,  # asserted in run_campaign
            "max_param_abs_diff": max((t["param_diff"] for t in self.trajectories), default=None),
            "max_reward_abs_diff": max((t["reward_diff"] for t in self.trajectories), default=None),
        }


def run_campaign(workdir: Path, model: Path, data: Path, *, kills: int, seed: int = 0, per_run: int = 4,
                 faults: list[str] | None = None, log=print) -> Campaign:
    """Kill ``kills`` launches (drawn with ``seed``, or the given ``faults`` in order), resume each time,
    and check every finished run against an uninterrupted one. Each run is killed at most ``per_run``
    times, then its next launch runs without a fault to the end (and is compared).

    Raises:
        AssertionError: a killed launch did not die by SIGKILL, a launch failed, a resumed launch
            chose a checkpoint that is not intact, or a finished run's weights or per-step rewards
            differ from the uninterrupted run's by more than 1e-6.
    """
    config = write_job(workdir, data)
    reference = workdir / "reference"
    # The same job, keeping every checkpoint (rotation deletes directories, it cannot move a number): the
    # ground truth that each checkpoint left by a killed launch is judged against.
    done = launch(config, model, reference, None, "--set", "train.save_total_limit=null")
    assert done.returncode == 0, done.stderr[-3000:]
    want = rewards(reference)
    assert sorted(want) == list(range(1, MAX_STEPS + 1))
    c = Campaign(reference_train_s=json.loads((reference / "run.json").read_text())["summary"]["wall_time_s"])
    rng = random.Random(seed)
    queue = list(faults or [])
    n_traj = 0
    while len(c.kills) < kills:
        n_traj += 1
        out = workdir / f"run{n_traj}"
        for launched in range(per_run + 1):
            progress = step_of(out)
            on_disk = {p.name: intact(p, reference / p.name) for p in out.glob("checkpoint-*") if p.is_dir()}
            torn = sorted(name for name, ok in on_disk.items() if not ok)
            fault = (queue.pop(0) if queue else draw(rng, progress, 1000 * c.reference_train_s)) \
                if len(c.kills) < kills and launched < per_run else None
            result = launch(config, model, out, fault)
            chosen = [line.split("resuming from ", 1)[1].strip() for line in result.stderr.splitlines()
                      if "segrl: resuming from" in line]
            if chosen:
                c.resumes += 1
                name = Path(chosen[0]).name
                assert on_disk.get(name), f"{fault}: resumed from {name}, which is torn or absent ({on_disk})"
            for name in torn:  # each torn checkpoint is skipped with a message naming it
                assert any("skipping" in line and name in line for line in result.stderr.splitlines()), \
                    f"{fault}: torn {name} not reported\n{result.stderr[-2000:]}"
            c.torn_seen += len(torn)
            if result.returncode == -signal.SIGKILL:
                c.kills.append({"fault": fault, "resumed_from": chosen[0] if chosen else None, "torn_on_disk": torn,
                                "trajectory": n_traj})
                log(f"kill {len(c.kills):2d}: {fault:28s} resumed from {Path(chosen[0]).name if chosen else '-':13s}"
                    f" torn on disk: {torn or '-'}")
                continue
            assert result.returncode == 0, f"{fault}: exit {result.returncode}\n{result.stderr[-3000:]}"
            got = rewards(out)
            assert sorted(got) == sorted(want), f"steps {sorted(got)} != {sorted(want)}"
            reward_diff = max(abs(got[s] - want[s]) for s in want)
            param_diff = max_param_diff(out / "model.safetensors", reference / "model.safetensors")
            c.trajectories.append({"trajectory": n_traj, "reward_diff": reward_diff, "param_diff": param_diff,
                                   "equal": reward_diff <= 1e-6 and param_diff <= 1e-6,
                                   "launches": 1 + sum(k["trajectory"] == n_traj for k in c.kills)})
            log(f"run {n_traj} finished ({fault or 'no fault'} not reached): reward diff {reward_diff:.2e}, "
                f"param diff {param_diff:.2e}")
            assert reward_diff <= 1e-6 and param_diff <= 1e-6, c.trajectories[-1]
            shutil.rmtree(out)
            break
    return c
