"""``model.freeze_vision``: RL trains the language model only; the vision tower and projector stay bit-equal."""

from __future__ import annotations

import pytest
import torch

from segrl.config import load_config
from segrl.models import load_policy
from segrl.models.loading import freeze_vision


def test_freeze_vision_freezes_the_tower_and_projector_only(colour_tiny_model):
    model, _ = load_policy(str(colour_tiny_model))
    vision = {n for n, _ in model.named_parameters() if ".vision_tower." in n or ".multi_modal_projector." in n}
    n_vision = sum(p.numel() for n, p in model.named_parameters() if n in vision)
    assert freeze_vision(model) == n_vision > 0
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in vision)
    assert all(p.requires_grad for n, p in model.named_parameters() if n not in vision)  # the LM and lm_head train
    assert freeze_vision(model) == 0  # already frozen: nothing more


def test_freeze_vision_refuses_a_model_without_vision_modules():
    with pytest.raises(ValueError, match="model.freeze_vision: Linear has none of the vision modules"):
        freeze_vision(torch.nn.Linear(2, 2))


def test_train_with_freeze_vision_moves_only_the_language_model(tmp_path, colour_warm_model, colour_split):
    from segrl.trainers.train import main

    sft, _ = colour_warm_model
    data = colour_split
    overrides = [f"data.path={data}", f"output_dir={tmp_path / 'run'}", "model.freeze_vision=true",
                 "train.num_generations=4", "train.per_device_train_batch_size=8", "train.max_completion_length=12",
                 "train.learning_rate=5e-2", "train.lr_scheduler_type=constant", "train.max_steps=2",
                 "train.logging_steps=1", "train.save_strategy=no"]
    assert main(load_config(None, overrides), model=str(sft))["steps"] == 2
    before = dict(load_policy(str(sft))[0].named_parameters())
    after = dict(load_policy(str(tmp_path / "run"))[0].named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved and all(".language_model." in n or n.startswith("lm_head") for n in moved)
    assert not any(".vision_tower." in n or ".multi_modal_projector." in n for n in moved)
