"""SAPO's segment functions against hand-computed values and plain per-token loops."""

import math

import pytest
import torch

from segrl.trainers.segment_gae import (
    dual_clip_policy_loss,
    entropy_segment_ends,
    labelled_segment_ends,
    masked_mean,
    masked_whiten,
    newline_segment_ends,
    segment_gae,
    segment_gae_advantages,
    segment_ids,
    segment_log_ratio,
    segment_value_loss,
    token_contains,
    top_fraction_count,
)


def bools(rows):
    return torch.tensor(rows, dtype=torch.bool)


def ends_of(row):
    return torch.nonzero(row).squeeze(-1).tolist()


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(
        actual.float(), torch.tensor(expected, dtype=torch.float32), atol=atol, rtol=1e-5
    )


# --------------------------------------------------------------------------- segmentation (eq. 11)


def test_top_fraction_count_rounds_up_and_keeps_exact_products_exact():
    n = torch.tensor([0, 1, 3, 6, 7, 10, 20, 2048])
    # ceil(0.3 n): 0 (empty), 1 (0.3 -> at least one), 1 (0.9), 2 (1.8), 3 (2.1), 3 (3.0 exactly), 6, 615 (614.4)
    assert top_fraction_count(n, 0.30).tolist() == [0, 1, 1, 2, 3, 3, 6, 615]
    assert top_fraction_count(n, 1.0).tolist() == n.tolist()
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        top_fraction_count(n, 0.0)


def test_entropy_segment_ends_fixed_vector():
    pad = 9.0  # padding with the highest entropy must never be chosen
    entropy = torch.tensor(
        [
            # 6 valid: k = ceil(1.8) = 2; three tokens tie at 0.8 -> the two earliest (t1, t3) win;
            # t5 lost the tie but is the last valid token, so it is an end anyway.
            [0.5, 0.8, 0.2, 0.8, 0.1, 0.8, pad, pad, pad, pad],
            # 10 valid: k = 3 exactly; top three are t7 (0.95), t2 (0.9), t4 (0.7); last token t9 forced.
            [0.1, 0.2, 0.9, 0.3, 0.7, 0.0, 0.4, 0.95, 0.6, 0.05],
            # 7 valid: k = ceil(2.1) = 3: t0 (1.0), t6 (0.9, also the last), t3 (0.8) -> no extra end.
            [1.0, 0.1, 0.2, 0.8, 0.3, 0.4, 0.9, pad, pad, pad],
            # 1 valid token: it is the only end.
            [0.3, pad, pad, pad, pad, pad, pad, pad, pad, pad],
            # empty row: no end at all.
            [pad] * 10,
        ]
    )
    valid = [6, 10, 7, 1, 0]
    mask = torch.tensor([[1] * v + [0] * (10 - v) for v in valid])
    ends = entropy_segment_ends(entropy, mask, 0.30)
    assert [ends_of(r) for r in ends] == [[1, 3, 5], [2, 4, 7, 9], [0, 3, 6], [0], []]
    assert not (ends & ~mask.bool()).any()
    # every valid token is an end when k% = 100%
    assert torch.equal(entropy_segment_ends(entropy, mask, 1.0), mask.bool())


