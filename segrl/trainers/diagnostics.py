"""Credit-assignment diagnostics logged every step (pure functions).

Two numbers say how much of a segment's learning signal comes from other segments:

* **misattributed token fraction**: among completion tokens inside a (scorable) segment,
  the fraction whose advantage sign differs from the sign of their own segment's centred
  reward ``r[i,k] - mean_g r[:,k]`` (sign(0) = 0). A token of a correct answer pushed down
  because another answer of the same rollout was wrong is misattributed. Under ``sd_grpo``
  (and ``sd_dr_grpo``) it is zero by construction; under ``grpo`` it grows with K.
* **rollout/segment advantage correlation**: Pearson correlation, over (rollout, segment)
  pairs, between the rollout-level advantage and the segment's own advantage (the
  per-segment z-score). For K independent segments of equal variance and R = mean_k r_k,
  corr(R, r_k) = 1/sqrt(K): Var(R) = sigma^2/K and Cov(R, r_k) = sigma^2/K.
"""

from __future__ import annotations

import torch

from segrl.trainers.advantages import EPS, group_normalize


def centred_segment_rewards(segment_rewards: torch.Tensor, segment_mask: torch.Tensor, num_generations: int):
    """``r[i,k] - mean_g r[:,k]`` over each group's scorable entries; 0 where masked.

    Args:
        segment_rewards: ``(B, K)``. segment_mask: ``(B, K)`` bool. num_generations: G.

    Returns:
        ``(B, K)`` float.
    """
    masked = torch.where(segment_mask, segment_rewards.float(), torch.full_like(segment_rewards.float(), float("nan")))
    return group_normalize(masked, num_generations, scale="none")


def misattributed_token_fraction(
    token_advantages: torch.Tensor,
    token_segment: torch.Tensor,
    completion_mask: torch.Tensor,
    centred: torch.Tensor,
    segment_mask: torch.Tensor,
) -> float:
    """Fraction of in-segment tokens whose advantage sign differs from their segment's centred reward.

    Args:
        token_advantages: ``(B, T)`` what the loss used.
        token_segment: ``(B, T)`` long, segment index per token, -1 outside every segment.
        completion_mask: ``(B, T)`` 1 for real completion tokens.
        centred: ``(B, K)`` centred segment rewards (:func:`centred_segment_rewards`).
        segment_mask: ``(B, K)`` bool, scorable segments.

    Returns:
        A fraction in [0, 1]; NaN when no token lies in a scorable segment.
    """
    if centred.shape[1] == 0:
        return float("nan")
    idx = token_segment.clamp(min=0)
    in_segment = (token_segment >= 0) & completion_mask.bool() & torch.gather(segment_mask, 1, idx)
    n = int(in_segment.sum())
    if n == 0:
        return float("nan")
    own = torch.gather(centred, 1, idx)
    wrong = torch.sign(token_advantages) != torch.sign(own)
    return float((wrong & in_segment).sum()) / n


def rollout_segment_correlation(
    rollout_advantages: torch.Tensor, segment_rewards: torch.Tensor, segment_mask: torch.Tensor,
    num_generations: int, eps: float = EPS,
) -> float:
    """Pearson correlation between ``A_rollout[i]`` and the segment's own z-scored advantage ``A[i,k]``.

    Args:
        rollout_advantages: ``(B,)``. segment_rewards: ``(B, K)``. segment_mask: ``(B, K)`` bool.

    Returns:
        The correlation over all scorable (i, k) pairs; NaN if either side is constant.
    """
    masked = torch.where(segment_mask, segment_rewards.float(), torch.full_like(segment_rewards.float(), float("nan")))
    own = group_normalize(masked, num_generations, "group", eps)[segment_mask]
    roll = rollout_advantages.float()[:, None].expand_as(segment_rewards)[segment_mask]
    if own.numel() < 2:
        return float("nan")
    x, y = roll - roll.mean(), own - own.mean()
    den = x.norm() * y.norm()
    return float((x * y).sum() / den) if den > 0 else float("nan")
