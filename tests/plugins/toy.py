"""A toy task and a toy algorithm, each declared in this one file (README "Adding an algorithm / a task").

Nothing in ``segrl/`` names them: :func:`register` adds both specs to the registries (a plug-in
module would call it at import), and ``segrl build-data toy_colours`` / ``--algo toy_sign`` work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from segrl.tasks.base import FEATURES, BuildOptions, TaskSpec, save_dataset_atomic
from segrl.trainers.advantages import ESTIMATORS, AdvantageInputs, Advantages, group_normalize
from segrl.trainers.registry import AlgorithmSpec
from segrl.trainers.segment_grpo import SegmentGRPOTrainer

# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class ToyOptions(BuildOptions):
    """Build options of the toy colour task: the shared seed/size/test_fraction and one of its own."""

    size: int | None = field(default=8, metadata={"help": "Examples to build."})
    images_per_row: int = field(default=1, metadata={"help": "Solid-colour images (segments) per example."})


def build(source, out_dir, *, seed: int = 0, size: int | None = 8, test_fraction: float = 0.2,
          images_per_row: int = 1, strict: bool = False, max_skip_fraction: float = 0.05):
    """Colour rows (``tests/conftest.py``), split by ``test_fraction``, saved atomically (generated rows
    have no bad items, so ``strict`` and ``max_skip_fraction`` have nothing to act on)."""
    from datasets import DatasetDict

    from tests.conftest import colour_rows

    rows = colour_rows(n=size or 8, seed=seed, n_images=images_per_row)
    n_test = max(1, round(len(rows) * test_fraction))
    ds = DatasetDict({"train": rows.select(range(n_test, len(rows))), "test": rows.select(range(n_test))})
    ds = DatasetDict({k: v.cast(FEATURES) for k, v in ds.items()})
    save_dataset_atomic(ds, out_dir)
    return ds


TASK = TaskSpec(name="toy_colours", version=1, build=build, segment_reward="accuracy", eval_metrics=("accuracy",),
                description="Toy: name the colour of each image.", options=ToyOptions)

# --------------------------------------------------------------------------- the algorithm


def toy_sign(batch: AdvantageInputs, *, eps: float = 1e-4) -> Advantages:
    """``A[i] = sign(R[i] - mean_g R)``: every token of a better-than-its-group rollout gets +1.

    Args:
        batch: ``holistic_rewards (B,)`` ... (:class:`~segrl.trainers.advantages.AdvantageInputs`).

    Returns:
        ``rollout (B,)`` in {-1, 0, 1}.
    """
    return Advantages(rollout=torch.sign(group_normalize(batch.holistic_rewards, batch.num_generations, "none", eps)))


class RecordingTrainer(SegmentGRPOTrainer):
    """The default trainer, keeping each batch's holistic rewards and token advantages for the test."""

    seen: list = []

    def token_advantages(self, scored, out):
        adv = super().token_advantages(scored, out)
        type(self).seen.append((scored.holistic.clone(), adv.clone(), out["completion_mask"].clone()))
        return adv


ALGORITHM = AlgorithmSpec("toy_sign", estimator="toy_sign", trl_options={"scale_rewards": "group"},
                          trainer=RecordingTrainer, summary="Toy: the sign of the centred reward")


def register(monkeypatch) -> None:
    """Add the task and the algorithm (and its estimator) to the registries for one test."""
    from segrl.tasks import TASKS
    from segrl.trainers.registry import ALGORITHMS

    ALGORITHMS.names()  # load the built-ins first
    monkeypatch.setitem(TASKS._items, TASK.name, TASK)
    monkeypatch.setitem(ESTIMATORS._items, "toy_sign", toy_sign)
    monkeypatch.setitem(ALGORITHMS._items, ALGORITHM.name, ALGORITHM)
