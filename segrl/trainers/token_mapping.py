"""From character spans and (B, K) advantages to the (B, T) advantages TRL's loss takes.

Two steps, both pure:

1. :func:`token_char_offsets` gives each generated token its character span in the decoded
   completion (the text the rewards saw). Fast path: the tokenizer's own offsets
   (``return_offsets_mapping=True``) when re-encoding the text gives back exactly the
   generated ids; otherwise (a sampled, non-canonical tokenisation) incremental decoding, O(T)
   decode calls of a few tokens each. Special tokens (EOS, pad) get empty spans.
2. :func:`assign_tokens_to_segments` gives each token the segment it overlaps most
   (character overlap with the segment's span, marker included); tokens overlapping no
   segment (preamble, separators, EOS) get -1. :func:`map_advantages_to_tokens` then writes
   ``A[i,k]`` on segment k's tokens and, elsewhere, the rollout-level advantage or, for a rollout
   that left segments out, their mean advantage (the rule is in its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Span = tuple[int, int]


def token_char_offsets(tokenizer, token_ids: Sequence[int], text: str) -> list[Span]:
    """Character span ``[start, end)`` in ``text`` of each of ``token_ids``.

    ``text`` must be ``tokenizer.decode(token_ids, skip_special_tokens=True)`` (what TRL
    hands the reward functions).

    Args:
        tokenizer: a Hugging Face tokenizer (fast tokenizers give the offsets fast path).
        token_ids: the T generated ids of one completion (may end with EOS).
        text: its decoded text.

    Returns:
        T spans; special tokens get ``(p, p)`` where p is the end of the text before them.
    """
    ids = [int(t) for t in token_ids]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    content = [t for t in ids if t not in special]
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) == content:
            it = iter(enc["offset_mapping"])
            spans: list[Span] = []
            pos = 0
            for t in ids:
                if t in special:
                    spans.append((pos, pos))
                else:
                    s, e = next(it)
                    spans.append((int(s), int(e)))
                    pos = int(e)
            return spans
    return _incremental_offsets(tokenizer, ids, special, len(text))


def _incremental_offsets(tokenizer, ids: list[int], special: set[int], n_chars: int) -> list[Span]:
    """Offsets by incremental decoding, O(T) decode calls over a few tokens each.

    The text a token adds is ``decode(window + [token]) - decode(window)`` over a short window of
    the tokens before it (the "prefix offset / read offset" scheme of vLLM's and TGI's incremental
    detokenizers: the window keeps the context a decoder needs, e.g. a leading space). A token that
    adds no character (its decode is as long as, or shorter than, the text before it: a byte that
    completes a character whose first byte already decoded to U+FFFD, a clean-up that merges a
    blank) gets an empty span; the next token that adds text takes the span of what it adds, at
    the position reached so far, so positions never move back and the spans after it stay where
    they are in ``text``. The previous fallback decoded every prefix (O(T^2) token decodes) to get
    the same positions. Spans are clamped to ``n_chars`` (the length of the text the rewards saw).
    """
    spans: list[Span] = []
    pos = 0
    window: list[int] = []  # tokens already turned into text, kept as decoding context
    pending: list[int] = []  # tokens whose text is not complete yet
    for t in ids:
        if t in special:
            spans.append((pos, pos))
            continue
        pending.append(t)
        before = tokenizer.decode(window, skip_special_tokens=True) if window else ""
        after = tokenizer.decode(window + pending, skip_special_tokens=True)
        if len(after) > len(before):
            end = min(n_chars, pos + len(after) - len(before))
            spans.append((pos, end))
            pos = end
            window = (window + pending)[-_WINDOW:]
            pending = []
        else:
            spans.append((pos, pos))
    return spans


_WINDOW = 4
"""Tokens of decoding context kept before the next token (a leading-space or byte-merge rule
never looks further back)."""


def assign_tokens_to_segments(token_spans: Sequence[Span], segment_spans: Sequence[Span]) -> list[int]:
    """Index of the segment each token belongs to, or -1.

    A token belongs to the segment whose span it overlaps by the most characters (ties go to
    the earlier segment); a token that overlaps no segment, or is empty, gets -1. Missing
    segments have span ``(-1, -1)`` and receive no token.

    Args:
        token_spans: T ``(start, end)`` character spans.
        segment_spans: K ``(start, end)`` character spans (``(-1, -1)`` = missing).

    Returns:
        T segment indices in ``[-1, K)``.
    """
    present = [(k, s, e) for k, (s, e) in enumerate(segment_spans) if s >= 0 and e > s]
    out = []
    for ts, te in token_spans:
        best, best_ov = -1, 0
        if te > ts:
            for k, s, e in present:
                ov = min(te, e) - max(ts, s)
                if ov > best_ov:
                    best, best_ov = k, ov
        out.append(best)
    return out


def segment_index_tensor(assignments: Sequence[Sequence[int]], T: int) -> torch.Tensor:
    """Pad per-completion token→segment lists into a ``(B, T)`` long tensor (-1 beyond each length).

    Raises:
        ValueError: if a completion has more than T tokens.
    """
    out = torch.full((len(assignments), T), -1, dtype=torch.long)
    for i, a in enumerate(assignments):
        if len(a) > T:
            raise ValueError(f"completion {i} has {len(a)} tokens but the batch is padded to T={T}")
        out[i, : len(a)] = torch.as_tensor(list(a), dtype=torch.long)
    return out


def map_advantages_to_tokens(
    rollout: torch.Tensor,
    segment: torch.Tensor | None,
    token_segment: torch.Tensor,
    *,
    segment_mask: torch.Tensor | None = None,
    present: torch.Tensor | None = None,
    completion_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token advantages: which tokens carry which advantage (segrl's rule; the papers are silent).

    1. A token of a present, scorable segment k carries ``segment[i, k]``.
    2. A token of a present segment whose reference cannot be scored (``segment_mask`` False)
       carries the rollout-level advantage ``rollout[i]``, as every token does under GRPO (so
       ``blend`` at alpha = 1 is GRPO on every token).
    3. A token outside every present segment (preamble, separators, unlabelled or duplicated
       text, EOS) carries ``rollout[i]`` when rollout i wrote all its scorable segments. When it
       left some out (``segment_mask & ~present``), these tokens carry instead the mean of the
       missing segments' advantages: the text written in their place, or the EOS written before
       them, is what omitted them, so omitting a segment is penalised on the rollout's own tokens
       (without the rule a missing segment's advantage, negative when the group wrote it, reached no
       token and omission cost nothing on segment tokens: issue 15). The mean keeps the carriers'
       advantage on the scale of one segment's. At K = 1 the missing segment's advantage equals the
       rollout's, so the rule leaves ``sd_grpo == grpo`` intact.
    4. A rollout with missing segments but no token outside its present segments (a truncated
       completion with no EOS) puts that mean on its last completion token instead.

    Rules 2–4 need ``segment_mask``, ``present`` and ``completion_mask``; without them every token
    outside a segment, or of an unscorable one, carries ``rollout[i]``. With ``segment=None``
    (scalar algorithms) every token gets ``rollout[i]``.

    Args:
        rollout: ``(B,)``.
        segment: ``(B, K)`` or None.
        token_segment: ``(B, T)`` long, values in ``[-1, K)`` (-1: outside every segment, or padding).
        segment_mask: ``(B, K)`` bool, scorable segments.
        present: ``(B, K)`` bool, segments the completion wrote.
        completion_mask: ``(B, T)`` the completion's real tokens (TRL's ``completion_mask``).

    Returns:
        ``(B, T)`` float, on ``token_segment``'s device.

    Raises:
        ValueError: on mismatched shapes or a segment index ``>= K``.
    """
    B, T = token_segment.shape
    if rollout.shape != (B,):
        raise ValueError(f"rollout must be (B={B},), got {tuple(rollout.shape)}")
    device = token_segment.device
    base = rollout.to(device, torch.float32)[:, None].expand(B, T)
    if segment is None:
        return base.clone()
    if segment.shape[0] != B:
        raise ValueError(f"segment must be (B={B}, K), got {tuple(segment.shape)}")
    K = segment.shape[1]
    if K == 0:
        return base.clone()
    if int(token_segment.max()) >= K:
        raise ValueError(f"token_segment holds index {int(token_segment.max())} but K={K}")
    for name, t, shape in (("segment_mask", segment_mask, (B, K)), ("present", present, (B, K)),
                           ("completion_mask", completion_mask, (B, T))):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name} must be {shape}, got {tuple(t.shape)}")
    seg = segment.to(device, torch.float32)
    idx = token_segment.clamp(min=0)
    in_segment = token_segment >= 0
    if segment_mask is not None:  # rule 2: an unscorable segment's tokens carry the rollout advantage
        in_segment = in_segment & torch.gather(segment_mask.to(device).bool(), 1, idx)
    out = torch.where(in_segment, torch.gather(seg, 1, idx), base)
    if segment_mask is None or present is None or completion_mask is None:
        return out
    missing = segment_mask.to(device).bool() & ~present.to(device).bool()  # (B, K)
    n_missing = missing.sum(1)
    if not bool(n_missing.any()):
        return out
    carried = torch.where(missing, seg, torch.zeros_like(seg)).sum(1) / n_missing.clamp(min=1)  # (B,)
    real = completion_mask.to(device).bool()
    outside = (token_segment < 0) & real  # rule 3's carriers
    none_outside = ~outside.any(1) & real.any(1)
    last = real.long().cumsum(1).eq(real.long().sum(1, keepdim=True)) & real  # rule 4: the last real token
    carriers = outside | (none_outside[:, None] & last)
    carriers = carriers & (n_missing > 0)[:, None]
    return torch.where(carriers, carried[:, None].expand(B, T), out)
