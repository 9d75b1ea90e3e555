"""TensorBoard logging in the CPU presets: on, offline, and written inside the run directory."""

from pathlib import Path

import pytest
from transformers import TrainerControl, TrainerState
from transformers.integrations import TensorBoardCallback

from segrl.config import load_config

CPU_PRESETS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*_cpu.yaml"))


@pytest.mark.parametrize("path", CPU_PRESETS, ids=lambda p: p.name)
def test_cpu_presets_report_to_tensorboard(path):
    assert load_config(path).grpo_config().report_to == ["tensorboard"]


def test_tensorboard_events_land_in_the_run_dir(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    cfg = load_config(CPU_PRESETS[0], [f"output_dir={tmp_path / 'run'}"])
    args = cfg.grpo_config()
    state, control = TrainerState(), TrainerControl()
    state.is_world_process_zero = True
    cb = TensorBoardCallback()  # what TRL's trainer adds for report_to=tensorboard; raises if tensorboard is missing
    cb.on_train_begin(args, state, control)
    for step, reward in ((1, 0.25), (2, 0.5)):
        state.global_step = step
        cb.on_log(args, state, control, logs={"reward": reward})
    cb.on_train_end(args, state, control)
    events = list((tmp_path / "run" / "runs").rglob("events.out.tfevents.*"))
    assert len(events) == 1  # under <output_dir>/runs/<time>_<host>/, nothing outside the run directory
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/reward")] == [(1, 0.25), (2, 0.5)]
