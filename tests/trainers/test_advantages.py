"""Advantage estimators against hand-computed values and a plain-loop reference."""

import math

import pytest
import torch
from trl.trainer.utils import nanstd

from segrl.registry import Registry
from segrl.trainers.advantages import (
    EPS,
    ESTIMATORS,
    AdvantageInputs,
    blend_rewards,
    compute_advantages,
    group_normalize,
)
from segrl.trainers.token_mapping import map_advantages_to_tokens

# For a pair (a, b): mean (a+b)/2, Bessel std |a-b|/sqrt(2), so A_a = ((a-b)/2) / (|a-b|/sqrt(2) + eps).
PAIR = 0.5 / (math.sqrt(0.5) + EPS)  # = 0.707006...


def inputs(seg, mask=None, hol=None, G=2):
    seg = torch.tensor(seg, dtype=torch.float32)
    mask = torch.ones_like(seg, dtype=torch.bool) if mask is None else torch.tensor(mask)
    hol = seg.mean(1) if hol is None else torch.tensor(hol, dtype=torch.float32)
    return AdvantageInputs(hol, seg, mask, G)


def test_sd_grpo_hand_computed_G2_with_masked_segment():
    # B=4, G=2 (two prompts), K=3; the second prompt has only 2 segments (k=2 masked).
    b = inputs(
        [[1.0, 0.5, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 9.0], [0.0, 1.0, -9.0]],
        mask=[[True, True, True], [True, True, True], [True, True, False], [True, True, False]],
    )
    a = compute_advantages("sd_grpo", b).segment
    expected = torch.tensor(
        [[PAIR, 0.0, -PAIR], [-PAIR, 0.0, PAIR], [PAIR, -PAIR, 0.0], [-PAIR, PAIR, 0.0]]
    )
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-6)


def test_sd_grpo_hand_computed_G4():
    # One group of 4. Segment 0 rewards [1,0,0,0]: mean .25, deviations [.75,-.25,-.25,-.25],
    # Bessel var = (.5625 + 3*.0625)/3 = .25, std .5 -> A = dev / (.5 + 1e-4).
    # Segment 1 rewards [1,1,0,0]: mean .5, dev [.5,.5,-.5,-.5], var = 1/3, std .57735.
    # Segment 2: the 4th rollout's reference was unscorable (masked): stats over [0, 1, 1]:
    # mean 2/3, dev [-2/3, 1/3, 1/3], var = (4/9 + 1/9 + 1/9)/2 = 1/3.
    b = inputs(
        [[1, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 5]],
        mask=[[True] * 3, [True] * 3, [True] * 3, [True, True, False]],
        G=4,
    )
    a = compute_advantages("sd_grpo", b).segment
    s1 = math.sqrt(1 / 3) + EPS
    expected = torch.tensor(
        [
            [0.75 / 0.5001, 0.5 / s1, (-2 / 3) / s1],
            [-0.25 / 0.5001, 0.5 / s1, (1 / 3) / s1],
            [-0.25 / 0.5001, -0.5 / s1, (1 / 3) / s1],
            [-0.25 / 0.5001, -0.5 / s1, 0.0],
        ]
    )
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-6)


def test_dr_variants_do_not_divide_by_std():
    b = inputs([[1, 1], [0, 1], [0, 0], [0, 0]], hol=[2.0, 1.0, 0.0, 0.0], G=4)
    out = compute_advantages("sd_dr_grpo", b)
    torch.testing.assert_close(out.segment, torch.tensor([[0.75, 0.5], [-0.25, 0.5], [-0.25, -0.5], [-0.25, -0.5]]))
    torch.testing.assert_close(out.rollout, torch.tensor([1.25, 0.25, -0.75, -0.75]))
    torch.testing.assert_close(compute_advantages("dr_grpo", b).rollout, out.rollout)


