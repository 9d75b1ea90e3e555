"""Credit diagnostics on a hand-made batch."""

import math

import pytest
import torch

from segrl.trainers.advantages import AdvantageInputs, compute_advantages
from segrl.trainers.diagnostics import (
    centred_segment_rewards,
    misattributed_token_fraction,
    rollout_segment_correlation,
)
from segrl.trainers.token_mapping import map_advantages_to_tokens

# One group of G=2 rollouts, K=2 segments. Rollout 0 got segment 1 right and segment 2 wrong;
# rollout 1 the opposite. Holistic rewards favour rollout 0.
SEG = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
MASK = torch.ones(2, 2, dtype=torch.bool)
HOL = torch.tensor([1.0, 0.0])
# Tokens: 2 of segment 0, 2 of segment 1, then one outside (EOS); rollout 1 has one pad.
TOKEN_SEGMENT = torch.tensor([[0, 0, 1, 1, -1], [0, 0, 1, 1, -1]])
COMPLETION_MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def token_advantages(algo):
    adv = compute_advantages(algo, AdvantageInputs(HOL, SEG, MASK, 2))
    return map_advantages_to_tokens(adv.rollout, adv.segment, TOKEN_SEGMENT), adv


def test_centred_rewards_by_hand():
    torch.testing.assert_close(centred_segment_rewards(SEG, MASK, 2), torch.tensor([[0.5, -0.5], [-0.5, 0.5]]))


def test_grpo_misattributes_half_the_segment_tokens():
    # GRPO: rollout 0's tokens all get +a, so its segment-2 tokens (centred -0.5) are misattributed;
    # rollout 1's tokens all get -a, so its segment-2 tokens (centred +0.5) are too: 4 of 8.
    tok, _ = token_advantages("grpo")
    frac = misattributed_token_fraction(tok, TOKEN_SEGMENT, COMPLETION_MASK, centred_segment_rewards(SEG, MASK, 2), MASK)
    assert frac == 0.5


@pytest.mark.parametrize("algo", ["sd_grpo", "sd_dr_grpo"])
def test_segment_algorithms_never_misattribute(algo):
    tok, _ = token_advantages(algo)
    frac = misattributed_token_fraction(tok, TOKEN_SEGMENT, COMPLETION_MASK, centred_segment_rewards(SEG, MASK, 2), MASK)
    assert frac == 0.0


def test_zero_centred_reward_with_nonzero_advantage_counts_as_misattributed():
    centred = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    tok = torch.full((2, 5), 0.3)
    assert misattributed_token_fraction(tok, TOKEN_SEGMENT, COMPLETION_MASK, centred, MASK) == 1.0
    assert math.isnan(misattributed_token_fraction(tok, torch.full((2, 5), -1), COMPLETION_MASK, centred, MASK))


def test_correlation_by_hand():
    # Rollout advantages (+a, -a) against segment advantages (+b, -b) and (-b, +b): pairs
    # (a, b), (a, -b), (-a, -b), (-a, b) are uncorrelated.
    _, adv = token_advantages("grpo")
    assert rollout_segment_correlation(adv.rollout, SEG, MASK, 2) == pytest.approx(0.0, abs=1e-6)
    # Only segment 0 scorable: rollout and segment advantages agree exactly.
    only0 = torch.tensor([[True, False], [True, False]])
    assert rollout_segment_correlation(adv.rollout, SEG, only0, 2) == pytest.approx(1.0)
