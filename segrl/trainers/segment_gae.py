"""SAPO's segment-level credit assignment: small pure torch functions.

Source: Gao et al. 2026, "Segment-Aligned Policy Optimization for Multi-Modal Reasoning"
(arXiv 2605.01327), Sec. 4; equation numbers below are the paper's. Reference code: the
authors' verl fork (GitHub ``Graysonicc/SAPO``, ``verl/trainer/ppo/core_algos.py``:
``compute_entropy_segment_info``, ``compute_sapo_advantage_return``, the segment-mean ratio in
``compute_policy_loss_vanilla``, ``compute_value_loss`` with a ``value_update_mask``), read, not
copied.

Shapes: ``B`` completions, ``T`` completion tokens (padded; ``mask (B, T)`` is 1 on real tokens),
``M`` the largest number of segments of any completion in the batch (segment space, padded;
``segment_mask (B, M)``).

A completion is cut into segments by a boolean ``ends (B, T)``: a segment runs from the token
after the previous end up to and including its end token. The last valid token is always an
end, so every valid token belongs to exactly one segment. Three ways to choose the ends:

* :func:`entropy_segment_ends` — the paper's: the top-k% highest-entropy tokens (eq. 11);
* :func:`newline_segment_ends` — tokens whose text holds a line break (ablation);
* :func:`labelled_segment_ends` — the task's own labelled segments (``Answer 2: ...``), the
  segments SD-GRPO scores (ablation).

Then, per completion: segment rewards (0 at every end but the last, which carries the outcome
reward; the k1 KL penalty of each token is added to its segment's reward), segment GAE over the
values the critic reads at the segment-end tokens (eqs. 6-7), advantages broadcast to every token
of their segment, masked whitening and a clamp; the policy ratio of a token is the segment's
mean log-ratio (eq. 8) inside a dual-clip PPO objective (eq. 9); the value loss is taken at
segment ends only (eq. 10).

Where this departs from the reference code: ties in the entropy top-k are broken towards the
earlier token (``torch.topk`` leaves their order unspecified); ``k = ceil(frac * valid_len)`` is
computed with a 1e-9 guard so that ``0.3 * 10`` gives 3, not 4, whatever the float rounding;
the value loss is eq. 10 as written (the code's ``0.5 *`` factor and value clipping are an
option: :func:`segment_value_loss` ``clip``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

LOG_RATIO_CLAMP = 20.0
"""Per-token log-ratio clamp before the segment mean (eq. 8; verl: ``[-20, 20]``)."""

WHITEN_EPS = 1e-8
"""Added to the variance in :func:`masked_whiten` (verl ``masked_whiten``)."""


def _check_bt(name: str, x: torch.Tensor, mask: torch.Tensor) -> None:
    if x.shape != mask.shape or x.dim() != 2:
        raise ValueError(f"{name} must be (B, T) like mask {tuple(mask.shape)}, got {tuple(x.shape)}")


# --------------------------------------------------------------------------- segmentation


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last valid token.

    Args:
        mask: ``(B, T)`` bool/0-1.

    Returns:
        ``(B,)`` long; -1 for a row with no valid token.
    """
    m = mask.bool()
    positions = torch.arange(m.shape[1], device=m.device).expand_as(m)
    return torch.where(m, positions, torch.full_like(positions, -1)).max(dim=1).values


