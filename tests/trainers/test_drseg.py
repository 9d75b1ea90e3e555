"""Dr. Seg trainer on the tiny offline LLaVA: rewards, the DRR history across steps and a resume."""

from __future__ import annotations

import shutil

import pytest
import torch

from segrl.models import build_tiny_vlm, load_policy, texts_from_dataset
from segrl.rewards.grounding import DistributionRankedReward, object_iou
from segrl.tasks.grounding import LOOK_INSTRUCTION, build, synthetic_row
from segrl.trainers import registry
from segrl.trainers.checkpoint import ResumeError
from segrl.trainers.drseg import (
    DRR_STATE,
    DrSegConfig,
    DrSegTrainer,
    VisionReasonerConfig,
    make_reward_funcs,
    reward_parts,
)


@pytest.fixture(scope="module")
def grounding_data(tmp_path_factory):
    """8 plain-prompt synthetic grounding rows (112 px scenes): the trainer must add Look-to-Confirm itself."""
    return build(None, tmp_path_factory.mktemp("g") / "data", count=8, image_side=112, look_to_confirm=False)


@pytest.fixture(scope="module")
def grounding_model(tmp_path_factory, grounding_data):
    return build_tiny_vlm(list(texts_from_dataset(grounding_data)), tmp_path_factory.mktemp("gm") / "tiny")


class Recording(DrSegTrainer):
    """Records the prompts the rewards were computed for."""

    prompts: list

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self.prompts.extend(prompts)
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)


def make_args(tmp_path, cls=DrSegConfig, **kw):
    base = dict(output_dir=str(tmp_path / "run"), num_generations=4, per_device_train_batch_size=8,
                max_completion_length=16, max_steps=2, learning_rate=5e-3, logging_steps=1, save_strategy="no",
                report_to="none", use_cpu=True, bf16=False, seed=0)
    base.update(kw)
    return cls(**base)


def logged(trainer, key):
    return [r[key] for r in trainer.state.log_history if key in r]


def test_config_checks():
    assert registry.config_class("drseg") is DrSegConfig
    assert registry.trainer_class("vision_reasoner") is DrSegTrainer
    cfg = DrSegConfig(output_dir="x", use_cpu=True, bf16=False)
    assert (cfg.algo, cfg.estimator, cfg.accuracy_reward, cfg.look_to_confirm) == ("drseg", "grpo", "drr", True)
    assert (cfg.loss_type, cfg.scale_rewards) == ("bnpo", "group")  # the authors' token mean
    vr = VisionReasonerConfig(output_dir="x", use_cpu=True, bf16=False)
    assert (vr.algo, vr.accuracy_reward, vr.look_to_confirm) == ("vision_reasoner", "vision_reasoner", False)
    assert DrSegConfig(output_dir="x", estimator="sd_dr_grpo", use_cpu=True, bf16=False).loss_type == "dr_grpo"
    for bad, match in [({"algo": "grpo"}, "algo must be"), ({"estimator": "nope"}, "not registered"),
                       ({"accuracy_reward": "iou"}, "accuracy_reward"), ({"drr_initial_zeros": 4096}, "drr_capacity")]:
        with pytest.raises(ValueError, match=match):
            DrSegConfig(output_dir="x", use_cpu=True, bf16=False, **bad)


def test_token_mean_loss_aggregation_by_hand(tmp_path, grounding_model, grounding_data):
    # Dr. Seg (verl dp_actor) averages the per-token loss over every response token of the micro-batch.
    # With the ratio at 1 (on-policy: no old log-probs) and beta 0 the per-token loss is -A, so on
    # A = [[1, 1, 1, 1], [-1, -1, pad, pad]] the token mean is -(4 - 2) / 6 = -1/3, while TRL's "grpo"
    # (a mean of per-sequence means) gives -(1 + (-1)) / 2 = 0.
    model, processor = load_policy(str(grounding_model))
    trainer = DrSegTrainer(model=model, segment_metric=object_iou, args=make_args(tmp_path), train_dataset=grounding_data["train"],
                           processing_class=processor)
    assert trainer.loss_type == "bnpo"
    ids = processor.tokenizer(["Object 1: a", "Object 2: b"], return_tensors="pt", padding=True)["input_ids"][:, :2]
    inputs = {"prompt_ids": ids, "prompt_mask": torch.ones_like(ids),
              "completion_ids": torch.cat([ids, ids], dim=1), "completion_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),
              "advantages": torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, 5.0, 5.0]])}
    model.eval()  # eval mode: no gradient-accumulation divisor
    assert trainer._compute_loss(model, inputs).item() == pytest.approx(-1 / 3, abs=1e-6)
    trainer.loss_type = "grpo"
    assert trainer._compute_loss(model, inputs).item() == pytest.approx(0.0, abs=1e-6)


