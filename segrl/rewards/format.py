"""Format reward: did the completion write every expected segment label, cleanly?

segrl's own rule (no paper defines it; in the spirit of the format rewards of DeepSeek-R1,
Guo et al., 2025, and TRL's ``trl.rewards.think_format_reward``, made graded so that a
partially formatted answer earns partial credit):

    format = (present labels / expected labels) * (1.0 if clean else 0.5)

where *clean* means the present labels appear in the expected order, none is repeated and
no unexpected label of the same family (``Answer 7:`` when 4 are expected) appears — the
``ordered`` / ``duplicates`` / ``unexpected`` fields of
:func:`segrl.segments.parse_segments`. A label written with an empty text counts as
present (the parser's rule 5).
"""

from __future__ import annotations

from collections.abc import Sequence

from segrl.segments import parse_segments

UNCLEAN_FACTOR = 0.5  # multiplier when labels are out of order, repeated or unexpected


def format_score(completion: str, labels: Sequence[str]) -> float:
    """Format reward of one completion, in [0, 1] (formula in the module docstring).

    Raises:
        ValueError: ``labels`` is empty or has duplicate/blank labels (a data bug).
    """
    parsed = parse_segments(completion if isinstance(completion, str) else "", labels)
    fraction = parsed.n_present / len(parsed.segments)
    clean = parsed.ordered and parsed.duplicates == 0 and parsed.unexpected == 0
    return fraction * (1.0 if clean else UNCLEAN_FACTOR)


def format_reward(
    completions: Sequence[str], segment_labels: Sequence[Sequence[str]], **kwargs
) -> list[float]:
    """Format reward of B completions (TRL reward-function signature).

    Args:
        completions: B completion texts (any string; non-strings count as ``""``).
        segment_labels: B label lists, e.g. ``["Answer 1", "Answer 2"]``.
        **kwargs: ignored (TRL passes the other dataset columns).

    Returns:
        B floats in [0, 1].

    Raises:
        ValueError: the two lists differ in length, or a label list is empty / has duplicates.
    """
    if len(completions) != len(segment_labels):
        raise ValueError(
            f"format_reward: {len(completions)} completions but {len(segment_labels)} label lists"
        )
    return [format_score(c, labels) for c, labels in zip(completions, segment_labels)]