def test_segment_ids_count_the_ends_before_each_token():
    ends = bools([[0, 1, 0, 1, 0, 1], [1, 0, 1, 1, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    assert segment_ids(ends, mask).tolist() == [[0, 0, 1, 1, 2, 2], [0, 1, 1, 2, -1, -1]]


def test_newline_and_labelled_segment_ends():
    text = "Answer 1: red\nAnswer 2: blue"
    spans = [(0, 6), (6, 9), (9, 13), (13, 14), (14, 20), (20, 23), (23, 28), (28, 28)]  # last: EOS
    flags = token_contains(spans, text)
    assert flags == [False, False, False, True, False, False, False, False]
    mask = torch.tensor([[1] * 8 + [0, 0]])
    has_newline = torch.tensor([flags + [True, True]])  # padding with a newline is ignored
    assert ends_of(newline_segment_ends(has_newline, mask)[0]) == [3, 7]

    # segments from the task's labels: -1 = outside every segment (the newline, EOS)
    token_segment = torch.tensor([[0, 0, 0, -1, 1, 1, 1, -1, 5, 5]])
    assert ends_of(labelled_segment_ends(token_segment, mask)[0]) == [2, 3, 6, 7]


# --------------------------------------------------------------------------- segment GAE (eqs. 6-7)


def two_completions():
    """2 completions x 3 segments. Row 0: 6 tokens, ends 1, 3, 5. Row 1: 4 tokens + 2 padding, ends 0, 2, 3."""
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    ends = bools([[0, 1, 0, 1, 0, 1], [1, 0, 1, 1, 0, 0]])
    nan = 9.0  # values away from segment ends are never read
    values = torch.tensor([[nan, 0.5, nan, 0.2, nan, 0.8], [0.1, nan, 0.4, -0.2, nan, nan]])
    kl = torch.tensor([[0.0] * 6, [0.2, 0.4, -0.2, 0.6, 7.0, 7.0]])
    outcome = torch.tensor([1.0, 0.0])
    return mask, ends, values, kl, outcome


def test_segment_gae_hand_computed_two_completions_three_segments():
    mask, ends, values, kl, outcome = two_completions()
    out = segment_gae_advantages(ends, mask, values, outcome, kl=kl, kl_coef=0.5, gamma=1.0, lam=0.5)
    # Row 0: r = (0, 0, 1), V = (0.5, 0.2, 0.8).
    #   d3 = 1 - 0.8 = 0.2;           A3 = 0.2
    #   d2 = 0 + 0.8 - 0.2 = 0.6;     A2 = 0.6 + 0.5 * 0.2 = 0.7
    #   d1 = 0 + 0.2 - 0.5 = -0.3;    A1 = -0.3 + 0.5 * 0.7 = 0.05
    # Row 1: token rewards -0.5 * kl = (-0.1, -0.2, 0.1, -0.3), outcome 0 -> r = (-0.1, -0.1, -0.3); V = (0.1, 0.4, -0.2).
    #   d3 = -0.3 + 0 + 0.2 = -0.1;   A3 = -0.1
    #   d2 = -0.1 - 0.2 - 0.4 = -0.7; A2 = -0.7 + 0.5 * (-0.1) = -0.75
    #   d1 = -0.1 + 0.4 - 0.1 = 0.2;  A1 = 0.2 + 0.5 * (-0.75) = -0.175
    close(out.rewards, [[0.0, 0.0, 1.0], [-0.1, -0.1, -0.3]])
    close(out.values, [[0.5, 0.2, 0.8], [0.1, 0.4, -0.2]])
    close(out.advantages, [[0.05, 0.7, 0.2], [-0.175, -0.75, -0.1]])
    close(out.returns, [[0.55, 0.9, 1.0], [-0.075, -0.35, -0.3]])
    close(out.token_advantages, [[0.05, 0.05, 0.7, 0.7, 0.2, 0.2], [-0.175, -0.75, -0.75, -0.1, 0.0, 0.0]])
    # the paper's lambda = 0.99 on row 0: A2 = 0.6 + 0.99 * 0.2, A1 = -0.3 + 0.99 * A2
    lam99 = segment_gae_advantages(ends, mask, values, outcome, gamma=1.0, lam=0.99).advantages[0]
    assert lam99.tolist() == pytest.approx([-0.3 + 0.99 * 0.798, 0.798, 0.2])


def test_segment_gae_uneven_segment_counts_and_discount():
    # Row 1 has one segment, padded to M = 2; gamma = 0.5, lambda = 1: A = r + 0.5 V' - V summed.
    rewards = torch.tensor([[0.0, 1.0], [2.0, 99.0]])
    values = torch.tensor([[0.4, 0.6], [1.5, 99.0]])
    seg_mask = bools([[1, 1], [1, 0]])
    adv, ret = segment_gae(rewards, values, seg_mask, gamma=0.5, lam=1.0)
    # Row 0: d2 = 1 - 0.6 = 0.4; d1 = 0 + 0.5 * 0.6 - 0.4 = -0.1; A1 = -0.1 + 0.5 * 0.4 = 0.1
    close(adv, [[0.1, 0.4], [0.5, 0.0]])
    close(ret, [[0.5, 1.0], [2.0, 0.0]])


def test_masked_whiten_and_clamp_hand_computed():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # mean 2, Bessel variance 1
    close(masked_whiten(x, mask), [[-1.0, 0.0, 1.0, 0.0]])
    # 40 zeros and one 1: mean 1/41, variance 1/41 -> the 1 whitens to 40/sqrt(41) = 6.25, clamped to 5
    y = torch.zeros(1, 41)
    y[0, 7] = 1.0
    w = masked_whiten(y, torch.ones(1, 41)).clamp(-5, 5)
    assert w[0, 7].item() == 5.0
    assert w[0, 0].item() == pytest.approx(-1 / math.sqrt(41), rel=1e-5)

    def reduce_twice(t):  # a second, identical process: statistics of the doubled batch
        return 2 * t

    # two copies of [1, 2, 3]: mean 2, Bessel variance 4 / 5
    assert masked_whiten(x, mask, reduce_twice)[0, :3].tolist() == pytest.approx(
        [-1 / math.sqrt(0.8), 0.0, 1 / math.sqrt(0.8)], rel=1e-5
    )


# --------------------------------------------------------------------------- segment ratio and objective (eqs. 8-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segment_log_ratio_matches_a_per_token_loop(seed):
    g = torch.Generator().manual_seed(seed)
    B, T = 4, 12
    logps = -torch.rand(B, T, generator=g) * 3
    old = -torch.rand(B, T, generator=g) * 3
    logps[0, 2] = old[0, 2] + 50.0  # clamped to +20 before the mean
    lengths = [12, 9, 1, 5]
    mask = torch.tensor([[1] * n + [0] * (T - n) for n in lengths])
    ends = entropy_segment_ends(torch.rand(B, T, generator=g), mask, 0.3)
    ids = segment_ids(ends, mask)
    got = segment_log_ratio(logps, old, ids, mask)

    expected = torch.zeros(B, T)
    for b in range(B):
        for m in set(ids[b].tolist()) - {-1}:
            toks = [t for t in range(T) if ids[b, t] == m and mask[b, t]]
            mean = sum(max(-20.0, min(20.0, float(logps[b, t] - old[b, t]))) for t in toks) / len(toks)
            for t in toks:
                expected[b, t] = mean
    assert torch.allclose(got, expected, atol=1e-6)
    assert (got[mask == 0] == 0).all()


def test_segment_ratio_gradient_is_shared_across_the_segment():
    logps = torch.zeros(1, 4, requires_grad=True)
    ids = torch.tensor([[0, 0, 0, 1]])
    segment_log_ratio(logps, torch.zeros(1, 4), ids, torch.ones(1, 4))[0, 0].backward()
    close(logps.grad, [[1 / 3, 1 / 3, 1 / 3, 0.0]])


def test_dual_clip_objective_hand_computed():
    A = torch.tensor([[1.0, 1.0, -1.0, -1.0, -1.0]])
    ratio = torch.tensor([[1.5, 0.5, 0.5, 2.0, 5.0]])
    out = dual_clip_policy_loss(ratio.log(), A, torch.ones(1, 5), 0.2, 0.28, 3.0)
    # A>0, s=1.5: -min(1.5, 1.28) = -1.28; A>0, s=0.5: -min(0.5, 0.8) = -0.5
    # A<0, s=0.5: max(0.5, 0.8) = 0.8; s=2: max(2, 1.28) = 2 (< 3); s=5: max(5, 1.28) = 5 -> dual clip 3
    close(out.per_token, [[-1.28, -0.5, 0.8, 2.0, 3.0]])
    assert out.clip_frac.item() == pytest.approx(2 / 5)  # the clipped branch is taken at tokens 0 and 2
    assert out.clip_frac_high.item() == pytest.approx(1 / 5)
    assert out.clip_frac_low.item() == pytest.approx(1 / 5)
    assert out.dual_clip_frac.item() == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="c must be > 1"):
        dual_clip_policy_loss(ratio.log(), A, torch.ones(1, 5), clip_c=1.0)


# --------------------------------------------------------------------------- value loss (eq. 10)


def test_value_loss_only_at_segment_ends():
    mask, ends, _, _, _ = two_completions()
    returns = torch.tensor([[0.55, 0.55, 0.9, 0.9, 1.0, 1.0], [-0.075, -0.35, -0.35, -0.3, 0.0, 0.0]])
    values = torch.full((2, 6), 100.0, requires_grad=True)  # far off everywhere but the ends
    with torch.no_grad():
        values[0, [1, 3, 5]] = torch.tensor([0.5, 1.0, 1.0])  # errors 0.05, 0.1, 0
        values[1, [0, 2, 3]] = torch.tensor([0.0, -0.35, 0.1])  # errors 0.075, 0, 0.4
    loss = segment_value_loss(values, returns, ends, mask)
    expected = (0.05**2 + 0.1**2 + 0.0 + 0.075**2 + 0.0 + 0.4**2) / 6
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert (values.grad[~(ends & mask.bool())] == 0).all()  # no gradient away from the ends or on padding
    assert values.grad[0, 1].item() == pytest.approx(2 * (0.5 - 0.55) / 6, rel=1e-4)

    # with value clipping (verl's form): an update beyond +-0.5 of the old value is clipped
    old = torch.zeros(2, 6)
    clipped = segment_value_loss(values.detach(), returns, ends, mask, old_values=old, clip=0.5)
    assert clipped.item() >= loss.item()


def test_masked_mean_ignores_padding():
    assert masked_mean(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]])).item() == 2.0
