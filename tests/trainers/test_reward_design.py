"""One reward for every segment algorithm (issue 15 item 1): the K = 1 identity with a format term, the
missing-segment rule, blend on a real holistic reward. Hand-computed cases, then a short run."""

import math

import pytest
import torch
from training_utils import text_length

from segrl.rewards.format import format_reward
from segrl.trainers.advantages import AdvantageInputs, compose_rewards, compute_advantages, group_normalize
from segrl.trainers.token_mapping import map_advantages_to_tokens

EPS = 1e-4


def token_advantages(algo, scores, mask, present, terms, token_segment, completion_mask, G, holistic=None, **opt):
    """The trainer's advantage step on plain tensors (compose -> estimator -> token mapping)."""
    R, composed = compose_rewards(scores, mask, terms)
    H = None if holistic is None else holistic + terms
    adv = compute_advantages(algo, AdvantageInputs(R, composed, mask, G, H), **opt)
    return map_advantages_to_tokens(adv.rollout, adv.segment, token_segment, segment_mask=mask, present=present,
                                    completion_mask=completion_mask)


# --------------------------------------------------------------------------- the K = 1 identity


def test_issue_duplicate_label_case_no_longer_flips_the_sign():
    # Issue 15: "Answer 1: 17.5\nAnswer 1: 17.5" (duplicate label: format 0.5, r = 0.6) against "Answer 1: 17"
    # (format 1, r = 0.5), format_weight 0.5. R = [0.6 + 0.25, 0.5 + 0.5] = [0.85, 1.0]; mean 0.925, Bessel
    # std 0.106066, so A = -+0.075 / (0.106066 + 1e-4) = -+0.706440 for GRPO and now for SD-GRPO's segment.
    fmt = format_reward(["Answer 1: 17.5\nAnswer 1: 17.5", "Answer 1: 17"], [["Answer 1"]] * 2)
    assert fmt == [0.5, 1.0]
    scores, mask = torch.tensor([[0.6], [0.5]]), torch.ones(2, 1, dtype=torch.bool)
    terms = 0.5 * torch.tensor(fmt)
    # Tokens: rollout 0 = "Answer 1: 17.5" (3 tokens), the duplicate (3 tokens, outside every segment), EOS;
    # rollout 1 = "Answer 1: 17" (3 tokens), EOS, padding.
    token_segment = torch.tensor([[0, 0, 0, -1, -1, -1, -1], [0, 0, 0, -1, -1, -1, -1]])
    completion_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
    present = torch.ones(2, 1, dtype=torch.bool)
    a = 0.075 / (math.sqrt(2 * 0.075**2) + EPS)
    grpo = token_advantages("grpo", scores, mask, present, terms, token_segment, completion_mask, 2)
    sd = token_advantages("sd_grpo", scores, mask, present, terms, token_segment, completion_mask, 2)
    assert grpo[0, 0].item() == pytest.approx(-a, abs=1e-5) and grpo[1, 0].item() == pytest.approx(a, abs=1e-5)
    assert torch.equal(sd, grpo)
    # Before: SD-GRPO's segment saw r only, [0.6, 0.5] -> [+0.706, -0.706], the sign flipped.
    old = group_normalize(scores, 2)
    assert old[0, 0] > 0 > old[1, 0]


def random_k1_batch(seed, B=16, G=4, T=12):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(B, 1, generator=g)
    present = torch.rand(B, 1, generator=g) > 0.25
    scores = torch.where(present, scores, torch.zeros_like(scores))  # a missing segment scores 0
    mask = torch.ones(B, 1, dtype=torch.bool)
    mask[G : 2 * G] = False  # one prompt whose reference cannot be scored
    if seed % 2:
        scores[3, 0] = float("nan")  # a broken reward
    terms = 0.5 * torch.rand(B, generator=g).round(decimals=1)  # format_weight * format
    lengths = torch.randint(2, T + 1, (B,), generator=g)
    completion_mask = (torch.arange(T)[None] < lengths[:, None]).long()
    start = torch.randint(0, 2, (B,), generator=g)  # a preamble token or not
    token_segment = torch.full((B, T), -1)
    for i in range(B):
        if present[i, 0]:
            end = int(lengths[i]) - int(torch.randint(0, 2, (1,), generator=g))  # EOS or truncated
            token_segment[i, int(start[i]) : max(end, int(start[i]) + 1)] = 0
    return scores, mask, present, terms, token_segment, completion_mask, G


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pair", [("grpo", "sd_grpo"), ("dr_grpo", "sd_dr_grpo")])
def test_k1_segment_algorithm_equals_its_parent_bit_for_bit(seed, pair):
    # Format term present, missing segments, an unscorable prompt, a NaN reward, truncated completions.
    batch = random_k1_batch(seed)
    parent, segment = (token_advantages(a, *batch) for a in pair)
    assert torch.equal(parent, segment)
    assert parent.abs().sum() > 0


