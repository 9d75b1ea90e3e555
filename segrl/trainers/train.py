"""``segrl train``: RL fine-tuning of a VLM policy with a registered advantage estimator."""

from __future__ import annotations

import json
import time
from pathlib import Path

from datasets import load_from_disk

from segrl.config import ExperimentConfig, config_to_dict
from segrl.provenance import code_state, dataset_fingerprint, now, trainer_arguments, write_run_json
from segrl.rewards import make_segment_reward
from segrl.tasks import TASKS
from segrl.tasks.base import downscale_images


def reference_corpus(dataset) -> list[list[str]]:
    """Every segment's reference list of a split (CIDEr-D document frequencies come from it)."""
    return [refs for row_refs in dataset["segment_references"] for refs in row_refs]


def main(cfg: ExperimentConfig, *, model: str | None = None, resume: str = "auto") -> dict:
    """Train ``model`` (default ``cfg.model.name_or_path``) on ``cfg.data.path``'s train split.

    Writes to ``cfg.output_dir``: checkpoints (``checkpoint-N/`` every ``train.save_steps``
    with a ``latest`` marker written last), the final policy + processor,
    ``train_log.jsonl`` (TRL's log history, one line per logged step) and ``run.json``
    (provenance).

    Args:
        resume: ``auto`` (continue from ``<output_dir>/latest`` if present), ``off``, or a
            checkpoint directory. See :mod:`segrl.trainers.checkpoint`.

    Returns:
        A summary dict (steps, wall time, first/last logged reward).

    Raises:
        FileNotFoundError: the dataset directory does not exist (run ``segrl build-data`` first).
        ResumeError: the checkpoint to resume from is missing or incomplete.
    """
    from segrl.models.loading import freeze_vision, load_policy
    from segrl.trainers.checkpoint import LatestCheckpointMarker, resolve_resume
    from segrl.trainers.registry import trainer_class

    code_state()  # the code this run runs: what run.json records, whatever the checkout does meanwhile
    data_path = Path(cfg.data.path)
    if not data_path.exists():
        raise FileNotFoundError(f"dataset not found at {data_path}: run `segrl build-data {cfg.task}` first")
    task = TASKS.get(cfg.task)
    dataset = load_from_disk(str(data_path))
    train = downscale_images(dataset["train"], cfg.data.max_image_side)
    args = cfg.grpo_config()
    checkpoint = resolve_resume(resume, args.output_dir, world_size=args.world_size)
    name = model or cfg.model.name_or_path
    policy, processor = load_policy(name, dtype=cfg.model.dtype)
    if cfg.model.freeze_vision:
        freeze_vision(policy)
    metric = make_segment_reward(task.segment_reward, reference_corpus=reference_corpus(train))
    from segrl.trainers.advantages import HOLISTIC_ESTIMATORS

    holistic = None
    if args.estimator in HOLISTIC_ESTIMATORS:
        # blend's whole-answer metric; CIDEr-D's document frequencies come from the whole references
        from segrl.rewards.scorer import joined_references

        whole = [joined_references(refs) for refs in train["segment_references"]]
        holistic = make_segment_reward(args.holistic_metric or task.segment_reward,
                                       reference_corpus=[w for w in whole if w])

    started, t0 = now(), time.time()
    trainer = trainer_class(args.algo)(
        model=policy, segment_metric=metric, args=args, train_dataset=train, processing_class=processor,
        holistic_metric=holistic,
        callbacks=[LatestCheckpointMarker()],
        peft_config=cfg.model.lora.peft_config() if cfg.model.lora is not None else None,  # TRL wraps the policy
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.time() - t0
    out = Path(args.output_dir)
    trainer.save_model(str(out))  # collective under DeepSpeed: every rank calls it
    history = trainer.state.log_history
    rewards = [r["reward"] for r in history if "reward" in r]
    summary = {
        "steps": trainer.state.global_step,
        "wall_time_s": round(wall, 1),
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
    }
    if not trainer.is_world_process_zero():
        return summary
    processor.save_pretrained(str(out))
    with (out / "train_log.jsonl").open("w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")
    write_run_json(
        out,
        kind="train",
        task={"name": task.name, "version": task.version},
        algo=args.algo,
        model=name,
        config=config_to_dict(cfg),
        trainer_args=trainer_arguments(args),  # the resolved TRL/segrl arguments actually used
        seed=args.seed,
        world_size=args.world_size,
        data={"path": str(data_path), "fingerprint": dataset_fingerprint(data_path)},
        started=started,
        finished=now(),
        resumed_from=checkpoint,
        summary=summary,
    )
    return summary
