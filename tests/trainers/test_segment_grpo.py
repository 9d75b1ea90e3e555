"""SegmentGRPOTrainer on the tiny offline LLaVA: it trains, and the loss sees per-segment advantages."""

import pytest
import torch
from training_utils import text_length

from segrl.models import load_policy
from segrl.rewards.scorer import RewardError
from segrl.segments import parse_segments
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.segment_grpo import SegmentGRPOTrainer
from segrl.trainers.token_mapping import assign_tokens_to_segments, token_char_offsets


class Recording(SegmentGRPOTrainer):
    """Records what TRL's loss receives."""

    seen: list

    def _compute_loss(self, model, inputs):
        self.seen.append({k: inputs[k].detach().clone() for k in ("advantages", "completion_ids", "completion_mask")})
        return super()._compute_loss(model, inputs)


def make_args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "run"), algo="sd_grpo", num_generations=4, per_device_train_batch_size=8,
        max_completion_length=16, max_steps=2, learning_rate=5e-3, temperature=1.0, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=0,
    )
    base.update(kw)
    return SegmentGRPOConfig(**base)




def test_two_steps_hand_segment_advantages_to_the_loss(tmp_path, colour_warm_model, colour_data):
    path, _ = colour_warm_model
    model, processor = load_policy(str(path))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    two_segment_rows = colour_data.filter(lambda r: len(r["segment_labels"]) == 2)
    trainer = Recording(model=model, segment_metric=text_length, args=make_args(tmp_path),
                        train_dataset=two_segment_rows, processing_class=processor)
    trainer.seen = []
    trainer.train()

    logs = trainer.state.log_history
    assert trainer.state.global_step == 2
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in logs if "loss" in r)
    assert any("segments/reward_1/mean" in r and "segments/reward_2/mean" in r for r in logs)
    misattributed = [r["credit/misattributed_token_frac"] for r in logs if "credit/misattributed_token_frac" in r]
    assert misattributed and all(v == 0.0 for v in misattributed)  # zero by construction under sd_grpo
    moved = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert len(moved) >= 0.9 * len(before), f"only {len(moved)}/{len(before)} parameter tensors moved"

    tok = processor.tokenizer
    distinct_segments = 0
    for batch in trainer.seen:
        adv, ids, mask = batch["advantages"], batch["completion_ids"], batch["completion_mask"]
        assert adv.shape == ids.shape  # (B, T) reached TRL's loss
        for i in range(ids.shape[0]):
            n = int(mask[i].sum())
            row_ids = ids[i, :n].tolist()
            text = tok.decode(row_ids, skip_special_tokens=True)
            spans = parse_segments(text, ["Answer 1", "Answer 2"]).spans
            seg_of = assign_tokens_to_segments(token_char_offsets(tok, row_ids, text), spans)
            values = {}
            for t, k in enumerate(seg_of):
                values.setdefault(k, set()).add(round(float(adv[i, t]), 6))
            assert all(len(v) == 1 for v in values.values()), values  # one advantage per segment
            if 0 in values and 1 in values and values[0] != values[1]:
                distinct_segments += 1
    # Tokens of different segments of the same rollout received different advantages.
    assert distinct_segments > 0


def test_grpo_gives_one_advantage_per_rollout(tmp_path, colour_warm_model, colour_data):
    path, _ = colour_warm_model
    model, processor = load_policy(str(path))
    two_segment_rows = colour_data.filter(lambda r: len(r["segment_labels"]) == 2)
    trainer = Recording(model=model, segment_metric=text_length,
                        args=make_args(tmp_path, algo="grpo", max_steps=1), train_dataset=two_segment_rows,
                        processing_class=processor)
    trainer.seen = []
    trainer.train()
    logs = trainer.state.log_history
    assert any(r.get("credit/misattributed_token_frac", 0) > 0 for r in logs)  # one scalar misleads some segments
    for batch in trainer.seen:
        for i in range(batch["advantages"].shape[0]):
            n = int(batch["completion_mask"][i].sum())
            assert len(set(batch["advantages"][i, :n].tolist())) == 1