def test_missing_segment_reward_zero_counts_in_group_statistics():
    # Rollout 1 did not write segment 0 (scorer gives reward 0, mask stays True): the
    # group mean of segment 0 is (1 + 0)/2, not 1, so rollout 0 gets a positive advantage.
    b = inputs([[1.0], [0.0]], mask=[[True], [True]])
    a = compute_advantages("sd_grpo", b).segment
    torch.testing.assert_close(a, torch.tensor([[PAIR], [-PAIR]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k1_sd_grpo_equals_grpo(seed):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(8, 1, generator=g).round(decimals=1)
    b = AdvantageInputs(r[:, 0], r, torch.ones_like(r, dtype=torch.bool), 4)
    torch.testing.assert_close(compute_advantages("sd_grpo", b).segment[:, 0], compute_advantages("grpo", b).rollout)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blend_alpha1_is_exactly_grpo_on_every_token(seed):
    g = torch.Generator().manual_seed(seed)
    seg = torch.rand(8, 3, generator=g)
    hol = torch.rand(8, generator=g)
    mask = torch.ones(8, 3, dtype=torch.bool)
    mask[4:, 2] = False
    b = AdvantageInputs(hol, seg, mask, 4)
    blended = compute_advantages("blend", b, alpha=1.0)
    grpo = compute_advantages("grpo", b)
    token_segment = torch.randint(-1, 2, (8, 11), generator=g)  # segments 0/1 (present everywhere) and outside
    assert torch.equal(
        map_advantages_to_tokens(blended.rollout, blended.segment, token_segment),
        map_advantages_to_tokens(grpo.rollout, None, token_segment),
    )


def test_blend_alpha0_is_sd_grpo_and_interpolates_rewards():
    b = inputs([[1.0, 0.0], [0.0, 0.5]], hol=[0.2, 0.4])
    torch.testing.assert_close(
        compute_advantages("blend", b, alpha=0.0).segment, compute_advantages("sd_grpo", b).segment
    )
    torch.testing.assert_close(
        blend_rewards(b.holistic_rewards, b.segment_rewards, 0.25),
        torch.tensor([[0.25 * 0.2 + 0.75 * 1.0, 0.25 * 0.2], [0.25 * 0.4, 0.25 * 0.4 + 0.75 * 0.5]]),
    )
    with pytest.raises(ValueError, match="alpha"):
        blend_rewards(b.holistic_rewards, b.segment_rewards, 1.5)


def test_changing_segment_2_leaves_segment_1_unchanged():
    base = [[1.0, 0.0, 0.3], [0.0, 1.0, 0.1], [0.5, 0.5, 0.2], [0.2, 0.9, 0.0]]
    changed = [row[:] for row in base]
    for row, v in zip(changed, [9.0, -3.0, 0.0, 7.0]):
        row[1] = v
    a1 = compute_advantages("sd_grpo", inputs(base, G=4)).segment
    a2 = compute_advantages("sd_grpo", inputs(changed, G=4)).segment
    assert torch.equal(a1[:, 0], a2[:, 0]) and torch.equal(a1[:, 2], a2[:, 2])
    assert not torch.equal(a1[:, 1], a2[:, 1])


def test_zero_variance_group_gives_zero_advantages():
    b = inputs([[0.5, 1.0], [0.5, 1.0], [0.0, 1.0], [1.0, 1.0]], hol=[0.3, 0.3, 0.1, 0.9])
    out = compute_advantages("sd_grpo", b)
    assert torch.equal(out.segment[:2], torch.zeros(2, 2))
    assert torch.equal(out.segment[2:, 1], torch.zeros(2))
    assert torch.equal(out.rollout[:2], torch.zeros(2))
    assert out.segment[2, 0] == pytest.approx(-PAIR)
    assert out.rollout[3] == pytest.approx(0.4 / (0.8 / math.sqrt(2) + EPS))  # pair (0.1, 0.9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_grpo_equals_trls_formula(seed):
    # TRL GRPOTrainer: (r - mean_g) / (nanstd_g + 1e-4), nanstd Bessel-corrected.
    r = torch.rand(12, generator=torch.Generator().manual_seed(seed))
    g = r.view(-1, 4)
    trl = (r - g.mean(1).repeat_interleave(4)) / (nanstd(g, dim=1).repeat_interleave(4) + 1e-4)
    torch.testing.assert_close(group_normalize(r, 4), trl)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", ["group", "none"])
def test_vectorised_matches_loop_reference(seed, scale):
    g = torch.Generator().manual_seed(seed)
    G, n_groups, K = 4, 3, 5
    seg = torch.rand(G * n_groups, K, generator=g)
    mask = torch.rand(G * n_groups, K, generator=g) > 0.2
    got = compute_advantages("sd_grpo" if scale == "group" else "sd_dr_grpo",
                             AdvantageInputs(seg.mean(1), seg, mask, G)).segment
    want = torch.zeros_like(seg)
    for p in range(n_groups):
        for k in range(K):
            rows = [p * G + j for j in range(G) if mask[p * G + j, k]]
            vals = [float(seg[i, k]) for i in rows]
            if not vals:
                continue
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            for i in rows:
                d = float(seg[i, k]) - mean
                want[i, k] = d / (std + EPS) if scale == "group" else d
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # Masked values do not change the result.
    seg2 = torch.where(mask, seg, torch.full_like(seg, 123.0))
    got2 = compute_advantages("sd_grpo" if scale == "group" else "sd_dr_grpo",
                              AdvantageInputs(seg2.mean(1), seg2, mask, G)).segment
    torch.testing.assert_close(got, got2)


def test_registry_refuses_duplicates_and_lists_known_names():
    assert {"grpo", "dr_grpo", "sd_grpo", "sd_dr_grpo", "blend"} <= set(ESTIMATORS.names())
    with pytest.raises(KeyError, match="known: blend, dr_grpo, grpo"):
        compute_advantages("nope", inputs([[1.0], [0.0]]))
    reg: Registry = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "sd_grpo", "sd_dr_grpo", "blend"])
def test_a_misspelled_estimator_option_is_an_error_not_swallowed(name):
    # Before: every estimator ended with ``**_`` and ``alpah=0.9`` ran with the default alpha.
    batch = inputs([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(TypeError, match="alpah"):
        compute_advantages(name, batch, alpah=0.9)
    if name != "blend":  # alpha is blend's option only
        with pytest.raises(TypeError, match="alpha"):
            compute_advantages(name, batch, alpha=0.9)


def test_inputs_validate_shapes():
    with pytest.raises(ValueError, match="whole number of groups"):
        inputs([[1.0], [0.0], [1.0]], G=2)
    with pytest.raises(ValueError, match="segment_mask"):
        AdvantageInputs(torch.zeros(2), torch.zeros(2, 3), torch.ones(2, 2, dtype=torch.bool), 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_reward_is_left_out_of_its_group(bad):
    # Group of 3 for segment 0: [bad, 1, 0] -> the pair (1, 0) alone sets the statistics.
    b = inputs([[bad, 0.0], [1.0, 0.0], [0.0, 0.0]], hol=[0.0, 1.0, 0.0], G=3)
    a = compute_advantages("sd_grpo", b).segment
    torch.testing.assert_close(a[:, 0], torch.tensor([0.0, PAIR, -PAIR]), rtol=0, atol=1e-6)
    assert torch.isfinite(a).all()
