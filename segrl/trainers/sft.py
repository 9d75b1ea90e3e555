"""Supervised warm start on the references with TRL's ``SFTTrainer``, before RL.

A randomly initialised policy never writes ``Answer k:`` lines, so every rollout earns the
same (zero) reward and GRPO has no signal. A short fine-tune on the reference answers
teaches the format first.

Rows (schema of :mod:`segrl.tasks.base`) become TRL's conversational prompt–completion
format with an image column::

    {"images": [...], "prompt": row["prompt"],
     "completion": [{"role": "assistant", "content": [{"type": "text", "text": row["reference"]}]}]}

TRL's ``DataCollatorForVisionLanguageModeling`` renders them with the processor's chat
template, processes the images on the fly and masks the prompt (loss on the completion,
EOS included, only).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def to_prompt_completion(dataset):
    """``dataset`` (row schema) → columns ``images``, ``prompt``, ``completion`` (images not decoded).

    Raises:
        KeyError: a required column (``prompt``, ``reference``, ``images``) is missing.
    """
    missing = [c for c in ("prompt", "reference", "images") if c not in dataset.column_names]
    if missing:
        raise KeyError(f"warm start needs columns {missing}; dataset has {dataset.column_names}")
    completions = [
        [{"role": "assistant", "content": [{"type": "text", "text": ref}]}] for ref in dataset["reference"]
    ]
    return dataset.select_columns(["images", "prompt"]).add_column("completion", completions)


def warm_start(
    model_path: str,
    train_dataset,
    out_dir: str | Path,
    *,
    max_steps: int = 200,
    learning_rate: float = 1e-3,
    per_device_train_batch_size: int = 8,
    seed: int = 0,
    logging_steps: int = 10,
) -> dict[str, Any]:
    """Fine-tune ``model_path`` on ``train_dataset``'s references; save the result to ``out_dir``.

    Loss on the completion tokens only (TRL's default for prompt–completion data); no
    truncation (``max_length=None``: a cut would drop image tokens); runs on CPU when no
    CUDA device is visible (bf16 and activation checkpointing only on CUDA); no reporting
    integrations; no intermediate checkpoints.

    Args:
        model_path: local directory or hub id (see :func:`segrl.models.loading.load_policy`).
        train_dataset: a ``datasets.Dataset`` in the row schema (needs ``images``,
            ``prompt``, ``reference``).
        out_dir: where the fine-tuned model + processor go (replaced atomically).
        max_steps: optimiser steps.
        learning_rate: peak learning rate (linear decay to 0).
        per_device_train_batch_size: rows per step and device.
        seed: ``SFTConfig.seed`` (data order; the weights come from ``model_path``).
        logging_steps: log the loss every this many steps.

    Returns:
        ``{"out_dir", "steps", "loss_first", "loss_last", "loss_history": [[step, loss], ...],
        "wall_time_s", "steps_per_s"}`` (losses are TRL's logged training losses).

    Raises:
        FileNotFoundError: ``model_path`` looks local and does not exist.
        KeyError: missing dataset columns.
    """
    from trl import SFTConfig, SFTTrainer

    from segrl.models.loading import load_policy, save_policy_atomic

    data = to_prompt_completion(train_dataset)
    model, processor = load_policy(model_path)
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="segrl-sft-") as scratch:
        args = SFTConfig(
            output_dir=scratch,
            max_steps=max_steps,
            learning_rate=learning_rate,
            per_device_train_batch_size=per_device_train_batch_size,
            seed=seed,
            logging_steps=logging_steps,
            max_length=None,
            completion_only_loss=True,
            use_cpu=not cuda,
            bf16=cuda and torch.cuda.is_bf16_supported(),
            activation_checkpointing=cuda,
            save_strategy="no",
            report_to="none",
            dataloader_num_workers=0,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=processor)
        t0 = time.time()
        trainer.train()
        wall = time.time() - t0
    trained = trainer.model
    processor.tokenizer.padding_side = "left"
    out = save_policy_atomic(
        trained,
        processor,
        out_dir,
        extra_json={
            "segrl_sft.json": {
                "model_path": str(model_path),
                "max_steps": max_steps,
                "learning_rate": learning_rate,
                "seed": seed,
                "per_device_train_batch_size": per_device_train_batch_size,
            }
        },
    )
    history = [[r["step"], r["loss"]] for r in trainer.state.log_history if "loss" in r]
    return {
        "out_dir": str(out),
        "steps": trainer.state.global_step,
        "loss_first": history[0][1] if history else None,
        "loss_last": history[-1][1] if history else None,
        "loss_history": history,
        "wall_time_s": round(wall, 2),
        "steps_per_s": round(trainer.state.global_step / wall, 3) if wall > 0 else None,
    }
