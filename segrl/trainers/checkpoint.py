"""Resume that reproduces: complete checkpoints, a "latest" marker written last, loud failures.

Transformers' ``Trainer`` saves model, optimizer, scheduler, trainer state (step, logs) and
every RNG state (python, numpy, torch, cuda) in ``checkpoint-N/``; on resume it restores
them and skips the data already seen, so the sampler's order repeats. segrl adds:

* :class:`LatestCheckpointMarker`: after a checkpoint is fully written, ``<output_dir>/latest``
  is replaced (atomically) with its name. A run killed mid-save leaves the marker on the
  previous, complete checkpoint.
* :func:`resolve_resume`: ``auto`` (resume from the marker if there is one, else start
  fresh), ``off``, or an explicit path; a checkpoint missing a piece raises
  :class:`ResumeError` naming what is missing instead of silently starting from scratch.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import TrainerCallback

MARKER = "latest"
REQUIRED = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")
"""Any one of these is the checkpoint's weights (``adapter_model.safetensors``: a LoRA run saves only its adapter)."""


class ResumeError(RuntimeError):
    """A checkpoint cannot be resumed from; the message names the checkpoint and the missing pieces."""


class LatestCheckpointMarker(TrainerCallback):
    """Write ``<output_dir>/latest`` = ``checkpoint-<step>`` after each completed save (main process only)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            out = Path(args.output_dir)
            tmp = out / f".{MARKER}.tmp"
            tmp.write_text(f"checkpoint-{state.global_step}\n")
            os.replace(tmp, out / MARKER)
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


def resolve_resume(resume: str, output_dir: str | Path, world_size: int = 1) -> str | None:
    """Turn ``--resume auto|off|PATH`` into the checkpoint directory to resume from, or None.

    Raises:
        ResumeError: the marker points to a missing/incomplete checkpoint, or PATH is
            missing/incomplete.
    """
    if resume == "off":
        return None
    if resume == "auto":
        marker = Path(output_dir) / MARKER
        if not marker.exists():
            return None
        checkpoint = Path(output_dir) / marker.read_text().strip()
    else:
        checkpoint = Path(resume)
    if not checkpoint.is_dir():
        raise ResumeError(f"checkpoint {checkpoint} does not exist")
    missing = missing_pieces(checkpoint, world_size)
    if missing:
        raise ResumeError(f"checkpoint {checkpoint} is incomplete, missing: {', '.join(missing)}")
    return str(checkpoint)
