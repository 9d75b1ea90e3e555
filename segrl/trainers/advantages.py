"""Advantage estimators: small pure torch functions, one registry entry per algorithm.

Shapes: ``B`` rollouts (completions) in the batch, ordered as TRL orders them — ``B / G``
consecutive groups of ``G = num_generations`` rollouts of the same prompt; ``K`` the largest
number of segments of any prompt in the batch (prompts with fewer segments are padded and
masked).

Every estimator returns an :class:`Advantages`: a rollout-level advantage ``(B,)`` (used for
tokens outside every segment: preamble, separators, EOS; and for every token by scalar
algorithms) and, for segment-level algorithms, a per-segment advantage ``(B, K)``.
:mod:`segrl.trainers.token_mapping` turns that into the ``(B, T)`` tensor TRL's loss takes.

Normalisation follows TRL's ``GRPOTrainer`` exactly (so ``grpo`` here equals TRL's own
advantage): group mean, Bessel-corrected group standard deviation, ``eps = 1e-4`` added to
the std. NaN entries (a reward that could not be scored) are left out of the statistics and
get advantage 0.

**One reward for every algorithm** (:func:`compose_rewards`; segrl's design, the papers are
silent). Rollout i's reward is ``R[i] = mean_k r[i,k] + c[i]`` where ``c[i]`` holds the
rollout-level terms (``format_weight * format``); every segment's reward carries the same
terms, ``r'[i,k] = r[i,k] + c[i]``, so ``mean_k r'[i,k] = R[i]``: GRPO and SD-GRPO optimise the
same reward and only assign its credit differently. At K = 1, ``r'[i,1] = R[i]`` bit for bit,
so ``sd_grpo`` = ``grpo`` and ``sd_dr_grpo`` = ``dr_grpo`` exactly. A duplicated, unexpected or
out-of-order label lowers ``format`` and so every segment reward of its rollout; a missing
segment scores ``r = 0`` (plus ``c[i]``) and its advantage is carried by the rollout's tokens
outside every present segment (:func:`segrl.trainers.token_mapping.map_advantages_to_tokens`).

Adding an estimator-only algorithm = one function with an ``@ESTIMATORS.register`` line and,
below it, its :class:`~segrl.trainers.registry.AlgorithmSpec` (the TRL options it fixes, e.g.
``loss_type``, and the config fields it passes as options). Estimators take their options as
keywords and nothing else: a misspelled option is a ``TypeError``, never swallowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from segrl.registry import Registry
from segrl.trainers.registry import ALGORITHMS, AlgorithmSpec

EPS = 1e-4
"""Added to the group std before dividing (TRL ``GRPOTrainer``: ``std + 1e-4``)."""


@dataclass(frozen=True)
class AdvantageInputs:
    """What an estimator sees for one generation batch (all processes gathered).

    Attributes:
        holistic_rewards: ``(B,)`` float, the rollout-level reward R[i].
        segment_rewards: ``(B, K)`` float, r[i, k]; a missing segment has reward 0 (it still
            counts in its group's statistics); padded or unscorable entries may hold anything.
        segment_mask: ``(B, K)`` bool, True where segment k exists for rollout i's prompt and
            its reference could be scored.
        num_generations: G, rollouts per group; ``B % G == 0``.
        holistic_scores: ``(B,)`` float or None, a score of the *whole* answer against the whole
            reference plus the same rollout-level terms as ``holistic_rewards`` (``H[i] + c[i]``,
            :func:`segrl.rewards.scorer.score_holistic`); read by ``blend`` only. None: ``blend``
            falls back to ``holistic_rewards`` (the trainer always supplies it).
    """

    holistic_rewards: torch.Tensor
    segment_rewards: torch.Tensor
    segment_mask: torch.Tensor
    num_generations: int
    holistic_scores: torch.Tensor | None = None

    def __post_init__(self) -> None:
        B = self.holistic_rewards.shape[0]
        if self.holistic_rewards.dim() != 1:
            raise ValueError(f"holistic_rewards must be (B,), got {tuple(self.holistic_rewards.shape)}")
        if self.segment_rewards.dim() != 2 or self.segment_rewards.shape[0] != B:
            raise ValueError(f"segment_rewards must be (B={B}, K), got {tuple(self.segment_rewards.shape)}")
        if self.segment_mask.shape != self.segment_rewards.shape:
            raise ValueError(
                f"segment_mask {tuple(self.segment_mask.shape)} != segment_rewards "
                f"{tuple(self.segment_rewards.shape)}"
            )
        if self.num_generations < 1 or B % self.num_generations:
            raise ValueError(f"batch of {B} rollouts is not a whole number of groups of {self.num_generations}")
        if self.holistic_scores is not None and tuple(self.holistic_scores.shape) != (B,):
            raise ValueError(f"holistic_scores must be (B={B},), got {tuple(self.holistic_scores.shape)}")


@dataclass(frozen=True)
class Advantages:
    """Estimator output.

    Attributes:
        rollout: ``(B,)`` rollout-level advantage.
        segment: ``(B, K)`` per-segment advantage (0 where masked), or None for scalar algorithms.
    """

    rollout: torch.Tensor
    segment: torch.Tensor | None = None


class Estimator(Protocol):
    def __call__(self, batch: AdvantageInputs, **options: float) -> Advantages: ...


ESTIMATORS: Registry[Estimator] = Registry("estimator")
"""Advantage estimators by name; each is also an algorithm (:data:`segrl.trainers.registry.ALGORITHMS`)."""

GROUP_OPTIONS = {"scale_rewards": "group"}
"""TRL options of the group-normalised estimators: ``scale_rewards`` is fixed because segrl computes
the advantages (TRL's own, scaled by it, are replaced), so any other value would be ignored; the
loss aggregation ``loss_type`` stays free (TRL's default here: ``grpo``)."""
DR_OPTIONS = {"loss_type": "dr_grpo", "scale_rewards": "none"}
"""TRL options of the Dr. GRPO estimators (Liu et al. 2025, eq. 3 and the constant normaliser)."""


# --------------------------------------------------------------------------- building blocks


def compose_rewards(
    segment_scores: torch.Tensor, segment_mask: torch.Tensor, rollout_terms: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one reward design of every segment algorithm: ``(R, r')`` from the segment scores.

    ``R[i] = mean_{k in mask} r[i,k] + c[i]`` (``mean = 0`` when no segment is scorable) and
    ``r'[i,k] = r[i,k] + c[i]``, so ``mean_{k in mask} r'[i,k] = R[i]`` and, at K = 1,
    ``r'[i,1] == R[i]`` exactly (the same float operations). ``c`` is the rollout-level part of
    the reward (``format_weight * format``): a badly formatted rollout (a duplicated, unexpected
    or out-of-order label, a missing segment) loses it on every one of its segments, under every
    algorithm. Source: segrl's design (module docstring); SD-GRPO's paper gives segments only
    their own content reward, which makes ``sd_grpo`` differ from ``grpo`` even at K = 1 (issue 15).

    Args:
        segment_scores: ``(B, K)`` float, r[i,k] (0 for a missing segment; NaN/inf kept).
        segment_mask: ``(B, K)`` bool, scorable segments.
        rollout_terms: ``(B,)`` float, c[i].

    Returns:
        ``R (B,)`` and ``r' (B, K)`` (float32).

    Raises:
        ValueError: on mismatched shapes.
    """
    if segment_scores.dim() != 2 or segment_mask.shape != segment_scores.shape:
        raise ValueError(f"segment_scores {tuple(segment_scores.shape)} and segment_mask "
                         f"{tuple(segment_mask.shape)} must both be (B, K)")
    if tuple(rollout_terms.shape) != (segment_scores.shape[0],):
        raise ValueError(f"rollout_terms must be (B={segment_scores.shape[0]},), got {tuple(rollout_terms.shape)}")
    r = segment_scores.float()
    c = rollout_terms.to(r.device, torch.float32)
    m = segment_mask.to(r.device).float()
    mean = (r * m).sum(1) / m.sum(1).clamp(min=1.0)  # SegmentScores.mean_reward's arithmetic
    return mean + c, r + c[:, None]


def group_normalize(x: torch.Tensor, num_generations: int, scale: str = "group", eps: float = EPS) -> torch.Tensor:
    """Centre (and scale) ``x`` within each group of ``G`` consecutive rows, ignoring non-finite entries.

    ``A[i] = (x[i] - mean_g x) / (std_g x + eps)`` with the Bessel-corrected std
    (GRPO: Shao et al. 2024, "DeepSeekMath", Sec. 4.1.2, outcome supervision; TRL ``GRPOTrainer``).
    ``scale="none"`` drops the division (Dr. GRPO: Liu et al. 2025, "Understanding R1-Zero-Like
    Training", Sec. 3.1, eq. 3).

    Args:
        x: ``(B,)`` or ``(B, K)`` float; NaN marks an entry to leave out of the statistics
            (a masked segment), and so does ±inf (a broken reward: left out, never averaged in;
            the trainer counts such rewards in ``nonfinite/segment_rewards``).
        num_generations: G.
        scale: ``"group"`` (divide by the group std) or ``"none"``.
        eps: added to the std.

    Returns:
        Same shape as ``x``; 0 where ``x`` is not finite, and 0 for a whole zero-variance group.

    Raises:
        ValueError: on an unknown ``scale`` or a batch that is not a whole number of groups.
    """
    if scale not in ("group", "none"):
        raise ValueError(f"scale must be 'group' or 'none', got {scale!r}")
    B = x.shape[0]
    if B % num_generations:
        raise ValueError(f"batch of {B} rows is not a whole number of groups of {num_generations}")
    # (B,) is computed as (B, 1): a rollout reward and a K = 1 segment reward go through the very same
    # arithmetic, so sd_grpo equals grpo bit for bit at K = 1.
    g = x.reshape(B // num_generations, num_generations, *(x.shape[1:] or (1,))).float()
    valid = torch.isfinite(g)
    count = valid.sum(dim=1, keepdim=True)
    filled = torch.where(valid, g, torch.zeros_like(g))
    mean = filled.sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = torch.where(valid, g - mean, torch.zeros_like(g))
    if scale == "group":
        var = (centred**2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
        centred = centred / (var.sqrt() + eps)
    return centred.reshape(x.shape)


def blend_rewards(holistic: torch.Tensor, segment: torch.Tensor, alpha: float) -> torch.Tensor:
    """Reward-level blend ``r''[i,k] = alpha * H[i] + (1 - alpha) * r[i,k]``.

    Source: SD-GRPO's shared-context setting (sub-figure captioning), where the holistic
    reward (a score of the whole answer) is mixed into each segment's reward before
    normalisation. ``alpha = 0`` is SD-GRPO, ``alpha = 1`` is GRPO on the holistic reward.

    Args:
        holistic: ``(B,)``. segment: ``(B, K)``. alpha: in [0, 1].

    Returns:
        ``(B, K)``.

    Raises:
        ValueError: if alpha is outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha == 1.0:  # exactly R[i], so alpha = 1 reproduces GRPO bit for bit
        return holistic[:, None].expand_as(segment).clone()
    if alpha == 0.0:
        return segment.clone()
    return alpha * holistic[:, None] + (1.0 - alpha) * segment


def _masked(segment_rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, segment_rewards.float(), torch.full_like(segment_rewards, float("nan"), dtype=torch.float))


def _segment_level(batch: AdvantageInputs, rewards: torch.Tensor, scale: str, eps: float) -> Advantages:
    rollout = group_normalize(batch.holistic_rewards, batch.num_generations, scale, eps)
    segment = group_normalize(_masked(rewards, batch.segment_mask), batch.num_generations, scale, eps)
    return Advantages(rollout=rollout, segment=segment)


# --------------------------------------------------------------------------- the algorithms


@ESTIMATORS.register("grpo")
def grpo(batch: AdvantageInputs, *, eps: float = EPS) -> Advantages:
    """GRPO: every token of rollout i gets ``A[i] = (R[i] - mean_g R) / (std_g R + eps)``.

    Source: Shao et al. 2024 (DeepSeekMath), Sec. 4.1.2. Returns ``rollout (B,)`` only.
    """
    return Advantages(rollout=group_normalize(batch.holistic_rewards, batch.num_generations, "group", eps))


ALGORITHMS.register_spec(AlgorithmSpec("grpo", estimator="grpo", trl_options=GROUP_OPTIONS, summary="GRPO: one advantage per rollout"))


@ESTIMATORS.register("dr_grpo")
def dr_grpo(batch: AdvantageInputs, *, eps: float = EPS) -> Advantages:
    """Dr. GRPO: ``A[i] = R[i] - mean_g R`` (no std division); the loss uses TRL's ``loss_type="dr_grpo"``
    (sum over tokens divided by ``B * max_completion_length``).

    Source: Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective", eq. 3.
    """
    return Advantages(rollout=group_normalize(batch.holistic_rewards, batch.num_generations, "none", eps))


ALGORITHMS.register_spec(AlgorithmSpec("dr_grpo", estimator="dr_grpo", trl_options=DR_OPTIONS, summary="Dr. GRPO: no std division, loss dr_grpo"))


@ESTIMATORS.register("sd_grpo")
def sd_grpo(batch: AdvantageInputs, *, eps: float = EPS) -> Advantages:
    """SD-GRPO: per-segment group normalisation.

    ``A[i,k] = (r[i,k] - mean_g r[:,k]) / (std_g r[:,k] + eps)`` over the G rollouts of a
    prompt, separately for each segment k; masked segments are left out and get 0. Tokens of
    segment k of rollout i carry ``A[i,k]``; tokens outside every segment carry the GRPO
    advantage of the holistic reward. Returns ``rollout (B,)`` and ``segment (B, K)``.

    Source: Segment-Decomposed GRPO (the per-segment advantage, as stated in segrl's brief).
    """
    return _segment_level(batch, batch.segment_rewards, "group", eps)


ALGORITHMS.register_spec(AlgorithmSpec("sd_grpo", estimator="sd_grpo", trl_options=GROUP_OPTIONS, summary="SD-GRPO: per-segment group advantages"))


@ESTIMATORS.register("sd_dr_grpo")
def sd_dr_grpo(batch: AdvantageInputs, *, eps: float = EPS) -> Advantages:
    """SD-GRPO inside Dr. GRPO: ``A[i,k] = r[i,k] - mean_g r[:,k]`` (no std), loss ``dr_grpo``."""
    return _segment_level(batch, batch.segment_rewards, "none", eps)


ALGORITHMS.register_spec(AlgorithmSpec("sd_dr_grpo", estimator="sd_dr_grpo", trl_options=DR_OPTIONS, summary="SD-GRPO inside Dr. GRPO"))


@ESTIMATORS.register("blend")
def blend(batch: AdvantageInputs, *, alpha: float = 0.5, eps: float = EPS) -> Advantages:
    """Blend: SD-GRPO on ``r''[i,k] = alpha * H[i] + (1 - alpha) * r'[i,k]`` (see :func:`blend_rewards`).

    ``H = batch.holistic_scores``: a metric of the whole answer against the whole reference plus
    the rollout-level terms (:func:`segrl.rewards.scorer.score_holistic`; ``train.holistic_metric``),
    never an average of the segment scores, so it carries cross-segment information. The
    rollout-level advantage (tokens outside every segment, unscorable segments) is taken on the
    same blend, ``alpha * H[i] + (1 - alpha) * R[i]``, whose mean over segments it is. Hence
    ``alpha = 0`` gives :func:`sd_grpo` and ``alpha = 1`` gives exactly :func:`grpo` on ``H``, on
    every token. Without ``holistic_scores`` ``H = R`` (the pre-issue-15 blend, for pure use only).
    """
    H = batch.holistic_scores if batch.holistic_scores is not None else batch.holistic_rewards
    rewards = blend_rewards(H, batch.segment_rewards, alpha)
    rollout_reward = blend_rewards(H, batch.holistic_rewards[:, None], alpha)[:, 0]
    return Advantages(
        rollout=group_normalize(rollout_reward, batch.num_generations, "group", eps),
        segment=group_normalize(_masked(rewards, batch.segment_mask), batch.num_generations, "group", eps),
    )


HOLISTIC_ESTIMATORS = frozenset({"blend"})
"""Estimators that read :attr:`AdvantageInputs.holistic_scores` (the trainer scores the whole answer only for them)."""


ALGORITHMS.register_spec(AlgorithmSpec(
    "blend", estimator="blend", trl_options=GROUP_OPTIONS, estimator_options={"eps": "advantage_eps", "alpha": "alpha"},
    summary="SD-GRPO on alpha * R + (1 - alpha) * r_k"))


def compute_advantages(algo: str, batch: AdvantageInputs, **options: float) -> Advantages:
    """Run the registered estimator ``algo`` on ``batch`` with its keyword ``options``.

    Raises:
        KeyError: unknown ``algo`` (the message lists the known ones).
        TypeError: an option the estimator does not take (e.g. a misspelled ``alpha``).
    """
    return ESTIMATORS.get(algo)(batch, **options)
