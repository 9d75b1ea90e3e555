"""SegmentGRPOTrainer on the tiny offline LLaVA: it trains, and the loss sees per-segment advantages."""

import statistics

import pytest
import torch
from training_utils import text_length

from segrl.models import load_policy
from segrl.rewards.format import format_reward
from segrl.rewards.scorer import RewardError
from segrl.segments import parse_segments
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.segment_grpo import SegmentGRPOTrainer


class Recording(SegmentGRPOTrainer):
    """Records what TRL's loss receives, and each generation batch's texts, ids and token advantages."""

    seen: list
    generated: list

    def token_advantages(self, scored, out):
        adv = super().token_advantages(scored, out)
        n = out["completion_mask"].sum(1).tolist()
        self.generated.append((list(scored.texts), [row[: int(k)] for row, k in
                                                    zip(out["completion_ids"].tolist(), n)], adv.clone()))
        return adv

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
    trainer.seen, trainer.generated = [], []
    trainer.train()

    logs = trainer.state.log_history
    assert trainer.state.global_step == 2
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in logs if "loss" in r)
    assert any("segments/reward_1/mean" in r and "segments/reward_2/mean" in r for r in logs)
    misattributed = [r["credit/misattributed_token_frac"] for r in logs if "credit/misattributed_token_frac" in r]
    assert misattributed and all(v == 0.0 for v in misattributed)  # zero by construction under sd_grpo
    moved = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert len(moved) >= 0.9 * len(before), f"only {len(moved)}/{len(before)} parameter tensors moved"

    # Hand-computed advantages, independent of the trainer's code (segrl's reward design, issue 15):
    # r[i,k] = text_length of the parsed segment text (0 when missing), c[i] = 0.5 * format,
    # segment reward r'[i,k] = r[i,k] + c[i], A[i,k] = (r' - mean_g r') / (stdev_g r' + 1e-4) over
    # each group of G = 4 consecutive rollouts (generation order); tokens outside every segment
    # carry the rollout advantage of R[i] = mean_k r[i,k] + c[i] when every segment is present,
    # else the mean advantage of the missing segments; token positions by decoding every prefix.
    tok = processor.tokenizer
    labels = ["Answer 1", "Answer 2"]
    checked = distinct_segments = 0
    assert len(trainer.generated) == 2
    for texts, ids_rows, adv in trainer.generated:
        parsed = [parse_segments(t, labels) for t in texts]
        c = [0.5 * f for f in format_reward(texts, [labels] * len(texts))]
        r = [[(text_length([s.text], None)[0] if s.present else 0.0) + ci for s in p.segments]
             for p, ci in zip(parsed, c)]
        R = [sum(row) / 2 for row in r]  # = mean_k r[i,k] + c[i]
        for i, (text, ids) in enumerate(zip(texts, ids_rows)):
            g = range(4 * (i // 4), 4 * (i // 4) + 4)
            seg_adv = [(r[i][k] - statistics.mean(r[j][k] for j in g)) / (statistics.stdev(r[j][k] for j in g) + 1e-4)
                       for k in range(2)]
            missing = [k for k, s in enumerate(parsed[i].segments) if not s.present]
            roll_adv = (R[i] - statistics.mean(R[j] for j in g)) / (statistics.stdev(R[j] for j in g) + 1e-4)
            outside_adv = statistics.mean(seg_adv[k] for k in missing) if missing else roll_adv
            ends = [len(tok.decode(ids[: t + 1], skip_special_tokens=True)) for t in range(len(ids))]
            starts = [0, *ends[:-1]]
            spans = parsed[i].spans
            for t, (a, b) in enumerate(zip(starts, ends)):
                if b <= a or (missing and t == len(ids) - 1):  # rule 4 may put the missing mean there
                    continue
                inside = [k for k, (s0, s1) in enumerate(spans) if s0 <= a and b <= s1]
                outside = all(b <= s0 or a >= s1 for s0, s1 in spans)
                if inside:
                    assert adv[i, t].item() == pytest.approx(seg_adv[inside[0]], abs=1e-4), (i, t, text)
                    checked += 1
                elif outside:
                    assert adv[i, t].item() == pytest.approx(outside_adv, abs=1e-4), (i, t, text)
                    checked += 1
            if abs(seg_adv[0] - seg_adv[1]) > 1e-3 and all(s0 >= 0 for s0, _ in spans):
                distinct_segments += 1
    assert checked > 100
    assert distinct_segments > 0  # segments of one rollout got different advantages
    for batch in trainer.seen:  # and the loss received (B, T) advantages
        assert batch["advantages"].shape == batch["completion_ids"].shape


def test_grpo_gives_one_advantage_per_rollout(tmp_path, colour_warm_model, colour_data):
    path, _ = colour_warm_model
    model, processor = load_policy(str(path))
    two_segment_rows = colour_data.filter(lambda r: len(r["segment_labels"]) == 2)
    trainer = Recording(model=model, segment_metric=text_length,
                        args=make_args(tmp_path, algo="grpo", max_steps=1), train_dataset=two_segment_rows,
                        processing_class=processor)
    trainer.seen, trainer.generated = [], []
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
