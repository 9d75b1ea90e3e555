"""Resume that reproduces: complete checkpoints, a completion record and ``latest`` written last,
torn checkpoints refused, loud failures.

Transformers' ``Trainer`` saves model, optimizer, scheduler, trainer state (step, logs) and
every RNG state (python, numpy, torch, cuda) in ``checkpoint-N/``; on resume it restores
them and skips the data already seen, so the sampler's order repeats. segrl adds, in this order
after every save (:class:`LatestCheckpointMarker`, main process only):

1. every file of ``checkpoint-N/`` is flushed to disk (``fsync``), then
2. a completion record ``checkpoint-N/segrl_complete.json`` (each file's relative path and size
   in bytes) is written to a temporary name, fsynced and renamed into place, then
3. ``<output_dir>/latest`` is replaced the same way (temporary file, fsync, atomic rename) with
   ``checkpoint-N``.

A process killed at any moment (``SIGKILL``, power loss after step 1) therefore leaves ``latest`` on
the previous checkpoint that is whole, and any half-written ``checkpoint-M/`` without a valid
completion record. Before a step whose checkpoint will be written, a stale completion record left in
that directory by an earlier, killed attempt is removed, so a record always describes the files
that follow it. :func:`resolve_resume` turns ``--resume auto|off|PATH`` into the checkpoint to
resume from: it never chooses a torn checkpoint (one whose record is missing or disagrees with the
files) — it skips it with a message when ``latest`` points elsewhere, and refuses it
(:class:`ResumeError`) when it is the one asked for. A checkpoint missing a piece is an error
naming the pieces, never a silent fresh start. ``tests/faults/`` kills real ``segrl train``
processes at seeded moments (inside checkpoint writing and the ``latest`` update too) and checks
that every resumed run ends equal to an uninterrupted one.

The record holds sizes, not hashes: a ``SIGKILL`` tears a file by truncating it (writes land in
order), which a size catches, and hashing a 7B checkpoint's optimizer state at every save would
cost minutes.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from transformers import TrainerCallback

from segrl import faults

MARKER = "latest"
COMPLETE = "segrl_complete.json"
REQUIRED = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")
"""Any one of these is the checkpoint's weights (``adapter_model.safetensors``: a LoRA run saves only its adapter)."""
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class ResumeError(RuntimeError):
    """A checkpoint cannot be resumed from; the message names the checkpoint and the missing pieces."""


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a directory) to disk; directories where the OS allows it."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories on Windows cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, text: str, point: str) -> None:
    """Write ``text`` to ``path`` via a fsynced temporary sibling and ``os.replace``.

    ``point`` names the fault-injection point between the temporary write and the rename
    (``<point>_tmp``) and after it (``<point>``), see :mod:`segrl.faults`.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    faults.point(f"{point}_tmp")
    os.replace(tmp, path)
    _fsync(path.parent)
    faults.point(point)


def _files(checkpoint: Path) -> dict[str, int]:
    """``{relative path: size in bytes}`` of every file below ``checkpoint`` except the record itself."""
    return {
        str(p.relative_to(checkpoint)): p.stat().st_size
        for p in sorted(checkpoint.rglob("*"))
        if p.is_file() and p.name != COMPLETE and not p.name.startswith(f".{COMPLETE}")
    }


def write_completion_record(checkpoint: str | Path) -> Path:
    """fsync every file of ``checkpoint``, then write its completion record atomically.

    Returns:
        The path of ``checkpoint/segrl_complete.json``: ``{"files": {relative path: bytes}}``.
    """
    checkpoint = Path(checkpoint)
    files = _files(checkpoint)
    for rel in files:
        _fsync(checkpoint / rel)
    for d in {(checkpoint / rel).parent for rel in files} | {checkpoint}:
        _fsync(d)
    path = checkpoint / COMPLETE
    _atomic_write(path, json.dumps({"files": files}, indent=1) + "\n", "record")
    return path


def torn_reason(checkpoint: str | Path) -> str | None:
    """Why ``checkpoint`` is torn (its completion record is missing, unreadable or disagrees with the
    files: a file missing or of another size), or None when the record matches every file.
    """
    checkpoint = Path(checkpoint)
    path = checkpoint / COMPLETE
    if not path.is_file():
        return f"no completion record {COMPLETE} (a save was interrupted)"
    try:
        files = json.loads(path.read_text())["files"]
        expected = {str(k): int(v) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"unreadable {COMPLETE}: {e}"
    found = _files(checkpoint)
    missing = sorted(set(expected) - set(found))
    if missing:
        return f"{len(missing)} recorded file(s) missing: {', '.join(missing[:3])}"
    wrong = [f"{rel} has {found[rel]} bytes, recorded {size}" for rel, size in expected.items() if found[rel] != size]
    if wrong:
        return "; ".join(wrong[:3])
    return None


def _wait_for_every_rank() -> None:
    """A barrier across the processes of a distributed run (nothing in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class LatestCheckpointMarker(TrainerCallback):
    """After each completed save: fsync the checkpoint, write its completion record, then point
    ``<output_dir>/latest`` at it (main process only). Before a step that will save, remove a stale
    record left in that step's checkpoint directory by an earlier, killed attempt.

    Raises:
        ValueError: at the start of training, ``save_total_limit`` is 1 (transformers deletes the
            previous checkpoint before this callback runs, so a kill in between would leave
            ``latest`` naming a deleted checkpoint; 2 or more keeps it).
    """

    def on_train_begin(self, args, state, control, **kwargs):
        if args.save_total_limit == 1:
            raise ValueError(
                "train.save_total_limit=1 cannot resume after a crash during a save (the previous checkpoint "
                "is deleted before the new one is marked complete): use 2 or more, or leave it unset"
            )
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save and state.is_world_process_zero:
            stale = Path(args.output_dir) / f"checkpoint-{state.global_step}" / COMPLETE
            if stale.exists():
                stale.unlink()
                _fsync(stale.parent)
        return control

    def on_save(self, args, state, control, **kwargs):
        _wait_for_every_rank()  # other ranks may still be writing their own pieces (rng_state_<i>.pth)
        if state.is_world_process_zero:
            out = Path(args.output_dir)
            name = f"checkpoint-{state.global_step}"
            write_completion_record(out / name)
            _atomic_write(out / MARKER, f"{name}\n", "marker")
        return control


def _deepspeed_missing(checkpoint: Path, world_size: int) -> list[str] | None:
    """What a DeepSpeed engine checkpoint in ``checkpoint`` lacks, or None if it holds none.

    DeepSpeed saves the model, LR scheduler and optimizer state itself, as ``<tag>/*model_states.pt``
    and one ``<tag>/*optim_states.pt`` per data-parallel rank, with the tag (``global_stepN``) in the
    file ``latest``; ``optimizer.pt`` and ``scheduler.pt`` are then absent by design.
    """
    tags = sorted(p.name for p in checkpoint.glob("global_step*") if p.is_dir())
    if not tags:
        return None
    tag_file = checkpoint / "latest"
    if not tag_file.is_file():
        return ["latest (DeepSpeed's tag file)"]
    tag = tag_file.read_text().strip()
    engine = checkpoint / tag
    if not engine.is_dir():
        return [f"{tag}/ (the DeepSpeed engine state named by 'latest')"]
    missing = [] if any(engine.glob("*model_states.pt")) else [f"{tag}/*model_states.pt"]
    optim = len(list(engine.glob("*optim_states.pt")))
    if optim < world_size:
        missing.append(f"{tag}/*optim_states.pt ({optim} of {world_size} ranks)")
    return missing


def missing_pieces(checkpoint: Path, world_size: int = 1) -> list[str]:
    """Files a resumable checkpoint needs but ``checkpoint`` lacks (weights, optimizer, scheduler,
    trainer state, one RNG state per process). A DeepSpeed checkpoint's optimizer (and possibly
    weights) live in its engine state instead (:func:`_deepspeed_missing`)."""
    engine = _deepspeed_missing(checkpoint, world_size)
    # Under DeepSpeed the engine also owns the LR scheduler (accelerate hands it to deepspeed.initialize).
    required = REQUIRED if engine is None else tuple(n for n in REQUIRED if n not in ("optimizer.pt", "scheduler.pt"))
    missing = [name for name in required if not (checkpoint / name).exists()]
    if engine is not None:
        missing += engine
    elif not any((checkpoint / w).exists() for w in WEIGHTS):
        missing.append("model weights (model.safetensors)")
    rng = ["rng_state.pth"] if world_size == 1 else [f"rng_state_{i}.pth" for i in range(world_size)]
    missing += [name for name in rng if not (checkpoint / name).exists()]
    return missing


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The ``checkpoint-N`` directories of ``output_dir``, by step N (oldest first)."""
    out = Path(output_dir)
    found = [(int(m.group(1)), p) for p in out.glob("checkpoint-*") if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def _say(message: str) -> None:
    print(f"segrl: {message}", file=sys.stderr, flush=True)


def _check(checkpoint: Path, world_size: int, *, why: str) -> None:
    """Raise :class:`ResumeError` unless ``checkpoint`` exists, has every piece and is not torn.

    A checkpoint without a completion record is accepted only when every piece is present and it was
    named explicitly or by ``latest`` (checkpoints written before records existed, or by plain
    transformers); a record that disagrees with the files always refuses it.
    """
    if not checkpoint.is_dir():
        raise ResumeError(f"checkpoint {checkpoint} ({why}) does not exist")
    missing = missing_pieces(checkpoint, world_size)
    if missing:
        raise ResumeError(f"checkpoint {checkpoint} ({why}) is incomplete, missing: {', '.join(missing)}")
    if (checkpoint / COMPLETE).exists():
        reason = torn_reason(checkpoint)
        if reason:
            raise ResumeError(f"checkpoint {checkpoint} ({why}) is torn, refusing it: {reason}")


def resolve_resume(resume: str, output_dir: str | Path, world_size: int = 1) -> str | None:
    """Turn ``--resume auto|off|PATH`` into the checkpoint directory to resume from, or None.

    ``auto``: the checkpoint named by ``<output_dir>/latest``. Newer ``checkpoint-M`` directories
    (a save interrupted after ``latest`` was last moved) are torn or not yet marked: each is skipped
    with a message on stderr. Without ``latest``, the newest checkpoint whose completion record
    matches its files is used (a kill between the record and ``latest`` of the first save), torn ones
    are skipped with a message, and with none left the run starts fresh. The chosen checkpoint is
    announced on stderr (``segrl: resuming from ...``).

    Raises:
        ResumeError: the checkpoint named by ``latest`` or by PATH is missing, incomplete (the
            message lists the missing pieces) or torn (its completion record disagrees with its
            files); or ``latest`` is empty.
    """
    if resume == "off":
        return None
    out = Path(output_dir)
    if resume == "auto":
        marker = out / MARKER
        if marker.exists():
            name = marker.read_text().strip()
            if not name:
                raise ResumeError(f"{marker} is empty: pass --resume PATH or --resume off")
            checkpoint = out / name
            _check(checkpoint, world_size, why=f"named by {marker}")
            step = _step(checkpoint)
            for other in checkpoints(out):
                if step is not None and _step(other) > step:
                    reason = torn_reason(other) or "complete but never marked latest"
                    _say(f"skipping {other.name}, newer than {MARKER}: {reason}")
        else:
            checkpoint = None
            for candidate in reversed(checkpoints(out)):
                reason = torn_reason(candidate)
                if reason is None and not missing_pieces(candidate, world_size):
                    checkpoint = candidate
                    break
                _say(f"skipping torn {candidate} ({reason or 'incomplete'})")
            if checkpoint is None:
                return None
    else:
        checkpoint = Path(resume)
        _check(checkpoint, world_size, why="--resume")
    _say(f"resuming from {checkpoint}")
    return str(checkpoint)


def _step(checkpoint: Path) -> int | None:
    m = _CHECKPOINT_RE.match(checkpoint.name)
    return int(m.group(1)) if m else None