def test_k1_blend_is_sd_grpo_at_alpha0():
    scores, mask, present, terms, token_segment, completion_mask, G = random_k1_batch(0)
    H = torch.rand(scores.shape[0], generator=torch.Generator().manual_seed(5))
    blend0 = token_advantages("blend", scores, mask, present, terms, token_segment, completion_mask, G, H, alpha=0.0)
    assert torch.equal(blend0, token_advantages("sd_grpo", scores, mask, present, terms, token_segment,
                                                completion_mask, G))


# --------------------------------------------------------------------------- missing segments


def test_missing_segment_advantage_is_carried_by_the_rollouts_own_tokens():
    # Issue 15's group for segment 1: rewards [0.2, 0.1, missing, missing]; segment 2 scores 0.5 in every
    # rollout. format_weight 0: r'_1 = [0.2, 0.1, 0, 0], mean 0.075, deviations [0.125, 0.025, -0.075, -0.075],
    # Bessel std sqrt(0.0275 / 3) = 0.0957427, so A_1 = dev / 0.0958427 = [1.30422, 0.26084, -0.78253, -0.78253];
    # A_2 = 0 (no variance). R = [0.35, 0.30, 0.25, 0.25], mean 0.2875, deviations [0.0625, 0.0125, ...], std
    # sqrt(0.006875 / 3) = 0.0478714, A_R = [0.0625, 0.0125] / 0.0479714 = [1.30286, 0.26057].
    scores = torch.tensor([[0.2, 0.5], [0.1, 0.5], [0.0, 0.5], [0.0, 0.5]])
    mask = torch.ones(4, 2, dtype=torch.bool)
    present = torch.tensor([[True, True], [True, True], [False, True], [False, True]])
    # Rollouts 0-1: segment 1 (2 tokens), a separator, segment 2 (2 tokens), EOS. Rollout 2: segment 2 (2 tokens)
    # then EOS. Rollout 3: truncated inside segment 2 (no EOS, no token outside a segment).
    token_segment = torch.tensor([[0, 0, -1, 1, 1, -1], [0, 0, -1, 1, 1, -1], [1, 1, -1, -1, -1, -1],
                                  [1, 1, 1, 1, 1, 1]])
    completion_mask = torch.tensor([[1] * 6, [1] * 6, [1, 1, 1, 0, 0, 0], [1] * 6])
    out = token_advantages("sd_grpo", scores, mask, present, torch.zeros(4), token_segment, completion_mask, 4)
    a1, a2, a3 = 0.125 / 0.0958427, 0.025 / 0.0958427, -0.075 / 0.0958427
    A_R = [0.0625 / 0.0479714, 0.0125 / 0.0479714]
    assert out[0].tolist() == pytest.approx([a1, a1, A_R[0], 0, 0, A_R[0]], abs=1e-4)  # complete: outside = A_R
    assert out[1].tolist() == pytest.approx([a2, a2, A_R[1], 0, 0, A_R[1]], abs=1e-4)
    # Rule 3: rollout 2 omitted segment 1, so its EOS (the token written instead) carries A_1 = -0.78253.
    assert out[2, :3].tolist() == pytest.approx([0, 0, a3], abs=1e-4)
    # Rule 4: rollout 3 has no token outside its segments, so its last token carries A_1.
    assert out[3].tolist() == pytest.approx([0, 0, 0, 0, 0, a3], abs=1e-4)
    # Every rollout that omitted the segment has negative advantage mass; without the rule it had none.
    assert (out[2:] * completion_mask[2:]).sum(1).lt(0).all()
    plain = map_advantages_to_tokens(*(lambda a: (a.rollout, a.segment))(compute_advantages(
        "sd_grpo", AdvantageInputs(*compose_rewards(scores, mask, torch.zeros(4)), mask, 4))), token_segment)
    assert (plain[3] * completion_mask[3]).sum() == 0


