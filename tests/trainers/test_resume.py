"""Resume that reproduces: 4 steps == 2 steps + kill + resume + 2 steps, to 1e-6 on CPU."""

import pytest
from training_utils import KillAt, text_length

from segrl.models import load_policy
from segrl.trainers.checkpoint import MARKER, LatestCheckpointMarker, ResumeError, resolve_resume
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.segment_grpo import SegmentGRPOTrainer


def train(model_dir, data, out, *, kill_at=None, resume=None):
    model, processor = load_policy(str(model_dir))
    args = SegmentGRPOConfig(
        output_dir=str(out), algo="sd_grpo", num_generations=4, per_device_train_batch_size=8, max_steps=4,
        max_completion_length=12, learning_rate=5e-3, logging_steps=1, save_strategy="steps", save_steps=2,
        report_to="none", use_cpu=True, bf16=False, seed=0,
    )
    trainer = SegmentGRPOTrainer(model=model, segment_metric=text_length, args=args, train_dataset=data,
                                 processing_class=processor, callbacks=[LatestCheckpointMarker()])
    if kill_at:
        trainer.add_callback(KillAt(kill_at))
    trainer.train(resume_from_checkpoint=resume)
    rewards = [r["reward"] for r in trainer.state.log_history if "reward" in r]
    return trainer.model, rewards


def test_resume_reproduces_the_uninterrupted_run(tmp_path, colour_warm_model, colour_data):
    sft, _ = colour_warm_model
    straight, rewards_straight = train(sft, colour_data, tmp_path / "a")
    _, first_half = train(sft, colour_data, tmp_path / "b", kill_at=2)
    assert (tmp_path / "b" / MARKER).read_text().strip() == "checkpoint-2"
    checkpoint = resolve_resume("auto", tmp_path / "b")
    resumed, rewards_resumed = train(sft, colour_data, tmp_path / "b", resume=checkpoint)

    assert len(rewards_straight) == 4 and first_half == rewards_straight[:2]
    assert rewards_resumed == pytest.approx(rewards_straight, abs=1e-6)  # the log history is restored too
    start = dict(load_policy(str(sft))[0].named_parameters())
    a, b = dict(straight.named_parameters()), dict(resumed.named_parameters())
    assert max((a[n] - b[n]).abs().max().item() for n in a) <= 1e-6
    assert max((a[n] - start[n]).abs().max().item() for n in a) > 1e-4  # training did move the weights


def test_incomplete_checkpoint_fails_loudly(tmp_path):
    assert resolve_resume("auto", tmp_path) is None  # nothing saved yet: a fresh start
    assert resolve_resume("off", tmp_path) is None
    ckpt = tmp_path / "checkpoint-2"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text("{}")
    (tmp_path / MARKER).write_text("checkpoint-2\n")
    with pytest.raises(ResumeError, match="optimizer.pt.*scheduler.pt.*model weights.*rng_state.pth"):
        resolve_resume("auto", tmp_path)
    with pytest.raises(ResumeError, match="does not exist"):
        resolve_resume(str(tmp_path / "checkpoint-9"), tmp_path)
