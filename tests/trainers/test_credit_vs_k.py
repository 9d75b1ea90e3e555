"""The credit diagnostics against K on exhaustive hand-made batches (what Table 2 measures).

One group holds every binary reward vector over K segments (G = 2**K rollouts, one token per
segment) and the holistic reward is the mean segment reward, so everything is countable by hand:

* centred segment reward ``r[i,k] - 1/2``; GRPO's advantage has the sign of ``sum_k r[i,k] - K/2``.
  A token is misattributed when its segment disagrees with the rollout's majority (or the rollout
  ties, advantage 0, for even K). Odd K: sum over rollouts of min(s, K - s) over K * 2**K tokens:
  K=1: 0; K=3: (3*1 + 3*1) / 24 = 0.25; K=5: (5*1 + 10*2 + 10*2 + 5*1) / 160 = 0.3125.
* the rollout advantage is a multiple of ``sum_k r_k - K/2`` and the segment's own one of
  ``r_k - 1/2``; over all vectors Cov = Var(r_k) = 1/4 and Var(sum) = K/4: corr = 1/sqrt(K).
"""

import itertools
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


def diagnostics(algo: str, K: int) -> tuple[float, float]:
    seg = torch.tensor(list(itertools.product([0.0, 1.0], repeat=K)))
    G = seg.shape[0]
    mask = torch.ones_like(seg, dtype=torch.bool)
    adv = compute_advantages(algo, AdvantageInputs(seg.mean(1), seg, mask, G))
    token_segment = torch.arange(K).repeat(G, 1)
    tok = map_advantages_to_tokens(adv.rollout, adv.segment, token_segment)
    frac = misattributed_token_fraction(tok, token_segment, torch.ones(G, K), centred_segment_rewards(seg, mask, G),
                                        mask)
    return frac, rollout_segment_correlation(adv.rollout, seg, mask, G)


@pytest.mark.parametrize("algo", ["grpo", "dr_grpo"])
def test_rollout_level_advantages_misattribute_more_as_k_grows(algo):
    fracs = {K: diagnostics(algo, K)[0] for K in (1, 3, 5)}
    assert fracs == {1: 0.0, 3: 0.25, 5: 0.3125}
    assert diagnostics(algo, 2)[0] == 0.5  # even K: tied rollouts (advantage 0) count as misattributed


@pytest.mark.parametrize("algo", ["sd_grpo", "sd_dr_grpo"])
def test_segment_advantages_never_misattribute(algo):
    assert all(diagnostics(algo, K)[0] == 0.0 for K in (1, 2, 3, 4, 5))


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5])
def test_correlation_is_one_over_sqrt_k(K):
    assert diagnostics("grpo", K)[1] == pytest.approx(1 / math.sqrt(K), abs=1e-5)