def with_last_token_end(ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ends`` restricted to valid tokens, plus each row's last valid token (always an end, Sec. 4.2).

    Args:
        ends: ``(B, T)`` bool. mask: ``(B, T)``.

    Returns:
        ``(B, T)`` bool; a row with no valid token has no end.
    """
    _check_bt("ends", ends, mask)
    out = ends.bool() & mask.bool()
    last = last_valid_index(mask)
    rows = torch.nonzero(last >= 0).squeeze(-1)
    out[rows, last[rows]] = True
    return out


def top_fraction_count(valid_len: torch.Tensor, frac: float) -> torch.Tensor:
    """``k = ceil(frac * n)`` per row, at least 1 where ``n > 0`` (eq. 11's k% of the valid tokens).

    A 1e-9 guard keeps an exact product exact (``0.3 * 10`` is 3 whatever its float rounding).

    Args:
        valid_len: ``(B,)`` int, valid tokens per row. frac: in (0, 1].

    Returns:
        ``(B,)`` long, 0 for an empty row.

    Raises:
        ValueError: ``frac`` outside (0, 1].
    """
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"the entropy top fraction must be in (0, 1], got {frac}")
    n = valid_len.long()
    k = torch.tensor(
        [max(math.ceil(frac * int(v) - 1e-9), 1) if v > 0 else 0 for v in n.tolist()],
        dtype=torch.long,
        device=n.device,
    )
    return torch.minimum(k, n)


def entropy_segment_ends(entropy: torch.Tensor, mask: torch.Tensor, top_frac: float = 0.30) -> torch.Tensor:
    """Entropy-based segment ends (SAPO Sec. 4.2, eq. 11).

    In each completion the ``k = ceil(top_frac * valid_len)`` valid tokens of highest entropy
    are segment ends (inclusive: the end token is the last token of its segment); the last
    valid token is always an end. Ties are broken towards the earlier token; padding is never
    chosen, whatever its entropy.

    Args:
        entropy: ``(B, T)`` float, the policy's per-token entropy (nats) at sampling time.
        mask: ``(B, T)``, 1 on valid completion tokens.
        top_frac: the paper's k% as a fraction (30% → 0.30).

    Returns:
        ``(B, T)`` bool.

    Raises:
        ValueError: shape mismatch; ``top_frac`` outside (0, 1].
    """
    _check_bt("entropy", entropy, mask)
    valid = mask.bool()
    k = top_fraction_count(valid.sum(1), top_frac)
    # Stable descending sort on (valid first, then entropy): equal entropies keep position order.
    score = torch.where(valid, entropy.float(), torch.full_like(entropy, float("-inf"), dtype=torch.float))
    order = torch.sort(score, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order).contiguous())
    return with_last_token_end((rank < k[:, None]) & valid, mask)


def token_contains(token_spans: Sequence[tuple[int, int]], text: str, chars: str = "\n") -> list[bool]:
    """Whether each token's character span ``text[s:e]`` holds one of ``chars``.

    Args:
        token_spans: T ``(start, end)`` spans (:func:`segrl.trainers.token_mapping.token_char_offsets`).
        text: the decoded completion.
        chars: characters that make a boundary (default: a line break).

    Returns:
        T booleans.
    """
    return [any(c in text[s:e] for c in chars) for s, e in token_spans]


def newline_segment_ends(has_newline: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Newline segment ends (ablation of eq. 11): every token holding a line break ends its segment.

    Args:
        has_newline: ``(B, T)`` bool (:func:`token_contains` per row). mask: ``(B, T)``.

    Returns:
        ``(B, T)`` bool, with the last valid token an end.
    """
    return with_last_token_end(has_newline, mask)


def labelled_segment_ends(token_segment: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Segment ends from the task's labelled segments (ablation: SD-GRPO's segments inside SAPO).

    A token ends a segment when the next valid token is assigned to another labelled segment
    (:func:`segrl.trainers.token_mapping.assign_tokens_to_segments`; -1 = outside every
    segment: a preamble or separator run is a segment of its own).

    Args:
        token_segment: ``(B, T)`` long, segment index per token in ``[-1, K)``. mask: ``(B, T)``.

    Returns:
        ``(B, T)`` bool, with the last valid token an end.
    """
    _check_bt("token_segment", token_segment, mask)
    change = torch.zeros_like(mask, dtype=torch.bool)
    change[:, :-1] = token_segment[:, :-1] != token_segment[:, 1:]
    return with_last_token_end(change, mask)


def segment_ids(ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Segment index of every token: the number of segment ends strictly before it.

    Args:
        ends: ``(B, T)`` bool (the last valid token must be an end: see :func:`with_last_token_end`).
        mask: ``(B, T)``.

    Returns:
        ``(B, T)`` long in ``[0, M)``; -1 on padding.
    """
    _check_bt("ends", ends, mask)
    e = (ends.bool() & mask.bool()).long()
    ids = torch.cumsum(e, dim=1) - e
    return torch.where(mask.bool(), ids, torch.full_like(ids, -1))


def num_segments(ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` long: segments per completion (= valid ends)."""
    return (ends.bool() & mask.bool()).sum(1)


def segment_sum(x: torch.Tensor, seg_ids: torch.Tensor, num: int) -> torch.Tensor:
    """Sum of ``x`` over each segment's tokens.

    Args:
        x: ``(B, T)`` float. seg_ids: ``(B, T)`` long, -1 = padding (left out). num: M.

    Returns:
        ``(B, M)``.
    """
    out = torch.zeros(x.shape[0], num + 1, dtype=x.dtype, device=x.device)
    index = torch.where(seg_ids >= 0, seg_ids, torch.full_like(seg_ids, num))
    return out.scatter_add(1, index, x)[:, :num]


def gather_at_ends(x: torch.Tensor, ends: torch.Tensor, seg_ids: torch.Tensor, num: int) -> torch.Tensor:
    """``x`` read at each segment's end token: ``out[b, m] = x[b, end of segment m]``.

    Args:
        x: ``(B, T)``. ends: ``(B, T)`` bool. seg_ids: ``(B, T)`` long. num: M.

    Returns:
        ``(B, M)``; 0 for padded segments.
    """
    at_end = ends.bool() & (seg_ids >= 0)
    return segment_sum(torch.where(at_end, x, torch.zeros_like(x)), torch.where(at_end, seg_ids, -1), num)


def broadcast_to_tokens(segment_values: torch.Tensor, seg_ids: torch.Tensor) -> torch.Tensor:
    """Give every token its segment's value: ``out[b, t] = segment_values[b, seg_ids[b, t]]``.

    Args:
        segment_values: ``(B, M)``. seg_ids: ``(B, T)`` long, -1 = padding.

    Returns:
        ``(B, T)``; 0 on padding.
    """
    if segment_values.shape[1] == 0:
        return torch.zeros(seg_ids.shape, dtype=segment_values.dtype, device=segment_values.device)
    gathered = torch.gather(segment_values, 1, seg_ids.clamp(min=0))
    return torch.where(seg_ids >= 0, gathered, torch.zeros_like(gathered))


# --------------------------------------------------------------------------- rewards and GAE


def segment_rewards(
    seg_ids: torch.Tensor,
    mask: torch.Tensor,
    outcome: torch.Tensor,
    num: int,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> torch.Tensor:
    """Per-segment rewards ``r_m`` (SAPO Sec. 4.1; KL in the reward as its Table 7, k1 estimator).

    Token rewards are ``-kl_coef * kl_t`` on every valid token, plus the outcome reward on the
    last valid token; ``r_m`` is their sum over segment m. With no KL term every segment but the
    last gets 0 and the last gets the outcome reward.

    Args:
        seg_ids: ``(B, T)`` long (:func:`segment_ids`). mask: ``(B, T)``.
        outcome: ``(B,)`` float, the completion's verifiable reward.
        num: M.
        kl: ``(B, T)`` per-token ``log π_old − log π_ref`` (k1), or None.
        kl_coef: the KL penalty coefficient β (Table 7: 0.001).

    Returns:
        ``(B, M)`` float.
    """
    valid = mask.bool()
    token_rewards = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    if kl is not None and kl_coef:
        _check_bt("kl", kl, mask)
        token_rewards = torch.where(valid, -kl_coef * kl.float(), token_rewards)
    last = last_valid_index(mask)
    rows = torch.nonzero(last >= 0).squeeze(-1)
    token_rewards[rows, last[rows]] += outcome.float().to(mask.device)[rows]
    return segment_sum(token_rewards, seg_ids, num)


def segment_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    segment_mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.99,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment-level GAE (SAPO eqs. 6-7).

    ``δ_m = r_m + γ V(s_{m+1}) − V(s_m)`` with ``V(s_{M_b+1}) = 0`` after a completion's last
    segment; ``Â_m = Σ_l (γλ)^l δ_{m+l}``; returns ``R̂_m = Â_m + V(s_m)``.

    Args:
        rewards: ``(B, M)`` r_m. values: ``(B, M)`` V(s_m), read at segment ends.
        segment_mask: ``(B, M)`` bool, True for the completion's real segments (a prefix of M).
        gamma: γ (SAPO: 1.0). lam: λ (SAPO: 0.99).

    Returns:
        ``(advantages (B, M), returns (B, M))``; 0 on padded segments.
    """
    if rewards.shape != values.shape or rewards.shape != segment_mask.shape:
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and segment_mask "
            f"{tuple(segment_mask.shape)} must all be (B, M)"
        )
    valid = segment_mask.bool()
    r, v = rewards.float(), values.float()
    adv = torch.zeros_like(r)
    next_value = torch.zeros(r.shape[0], dtype=r.dtype, device=r.device)
    running = torch.zeros_like(next_value)
    for m in reversed(range(r.shape[1])):
        delta = r[:, m] + gamma * next_value - v[:, m]
        running = torch.where(valid[:, m], delta + gamma * lam * running, running)
        next_value = torch.where(valid[:, m], v[:, m], next_value)
        adv[:, m] = torch.where(valid[:, m], running, torch.zeros_like(running))
    returns = torch.where(valid, adv + v, torch.zeros_like(adv))
    return adv, returns


def masked_mean_var(
    x: torch.Tensor, mask: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and Bessel-corrected variance of ``x`` over ``mask`` (two passes).

    Args:
        x: ``(B, T)``. mask: ``(B, T)``.
        reduce: sums a tensor across processes (e.g. ``accelerator.reduce(t, "sum")``) so that
            every process gets the statistics of the whole batch; identity by default.

    Returns:
        ``(mean, var)`` 0-dim tensors; var is 0 with fewer than two valid entries.
    """
    reduce = reduce or (lambda t: t)
    m = mask.float()
    xf = torch.where(mask.bool(), x.float(), torch.zeros_like(x, dtype=torch.float))
    total = reduce(torch.stack([xf.sum(), m.sum()]))
    mean = total[0] / total[1].clamp(min=1.0)
    sq = reduce(((xf - mean) ** 2 * m).sum())
    var = torch.where(total[1] > 1, sq / (total[1] - 1).clamp(min=1.0), torch.zeros_like(sq))
    return mean, var


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """``(x − mean) / sqrt(var + 1e-8)`` over the valid entries, 0 on padding (verl ``masked_whiten``).

    Args:
        x: ``(B, T)``. mask: ``(B, T)``. reduce: see :func:`masked_mean_var`.

    Returns:
        ``(B, T)`` float.
    """
    _check_bt("x", x, mask)
    mean, var = masked_mean_var(x, mask, reduce)
    out = (x.float() - mean) * torch.rsqrt(var + WHITEN_EPS)
    return torch.where(mask.bool(), out, torch.zeros_like(out))


@dataclass(frozen=True)
class SegmentAdvantages:
    """What :func:`segment_gae_advantages` returns for a batch (before whitening).

    Attributes:
        seg_ids: ``(B, T)`` long, segment of every token (-1 on padding).
        segment_mask: ``(B, M)`` bool.
        rewards, values, advantages, returns: ``(B, M)`` r_m, V(s_m), Â_m, R̂_m.
        token_advantages: ``(B, T)`` Â of each token's segment (0 on padding).
        token_returns: ``(B, T)`` R̂ of each token's segment (0 on padding).
    """

    seg_ids: torch.Tensor
    segment_mask: torch.Tensor
    rewards: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    token_advantages: torch.Tensor
    token_returns: torch.Tensor


def segment_gae_advantages(
    ends: torch.Tensor,
    mask: torch.Tensor,
    values: torch.Tensor,
    outcome: torch.Tensor,
    *,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    gamma: float = 1.0,
    lam: float = 0.99,
) -> SegmentAdvantages:
    """Segment rewards, values at segment ends, segment GAE and the broadcast to tokens (eqs. 6-7).

    Args:
        ends: ``(B, T)`` bool segment ends (the last valid token is made an end).
        mask: ``(B, T)``.
        values: ``(B, T)`` the critic's per-token values; only the end tokens' are read.
        outcome: ``(B,)`` outcome reward.
        kl, kl_coef: the in-reward KL penalty (:func:`segment_rewards`).
        gamma, lam: γ, λ.

    Returns:
        A :class:`SegmentAdvantages`.
    """
    _check_bt("values", values, mask)
    ends = with_last_token_end(ends, mask)
    ids = segment_ids(ends, mask)
    count = num_segments(ends, mask)
    M = int(count.max()) if count.numel() else 0
    seg_mask = torch.arange(M, device=mask.device)[None, :] < count[:, None]
    r = segment_rewards(ids, mask, outcome, M, kl, kl_coef)
    v = gather_at_ends(values.float(), ends, ids, M)
    adv, ret = segment_gae(r, v, seg_mask, gamma, lam)
    return SegmentAdvantages(
        ids, seg_mask, r, v, adv, ret, broadcast_to_tokens(adv, ids), broadcast_to_tokens(ret, ids)
    )


# --------------------------------------------------------------------------- losses


def segment_log_ratio(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    seg_ids: torch.Tensor,
    mask: torch.Tensor,
    clamp: float = LOG_RATIO_CLAMP,
) -> torch.Tensor:
    """Segment importance log-ratio, broadcast to the segment's tokens (SAPO eq. 8).

    ``log s_m = mean over the valid tokens t of segment m of clamp(log π(t) − log π_old(t), −c, c)``;
    the ratio is ``s_m = exp(log s_m)``. Gradients flow to every token of the segment.

    Args:
        logps: ``(B, T)`` log π_θ of the completion tokens. old_logps: ``(B, T)`` log π_old.
        seg_ids: ``(B, T)`` long (-1 = padding). mask: ``(B, T)``. clamp: c (20).

    Returns:
        ``(B, T)``: ``log s_m`` on every token of segment m; 0 on padding.
    """
    _check_bt("logps", logps, mask)
    valid = mask.bool() & (seg_ids >= 0)
    ids = torch.where(valid, seg_ids, torch.full_like(seg_ids, -1))
    num = int(ids.max()) + 1 if valid.any() else 0
    diff = torch.clamp(logps - old_logps, -clamp, clamp)
    diff = torch.where(valid, diff, torch.zeros_like(diff))
    sums = segment_sum(diff, ids, num)
    counts = segment_sum(valid.to(diff.dtype), ids, num)
    return broadcast_to_tokens(sums / counts.clamp(min=1.0), ids)


@dataclass(frozen=True)
class PolicyLoss:
    """Per-token dual-clip loss and its clip statistics (0-dim tensors, masked token means)."""

    per_token: torch.Tensor
    clip_frac: torch.Tensor
    clip_frac_low: torch.Tensor
    clip_frac_high: torch.Tensor
    dual_clip_frac: torch.Tensor


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (0 if empty)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def dual_clip_policy_loss(
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    clip_c: float = 3.0,
) -> PolicyLoss:
    """SAPO's clipped objective with the segment ratio (eq. 9), as a per-token loss to minimise.

    ``L = −min(s A, clip(s, 1 − ε_low, 1 + ε_high) A)``; for ``A < 0`` the dual clip bounds it by
    ``−c A`` (Ye et al. 2020, "Mastering Complex Control in MOBA Games with Deep RL", dual-clip
    PPO): ``L = min(−c A, max(−s A, −clip(s) A))``.

    Args:
        log_ratio: ``(B, T)`` log s (:func:`segment_log_ratio`).
        advantages: ``(B, T)``. mask: ``(B, T)``.
        clip_low, clip_high: ε_low, ε_high (0.2, 0.28). clip_c: c > 1 (3).

    Returns:
        A :class:`PolicyLoss`; aggregate ``per_token`` with :func:`masked_mean`.

    Raises:
        ValueError: ``clip_c <= 1``.
    """
    if clip_c <= 1.0:
        raise ValueError(f"the dual-clip constant c must be > 1, got {clip_c}")
    ratio = torch.exp(log_ratio)
    loss1 = -advantages * ratio
    loss2 = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    clipped = torch.maximum(loss1, loss2)
    loss3 = -advantages * clip_c
    negative = advantages < 0
    per_token = torch.where(negative, torch.minimum(loss3, clipped), clipped)
    with torch.no_grad():
        stats = {
            "clip_frac": masked_mean((loss2 > loss1).float(), mask),
            "clip_frac_low": masked_mean(((ratio < 1.0 - clip_low) & negative).float(), mask),
            "clip_frac_high": masked_mean(((ratio > 1.0 + clip_high) & (advantages > 0)).float(), mask),
            "dual_clip_frac": masked_mean(((clipped > loss3) & negative).float(), mask),
        }
    return PolicyLoss(per_token=per_token, **stats)


def segment_value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    ends: torch.Tensor,
    mask: torch.Tensor,
    old_values: torch.Tensor | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """Value loss at segment ends only (SAPO eq. 10): mean over segments of ``(V(s_m) − R̂_m)²``.

    Args:
        values: ``(B, T)`` the critic's current per-token values (only end tokens count).
        returns: ``(B, T)`` R̂ of each token's segment (:attr:`SegmentAdvantages.token_returns`).
        ends: ``(B, T)`` bool. mask: ``(B, T)``.
        old_values, clip: PPO value clipping (verl ``compute_value_loss``): with both given,
            the squared error is ``max((V − R̂)², (V_old + clip(V − V_old, ±clip) − R̂)²)``.

    Returns:
        0-dim tensor (0 if the batch has no end token).
    """
    _check_bt("values", values, mask)
    at_end = ends.bool() & mask.bool()
    err = (values.float() - returns.float()) ** 2
    if clip is not None and old_values is not None:
        clipped = old_values.float() + torch.clamp(values.float() - old_values.float(), -clip, clip)
        err = torch.maximum(err, (clipped - returns.float()) ** 2)
    return masked_mean(err, at_end)