def test_omission_is_also_penalised_on_present_segments_through_the_format_term():
    # Same batch with format_weight 0.5: rollouts 2-3 wrote 1 of 2 labels (format 0.5), rollouts 0-1 both
    # (format 1). Segment 2 scores 0.5 everywhere, so r'_2 = [1.0, 1.0, 0.75, 0.75]: mean 0.875, Bessel std
    # 0.144338, A_2 = +-0.125 / 0.144438 = +-0.865426 -- the present segment of an incomplete rollout is pushed
    # down. r'_1 = [0.7, 0.6, 0.25, 0.25] -> A_1 = [1.06554, 0.63933, -0.85243, -0.85243] (std 0.234521).
    scores = torch.tensor([[0.2, 0.5], [0.1, 0.5], [0.0, 0.5], [0.0, 0.5]])
    mask = torch.ones(4, 2, dtype=torch.bool)
    present = torch.tensor([[True, True], [True, True], [False, True], [False, True]])
    token_segment = torch.tensor([[0, -1, 1, -1], [0, -1, 1, -1], [1, -1, -1, -1], [1, -1, -1, -1]])
    completion_mask = torch.tensor([[1] * 4, [1] * 4, [1, 1, 0, 0], [1, 1, 0, 0]])
    out = token_advantages("sd_grpo", scores, mask, present, 0.5 * torch.tensor([1.0, 1.0, 0.5, 0.5]),
                           token_segment, completion_mask, 4)
    assert out[:, 2][:2].tolist() == pytest.approx([0.865426] * 2, abs=1e-5)
    assert out[2:, 0].tolist() == pytest.approx([-0.865426] * 2, abs=1e-5)
    assert out[2:, 1].tolist() == pytest.approx([-0.85243] * 2, abs=1e-5)  # EOS carries A_1 of the missing one
    assert out[:2, 0].tolist() == pytest.approx([1.06554, 0.63933], abs=1e-5)


def test_mapping_without_presence_keeps_the_plain_rule_and_checks_shapes():
    rollout, segment = torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 3.0], [4.0, 5.0]])
    token_segment = torch.tensor([[0, -1, 1], [1, 1, -1]])
    assert map_advantages_to_tokens(rollout, segment, token_segment).tolist() == [[2, 1, 3], [5, 5, -1]]
    # An unscorable segment's tokens carry the rollout advantage (rule 2).
    mask = torch.tensor([[True, False], [True, True]])
    assert map_advantages_to_tokens(rollout, segment, token_segment, segment_mask=mask).tolist() == [
        [2, 1, 1], [5, 5, -1]]
    with pytest.raises(ValueError, match="present must be"):
        map_advantages_to_tokens(rollout, segment, token_segment, segment_mask=mask, present=mask[:1],
                                 completion_mask=torch.ones(2, 3))


# --------------------------------------------------------------------------- blend on a holistic reward


def test_blend_alpha1_is_grpo_on_the_holistic_reward_including_an_unscorable_segment():
    g = torch.Generator().manual_seed(3)
    B, G, K, T = 8, 4, 3, 10
    scores = torch.rand(B, K, generator=g)
    mask = torch.ones(B, K, dtype=torch.bool)
    mask[:G, 1] = False  # segment 2 of the first prompt cannot be scored
    present = torch.rand(B, K, generator=g) > 0.2
    scores = torch.where(present, scores, torch.zeros_like(scores))
    terms = 0.5 * torch.rand(B, generator=g)
    H = torch.rand(B, generator=g)  # the whole-answer metric, independent of the segment scores
    token_segment = torch.randint(-1, K, (B, T), generator=g)
    token_segment[0, :4] = 1  # tokens of the unscorable segment
    present[0, 1] = True
    completion_mask = torch.ones(B, T, dtype=torch.long)
    blend1 = token_advantages("blend", scores, mask, present, terms, token_segment, completion_mask, G, H, alpha=1.0)
    # GRPO whose rollout reward is the holistic one, H + format term, on every token:
    grpo_h = group_normalize(H + terms, G)[:, None].expand(B, T)
    assert torch.equal(blend1, grpo_h)
    assert not torch.allclose(blend1, token_advantages("grpo", scores, mask, present, terms, token_segment,
                                                       completion_mask, G))  # H is not the mean of the r_k
    # alpha = 0.5: segment k's tokens get z over the group of 0.5 * (H + c) + 0.5 * (r_k + c).
    half = token_advantages("blend", scores, mask, present, terms, token_segment, completion_mask, G, H, alpha=0.5)
    k = 2
    expected = group_normalize(0.5 * (H + terms) + 0.5 * (scores[:, k] + terms), G)
    for i in range(B):
        for t in range(T):
            if token_segment[i, t] == k and present[i, k]:
                assert half[i, t].item() == pytest.approx(expected[i].item(), abs=1e-5)


