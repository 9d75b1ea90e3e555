"""Fault injection for the crash-anywhere resume tests: ``SIGKILL`` this process at a named moment.

Off unless the environment variable ``SEGRL_FAULT`` is set (``tests/faults/`` sets it in the
``segrl train`` subprocesses it kills); then :func:`install` (called by the CLI at start-up) wraps a
few transformers/TRL/torch functions, and the ``n``-th time (1-based, counted in this process) the
run reaches the named point, the process sends itself ``SIGKILL``: no handler, no ``finally``, no
flush runs, exactly as when the OOM killer or a pre-emption kills a job.

``SEGRL_FAULT`` is ``POINT@N`` or ``timer@MS``:

=====================  ==================================================================
point                  the process dies ...
=====================  ==================================================================
``rollout``            after TRL's generation + scoring of a step, before the loss (mid-step)
``train_step``         after a step's backward, before ``optimizer.step()`` (mid-step)
``optimizer_step``     right after ``optimizer.step()``, before the step counter moves
``save_model``         after a checkpoint's (or the final) weights are written, nothing else
``save_optimizer``     after ``optimizer.pt`` and ``scheduler.pt`` are written
``save_rng``           after ``rng_state.pth`` is written
``save_state``         after ``trainer_state.json`` is written (before rotation and the record)
``torn:NAME``          half-way through writing the file NAME (``optimizer.pt``, ``rng_state.pth``,
                       ``model.safetensors``, ...): the first half of its bytes is on disk
``record_tmp``         the completion record is in its temporary file, not yet renamed
``record``             the completion record is in place, ``latest`` not yet moved
``marker_tmp``         ``latest``'s temporary file is written, not yet renamed
``marker``             ``latest`` has been moved to the new checkpoint
``timer@MS``           MS milliseconds after ``Trainer.train`` starts, wherever it is then
=====================  ==================================================================
"""

from __future__ import annotations

import io
import os
import signal
import threading
from collections import Counter
from pathlib import Path

ENV = "SEGRL_FAULT"
_counts: Counter = Counter()


def _spec() -> tuple[str, int] | None:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    name, sep, n = raw.rpartition("@")
    if not sep or not name or not n.isdigit():
        raise ValueError(f"{ENV}={raw!r}: expected POINT@N (e.g. save_optimizer@2) or timer@MS")
    return name, int(n)


def die() -> None:
    """Send this process ``SIGKILL`` (nothing after this line runs)."""
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Count one pass through the fault point ``name``; die if ``SEGRL_FAULT`` asks for this pass."""
    spec = _spec()
    if spec is None or spec[0] != name:
        return
    _counts[name] += 1
    if _counts[name] == spec[1]:
        die()


def _torn_write(data: bytes, path: str) -> None:
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    die()


def install() -> None:
    """Wrap the functions behind the points of the table above (no-op unless ``SEGRL_FAULT`` is set).

    Raises:
        ValueError: ``SEGRL_FAULT`` is not ``POINT@N`` / ``timer@MS``.
    """
    spec = _spec()
    if spec is None:
        return
    import safetensors.torch
    import torch
    import transformers.modeling_utils
    import trl
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from transformers import Trainer, TrainerState

    name, n = spec

    def after(cls, attr, point_name):
        original = getattr(cls, attr)

        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            point(point_name)
            return result

        setattr(cls, attr, wrapped)

    after(trl.GRPOTrainer, "_generate_and_score_completions", "rollout")
    after(Trainer, "training_step", "train_step")
    after(Trainer, "save_model", "save_model")
    after(Trainer, "_save_optimizer_and_scheduler", "save_optimizer")
    after(Trainer, "_save_rng_state", "save_rng")
    after(TrainerState, "save_to_json", "save_state")
    register_optimizer_step_post_hook(lambda *a, **k: point("optimizer_step"))

    if name.startswith("torn:"):
        target = name.split(":", 1)[1]
        torch_save, st_save = torch.save, safetensors.torch.save_file

        def save(obj, f, *args, **kwargs):
            if isinstance(f, (str, os.PathLike)) and Path(f).name == target:
                _counts[name] += 1
                if _counts[name] == n:
                    buf = io.BytesIO()
                    torch_save(obj, buf, *args, **kwargs)
                    _torn_write(buf.getvalue(), str(f))
            return torch_save(obj, f, *args, **kwargs)

        def save_file(tensors, filename, *args, **kwargs):
            if Path(filename).name == target:
                _counts[name] += 1
                if _counts[name] == n:
                    _torn_write(safetensors.torch.save(tensors, *args, **kwargs), str(filename))
            return st_save(tensors, filename, *args, **kwargs)

        torch.save = save
        safetensors.torch.save_file = save_file
        transformers.modeling_utils.safe_save_file = save_file

    if name == "timer":
        train = Trainer.train

        def timed_train(*args, **kwargs):
            timer = threading.Timer(n / 1000.0, die)
            timer.daemon = True
            timer.start()
            return train(*args, **kwargs)

        Trainer.train = timed_train
