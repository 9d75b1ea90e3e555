"""From character spans and (B, K) advantages to the (B, T) advantages TRL's loss takes.

Two steps, both pure:

1. :func:`token_char_offsets` gives each generated token its character span in the decoded
   completion (the text the rewards saw). Fast path: the tokenizer's own offsets
   (``return_offsets_mapping=True``) when re-encoding the text gives back exactly the
   generated ids; otherwise (a sampled, non-canonical tokenisation) the exact but slower
   prefix-decoding path. Special tokens (EOS, pad) get empty spans.
2. :func:`assign_tokens_to_segments` gives each token the segment it overlaps most
   (character overlap with the segment's span, marker included); tokens overlapping no
   segment (preamble, separators, EOS) get -1. :func:`map_advantages_to_tokens` then writes
   ``A[i,k]`` on segment k's tokens and the rollout-level advantage elsewhere.
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
    # Exact fallback: the decoded length of every prefix.
    spans = []
    prev = 0
    for j in range(len(ids)):
        cur = len(tokenizer.decode(ids[: j + 1], skip_special_tokens=True))
        cur = max(cur, prev)
        spans.append((prev, cur))
        prev = cur
    return spans


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
    rollout: torch.Tensor, segment: torch.Tensor | None, token_segment: torch.Tensor
) -> torch.Tensor:
    """Per-token advantages.

    ``out[i, t] = segment[i, token_segment[i, t]]`` where ``token_segment[i, t] >= 0``, else
    ``rollout[i]``. With ``segment=None`` (scalar algorithms) every token gets ``rollout[i]``.

    Args:
        rollout: ``(B,)``.
        segment: ``(B, K)`` or None.
        token_segment: ``(B, T)`` long, values in ``[-1, K)``.

    Returns:
        ``(B, T)`` float, on ``token_segment``'s device.

    Raises:
        ValueError: on mismatched batch sizes or a segment index ``>= K``.
    """
    B, T = token_segment.shape
    if rollout.shape != (B,):
        raise ValueError(f"rollout must be (B={B},), got {tuple(rollout.shape)}")
    base = rollout.to(token_segment.device, torch.float32)[:, None].expand(B, T)
    if segment is None:
        return base.clone()
    if segment.shape[0] != B:
        raise ValueError(f"segment must be (B={B}, K), got {tuple(segment.shape)}")
    K = segment.shape[1]
    if K == 0:
        return base.clone()
    if int(token_segment.max()) >= K:
        raise ValueError(f"token_segment holds index {int(token_segment.max())} but K={K}")
    seg = segment.to(token_segment.device, torch.float32)
    gathered = torch.gather(seg, 1, token_segment.clamp(min=0))
    return torch.where(token_segment >= 0, gathered, base)