# --------------------------------------------------------------------------- a run


def test_k1_grpo_and_sd_grpo_runs_are_bitwise_equal(tmp_path, colour_warm_model, colour_data):
    from segrl.models import load_policy
    from segrl.trainers.config import SegmentGRPOConfig
    from segrl.trainers.segment_grpo import SegmentGRPOTrainer

    path, _ = colour_warm_model
    one_segment = colour_data.filter(lambda r: len(r["segment_labels"]) == 1)
    runs = {}
    for algo in ("grpo", "sd_grpo"):
        model, processor = load_policy(str(path))
        args = SegmentGRPOConfig(
            output_dir=str(tmp_path / algo), algo=algo, num_generations=4, per_device_train_batch_size=8,
            max_completion_length=12, max_steps=3, learning_rate=5e-3, temperature=1.0, logging_steps=1,
            format_weight=0.5, save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=0)
        trainer = SegmentGRPOTrainer(model=model, segment_metric=text_length, args=args, train_dataset=one_segment,
                                     processing_class=processor)
        trainer.train()
        runs[algo] = [(r["reward"], r["rewards/format/mean"], r["loss"]) for r in trainer.state.log_history
                      if "reward" in r]
    assert len(runs["grpo"]) == 3
    assert runs["grpo"] == runs["sd_grpo"]  # bitwise: rewards, format, loss at every step
    assert len({r[0] for r in runs["grpo"]}) > 1  # the policy moved, so later steps test the update too


def test_holistic_metric_config_is_checked():
    from segrl.trainers.config import SegmentGRPOConfig

    cfg = SegmentGRPOConfig(output_dir="x", algo="blend", holistic_metric="bleu4", use_cpu=True, bf16=False)
    assert cfg.holistic_metric == "bleu4"
    with pytest.raises(ValueError, match="read only by blend"):
        SegmentGRPOConfig(output_dir="x", algo="sd_grpo", holistic_metric="bleu4", use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="not a segment reward"):
        SegmentGRPOConfig(output_dir="x", algo="blend", holistic_metric="nope", use_cpu=True, bf16=False)


def test_blend_trainer_scores_the_whole_answer_and_alpha1_gives_grpo_on_it(tmp_path, colour_warm_model, colour_data):
    from segrl.models import load_policy
    from segrl.rewards.scorer import joined_answer
    from segrl.trainers.config import SegmentGRPOConfig
    from segrl.trainers.segment_grpo import SegmentGRPOTrainer

    class Recording(SegmentGRPOTrainer):
        def token_advantages(self, scored, out):
            adv = super().token_advantages(scored, out)
            self.seen.append((scored, adv.clone(), out["completion_mask"].clone()))
            return adv

    def whole_length(predictions, references):  # a holistic metric unlike the mean of text_length per segment
        return [min(len(p), 30) / 30 for p in predictions]

    path, _ = colour_warm_model
    model, processor = load_policy(str(path))
    two = colour_data.filter(lambda r: len(r["segment_labels"]) == 2)
    args = SegmentGRPOConfig(output_dir=str(tmp_path / "b"), algo="blend", alpha=1.0, num_generations=4,
                             per_device_train_batch_size=8, max_completion_length=16, max_steps=1, learning_rate=5e-3,
                             logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=0)
    trainer = Recording(model=model, segment_metric=text_length, args=args, train_dataset=two,
                        processing_class=processor, holistic_metric=whole_length)
    trainer.seen = []
    trainer.train()
    (scored, adv, mask), = trainer.seen
    H = torch.tensor(whole_length([joined_answer(p) for p in scored.scores.parsed], None))
    fmt = scored.reward_columns[:, 1]
    assert torch.allclose(scored.holistic_scores, H + 0.5 * fmt)
    expected = group_normalize(scored.holistic_scores, 4)
    for i in range(adv.shape[0]):  # alpha = 1: GRPO on H' on every token of the rollout
        n = int(mask[i].sum())
        assert torch.allclose(adv[i, :n], expected[i].expand(n), atol=1e-6)
