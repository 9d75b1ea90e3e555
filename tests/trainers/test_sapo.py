"""SAPO on the tiny offline LLaVA: it trains, the critic learns, and resume restores the critic."""

import shutil

import pytest
import torch
from training_utils import KillAt, text_length

from segrl.config import ConfigError, ExperimentConfig
from segrl.models import load_policy
from segrl.segments import parse_segments
from segrl.trainers import registry
from segrl.trainers.checkpoint import MARKER, LatestCheckpointMarker, ResumeError, resolve_resume
from segrl.trainers.sapo import CRITIC_DIR, SAPOConfig, SAPOTrainer
from segrl.trainers.token_mapping import assign_tokens_to_segments, token_char_offsets


class Recording(SAPOTrainer):
    """Records the batch SAPO's loss receives."""

    seen: list

    def _compute_loss(self, model, inputs):
        keys = ("advantages", "completion_ids", "completion_mask", "sapo_segment_ids", "sapo_segment_ends")
        self.seen.append({k: inputs[k].detach().clone() for k in keys})
        return super()._compute_loss(model, inputs)


def make_args(out, **kw):
    base = dict(
        output_dir=str(out),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=16,
        max_steps=4,
        learning_rate=5e-3,
        critic_learning_rate=5e-3,
        temperature=1.0,
        logging_steps=1,
        save_strategy="steps",
        save_steps=2,
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    base.update(kw)
    return SAPOConfig(**base)


def train(sft, data, out, *, kill_at=None, resume=None, **kw):
    model, processor = load_policy(str(sft))
    trainer = Recording(
        model=model,
        segment_metric=text_length,
        args=make_args(out, **kw),
        train_dataset=data,
        processing_class=processor,
        callbacks=[LatestCheckpointMarker()],
    )
    trainer.seen = []
    critic_start = {n: p.detach().clone() for n, p in trainer.unwrapped_critic().named_parameters()}
    if kill_at:
        trainer.add_callback(KillAt(kill_at))
    trainer.train(resume_from_checkpoint=resume)
    return trainer, critic_start


def max_diff(a, b):
    return max((a[n] - b[n]).abs().max().item() for n in a)


def test_config_defaults_checks_and_registry(tmp_path):
    args = SAPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    # SAPO Table 7 / reference script values
    assert (args.beta, args.epsilon, args.epsilon_high, args.dual_clip_c) == (0.001, 0.2, 0.28, 3.0)
    assert (args.gae_gamma, args.gae_lambda, args.entropy_top_frac, args.advantage_clip) == (
        1.0,
        0.99,
        0.30,
        5.0,
    )
    assert args.loss_type == "bnpo" and args.algo == "sapo"
    with pytest.raises(ValueError, match="segmentation must be one of entropy, newline, task"):
        SAPOConfig(output_dir="x", segmentation="words", use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match=r"gae_lambda=1\.5.*dual_clip_c=1\.0"):
        SAPOConfig(output_dir="x", gae_lambda=1.5, dual_clip_c=1.0, use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="does not use delta, top_entropy_quantile"):
        SAPOConfig(output_dir="x", delta=2.0, top_entropy_quantile=0.5, use_cpu=True, bf16=False)
    # Before: accepted and ignored (SAPOConfig skipped its parent's validation and never read them).
    for field, value in (("alpha", 0.3), ("advantage_eps", 1e-3), ("dump_advantages", True)):
        with pytest.raises(ValueError, match=f"algo='sapo' does not use {field}"):
            SAPOConfig(output_dir="x", use_cpu=True, bf16=False, **{field: value})
    with pytest.raises(ValueError, match="needs scale_rewards='group'"):
        SAPOConfig(output_dir="x", scale_rewards="none", use_cpu=True, bf16=False)

    assert registry.trainer_class("sapo") is SAPOTrainer and registry.config_class("sapo") is SAPOConfig
    cfg = ExperimentConfig(
        output_dir=str(tmp_path), train={"algo": "sapo", "segmentation": "task"}
    ).grpo_config()
    assert isinstance(cfg, SAPOConfig) and cfg.segmentation == "task"
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['segmentation'\] \(not SegmentGRPOConfig"):
        ExperimentConfig(
            output_dir=str(tmp_path), train={"algo": "grpo", "segmentation": "task"}
        ).grpo_config()


def test_sapo_trains_the_critic_and_resume_reproduces_it(tmp_path, colour_warm_model, colour_data):
    sft, _ = colour_warm_model
    straight, critic_start = train(sft, colour_data, tmp_path / "a")
    logs = straight.state.log_history
    assert straight.state.global_step == 4
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in logs if "loss" in r)
    assert all(r["critic/value_loss"] > 0 for r in logs if "critic/value_loss" in r)
    assert any(r.get("sapo/kl_in_reward", 0) > 0 for r in logs)  # beta = 0.001: the reference model is used

    # The critic learned: (nearly) every parameter tensor moved from its initial value (the policy's backbone).
    critic = dict(straight.unwrapped_critic().named_parameters())
    moved = [n for n in critic if not torch.equal(critic[n], critic_start[n])]
    assert len(moved) >= 0.9 * len(critic), f"only {len(moved)}/{len(critic)} critic tensors moved"
    assert not torch.equal(critic["value_head.weight"], critic_start["value_head.weight"])

    # One advantage per entropy segment reached the loss, and the last valid token ends a segment.
    for batch in straight.seen:
        adv, ids, mask = batch["advantages"], batch["sapo_segment_ids"], batch["completion_mask"].bool()
        assert adv.shape == batch["completion_ids"].shape
        for i in range(adv.shape[0]):
            n = int(mask[i].sum())
            assert bool(batch["sapo_segment_ends"][i, n - 1]) and (ids[i, n:] == -1).all()
            for m in ids[i, :n].unique().tolist():
                assert len(set(adv[i, :n][ids[i, :n] == m].tolist())) == 1
    assert any(len(set(b["advantages"][i].tolist())) > 2 for b in straight.seen for i in range(8))

    # Checkpoint round trip: 2 steps, a stop, a resume and 2 more == 4 straight (policy, critic, rewards).
    first, _ = train(sft, colour_data, tmp_path / "b", kill_at=2)
    assert (tmp_path / "b" / MARKER).read_text().strip() == "checkpoint-2"
    checkpoint = resolve_resume("auto", tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoint-2" / CRITIC_DIR).iterdir()) == [
        "model.safetensors",
        "optimizer.pt",
    ]
    resumed, _ = train(sft, colour_data, tmp_path / "b", resume=checkpoint)
    rewards = [[r["reward"] for r in t.state.log_history if "reward" in r] for t in (straight, resumed)]
    assert rewards[1] == pytest.approx(rewards[0], abs=1e-6)
    assert max_diff(dict(straight.model.named_parameters()), dict(resumed.model.named_parameters())) <= 1e-6
    assert max_diff(critic, dict(resumed.unwrapped_critic().named_parameters())) <= 1e-6
    step = {k: v["step"] for k, v in resumed.critic_optimizer.state_dict()["state"].items()}
    assert set(float(s) for s in step.values()) == {
        4.0
    }  # the critic's Adam moments were restored, not restarted

    # A checkpoint without the critic's optimizer state cannot be resumed from.
    broken = tmp_path / "broken" / "checkpoint-2"
    shutil.copytree(tmp_path / "b" / "checkpoint-2", broken)
    (broken / CRITIC_DIR / "optimizer.pt").unlink()
    with pytest.raises(ResumeError, match="missing: critic/optimizer.pt"):
        train(sft, colour_data, tmp_path / "broken", resume=str(broken))
    del first


@pytest.mark.parametrize("segmentation", ["task", "newline"])
def test_task_and_newline_segments(tmp_path, colour_warm_model, colour_data, segmentation):
    sft, _ = colour_warm_model
    two = colour_data.filter(lambda r: len(r["segment_labels"]) == 2)
    trainer, _ = train(
        sft, two, tmp_path / segmentation, max_steps=1, save_strategy="no", segmentation=segmentation
    )
    tok = trainer.processing_class.tokenizer
    checked = 0
    for batch in trainer.seen:
        for i in range(batch["completion_ids"].shape[0]):
            n = int(batch["completion_mask"][i].sum())
            row = batch["completion_ids"][i, :n].tolist()
            text = tok.decode(row, skip_special_tokens=True)
            spans = token_char_offsets(tok, row, text)
            ends = batch["sapo_segment_ends"][i, :n].tolist()
            if segmentation == "task":
                seg_of = assign_tokens_to_segments(
                    spans, parse_segments(text, ["Answer 1", "Answer 2"]).spans
                )
                expected = [seg_of[t] != seg_of[t + 1] for t in range(n - 1)] + [True]
            else:
                expected = ["\n" in text[s:e] for s, e in spans[:-1]] + [True]
            assert ends == expected, (text, ends, expected)
            checked += sum(expected) > 1  # a row with more than one segment
    assert checked > 0