def test_reward_crash_is_recorded_and_stops_training(tmp_path, colour_warm_model, colour_data):
    path, _ = colour_warm_model
    model, processor = load_policy(str(path))

    def broken(predictions, references):
        raise RuntimeError("parser bug")

    trainer = SegmentGRPOTrainer(model=model, segment_metric=broken, args=make_args(tmp_path, max_steps=1),
                                 train_dataset=colour_data, processing_class=processor)
    with pytest.raises(RewardError, match="reward_failure.jsonl"):
        trainer.train()
    dump = (tmp_path / "run" / "reward_failure.jsonl").read_text().splitlines()
    assert len(dump) == 8 and "parser bug" in dump[0]


def test_config_checks():
    with pytest.raises(ValueError, match="known: blend"):
        SegmentGRPOConfig(output_dir="x", algo="nope", use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="dr_grpo"):
        SegmentGRPOConfig(output_dir="x", algo="sd_dr_grpo", loss_type="grpo", use_cpu=True, bf16=False)
    cfg = SegmentGRPOConfig(output_dir="x", algo="sd_dr_grpo", use_cpu=True, bf16=False)
    assert (cfg.loss_type, cfg.scale_rewards) == ("dr_grpo", "none")
    assert SegmentGRPOConfig(output_dir="x", algo="sd_grpo", use_cpu=True, bf16=False).loss_type == "grpo"


def test_nonfinite_gradient_skips_the_optimizer_step(tmp_path, colour_warm_model, colour_data):
    path, _ = colour_warm_model
    model, processor = load_policy(str(path))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    class Poisoned(SegmentGRPOTrainer):
        def _compute_loss(self, model, inputs):
            return super()._compute_loss(model, inputs) * float("nan")

    two_segment_rows = colour_data.filter(lambda r: len(r["segment_labels"]) == 2)
    trainer = Poisoned(model=model, segment_metric=text_length, args=make_args(tmp_path, max_steps=2),
                       train_dataset=two_segment_rows, processing_class=processor)
    trainer.train()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # nothing moved
    skipped = [r["nonfinite/grad_step_skipped"] for r in trainer.state.log_history if "nonfinite/grad_step_skipped" in r]
    assert skipped == [1.0, 1.0]


def test_nonfinite_reward_is_counted_and_left_out_of_its_group(tmp_path, colour_warm_model, colour_data):
    path, _ = colour_warm_model
    model, processor = load_policy(str(path))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def nan_first(predictions, references):  # NaN for the first scored segment of each batch
        return [float("nan")] + [float(len(p)) for p in predictions[1:]]

    two_segment_rows = colour_data.filter(lambda r: len(r["segment_labels"]) == 2)
    args = make_args(tmp_path, max_steps=1, dump_advantages=True)
    trainer = SegmentGRPOTrainer(model=model, segment_metric=nan_first, args=args,
                                 train_dataset=two_segment_rows, processing_class=processor)
    trainer.train()
    log = next(r for r in trainer.state.log_history if "nonfinite/segment_rewards" in r)
    assert log["nonfinite/segment_rewards"] == 1.0
    assert log["nonfinite/token_advantages"] == 0.0
    assert log["nonfinite/grad_step_skipped"] == 0.0
    step = torch.load(tmp_path / "run" / "advantages" / "step0_rank0.pt")
    bad = torch.isnan(step["segment_rewards"]).nonzero().tolist()
    assert len(bad) == 1
    i, k = bad[0]
    assert step["segment"][i, k] == 0.0 and torch.isfinite(step["segment"]).all()
    assert torch.isnan(step["holistic"][i]) and step["rollout"][i] == 0.0  # left out of its group too
    others = [j for j in range(len(step["rollout"])) if j // 4 == i // 4 and j != i]
    assert step["segment"][others, k].abs().sum() > 0  # the group's other rollouts still get credit
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())  # the rest trained