def test_reward_parts_and_the_standalone_drr_accuracy():
    row = synthetic_row(0, seed=0, side=112)
    refs = [row["segment_references"]] * 2
    parts = reward_parts([row["reference"], ""], refs, look_bonus=True)
    assert parts["format"].tolist() == [4.0, 0.0] and parts["non_repeat"].tolist() == [1.0, 1.0]
    assert parts["raw"].tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert parts["vision_reasoner"].tolist() == [3.0, 0.0] and parts["count_correct"].tolist() == [1.0, 0.0]
    drr = DistributionRankedReward(capacity=16, initial_zeros=2)
    _, accuracy, _ = make_reward_funcs(drr=drr)
    # Against two zero rows every raw value ranks 1.0: the empty answer scores 3.0 too (the reference's start).
    assert accuracy([row["reference"], ""], segment_references=refs) == [3.0, 3.0]
    drr.update()  # history per column: 0, 0, 1, 0
    assert accuracy([row["reference"], ""], segment_references=refs) == pytest.approx([3.0, 3 * 0.8])  # 3/4 -> 0.8
    assert make_reward_funcs(drr=None)[1]([row["reference"]], segment_references=refs[:1]) == [3.0]


def test_drseg_trains_and_its_history_survives_a_resume(tmp_path, grounding_model, grounding_data):
    model, processor = load_policy(str(grounding_model))
    args = make_args(tmp_path, save_strategy="steps", save_steps=2)
    trainer = Recording(model=model, segment_metric=object_iou, args=args, train_dataset=grounding_data["train"],
                        processing_class=processor)
    trainer.prompts = []
    trainer.train()
    assert trainer.state.global_step == 2
    # The plain prompts reached generation with the Look-to-Confirm instruction.
    assert trainer.prompts and all(p[-1]["content"][-1]["text"].endswith(LOOK_INSTRUCTION) for p in trainer.prompts)
    # A random policy writes no answer: raw metrics (0, 0, 0), ranked 1.0 each against an all-zero history.
    assert logged(trainer, "rewards/accuracy/mean") == [3.0, 3.0]
    for r in (r for r in trainer.state.log_history if "reward" in r):
        parts = r["rewards/format/mean"] + r["rewards/accuracy/mean"] + r["rewards/non_repeat/mean"]
        assert r["reward"] == pytest.approx(parts)
    # 128 initial rows; 8 rollouts enter after each policy update (logged before the step's update).
    assert logged(trainer, "drseg/history_size") == [128.0, 136.0]
    assert trainer.drr.history.shape == (144, 3) and trainer.drr.pending.shape == (0, 3)
    checkpoint = tmp_path / "run" / "checkpoint-2"
    saved = torch.load(checkpoint / DRR_STATE, weights_only=True)
    assert torch.equal(saved["history"], trainer.drr.history)

    resumed = DrSegTrainer(model=load_policy(str(grounding_model))[0], segment_metric=object_iou,
                           args=make_args(tmp_path, max_steps=3), train_dataset=grounding_data["train"],
                           processing_class=processor)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 3
    assert resumed.drr.history.shape == (152, 3)  # 144 restored + 8 (a fresh history would hold 136)

    broken = tmp_path / "broken" / "checkpoint-2"
    shutil.copytree(checkpoint, broken)
    (broken / DRR_STATE).unlink()
    again = DrSegTrainer(model=load_policy(str(grounding_model))[0], segment_metric=object_iou,
                         args=make_args(tmp_path / "broken", max_steps=3), train_dataset=grounding_data["train"],
                         processing_class=processor)
    with pytest.raises(ResumeError, match=DRR_STATE):
        again.train(resume_from_checkpoint=str(broken))


def test_vision_reasoner_reward_with_segment_advantages(tmp_path, grounding_model, grounding_data):
    model, processor = load_policy(str(grounding_model))
    args = make_args(tmp_path, cls=VisionReasonerConfig, estimator="sd_grpo", max_steps=1)
    trainer = Recording(model=model, segment_metric=object_iou, args=args, train_dataset=grounding_data["train"],
                        processing_class=processor)
    trainer.prompts = []
    trainer.train()
    assert trainer.drr is None
    assert not any(LOOK_INSTRUCTION in p[-1]["content"][-1]["text"] for p in trainer.prompts)
    assert logged(trainer, "rewards/accuracy/mean") == [0.0]  # no answer: VisionReasoner accuracy 0
    assert logged(trainer, "segments/K_mean") and "drseg/history_size" not in trainer.state.log_history[0]
