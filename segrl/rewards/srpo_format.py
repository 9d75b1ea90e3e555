"""SRPO's structured answer: ``<perception>`` and ``<reasoning>`` blocks, then the labelled answer lines.

SRPO ("Structured Role-Aware Policy Optimization for Multimodal Reasoning", arXiv 2605.07274;
only the abstract is public) asks the policy for the visual evidence, then the reasoning,
then the final answer, and checks that structure with a format reward. segrl's layout keeps
every task's answer lines unchanged after the two blocks, so the segment parser and every
per-segment reward still work::

    <perception>17.5; Blue</perception>
    <reasoning>Each answer restates the evidence above.</reasoning>
    Answer 1: 17.5
    Answer 2: Blue

Rules (our reconstruction; the trainer, the token weights and the reward all use them):

1. **Block.** A block is the first ``<perception>`` (resp. ``<reasoning>``) and the first
   matching close tag after it. Tags are matched exactly (lowercase, no inner blanks); an
   unclosed tag is no block. Found with ``str.find`` (linear time on any string).
2. **Content.** The text between the tags, stripped of surrounding whitespace; an empty
   content is a *present* but empty block.
3. **Clean.** Every tag that appears appears once and forms its block (no stray, repeated or
   unclosed tag); the blocks do not overlap and perception comes before reasoning; no answer
   label starts before the end of the last block.
4. **Blanking.** Before the answer lines are parsed and scored, every block (tags included)
   is overwritten with spaces, line breaks kept (:func:`blank_blocks`): character positions
   do not move (so the token mapping still holds), and a label written inside a block is not
   mistaken for an answer. ``...</reasoning>Answer 1: x`` on one line then parses, since a
   label may follow leading blanks.

Reward (:func:`structure_score`), graded like segrl's label format reward
(:mod:`segrl.rewards.format`)::

    structure = (0.5 * [perception non-empty] + 0.5 * [reasoning non-empty]) * (1.0 if clean else 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from segrl.segments import parse_segments

TAGS = {"perception": ("<perception>", "</perception>"), "reasoning": ("<reasoning>", "</reasoning>")}
"""Open and close tag of each role."""

UNCLEAN_FACTOR = 0.5  # multiplier when the structure is present but not clean (rule 3)


@dataclass(frozen=True)
class Block:
    """One tagged block of a completion (character offsets, end exclusive).

    Attributes:
        start: offset of the open tag.
        end: offset just past the close tag.
        content_start, content_end: the stripped content between the tags
            (``content_start == content_end`` when it is empty).
    """

    start: int
    end: int
    content_start: int
    content_end: int

    @property
    def empty(self) -> bool:
        return self.content_end <= self.content_start

    @property
    def content(self) -> tuple[int, int]:
        return (self.content_start, self.content_end)

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)


@dataclass(frozen=True)
class Structure:
    """The perception/reasoning structure of one completion (:func:`parse_structure`).

    Attributes:
        perception, reasoning: the first block of each role, or None (rule 1).
        once: each role's tags appear exactly once and form its block, or do not appear at all.
    """

    perception: Block | None
    reasoning: Block | None
    once: bool

    @property
    def ordered(self) -> bool:
        """The present blocks do not overlap and perception comes first."""
        if self.perception is None or self.reasoning is None:
            return True
        return self.perception.end <= self.reasoning.start

    @property
    def complete(self) -> bool:
        """Both blocks present with non-empty content, each tag once, perception first.

        Only a complete structure gets SRPO token weights; any other rollout is trained as
        plain GRPO / SD-GRPO (weights 1) and counted in ``srpo/structure_missing_frac``.
        """
        p, r = self.perception, self.reasoning
        return p is not None and r is not None and not p.empty and not r.empty and self.once and self.ordered

    @property
    def blocks(self) -> list[Block]:
        return [b for b in (self.perception, self.reasoning) if b is not None]


def _find_block(text: str, open_tag: str, close_tag: str) -> Block | None:
    start = text.find(open_tag)
    if start < 0:
        return None
    inner = start + len(open_tag)
    close = text.find(close_tag, inner)
    if close < 0:
        return None
    body = text[inner:close]
    lead = len(body) - len(body.lstrip())
    stripped = body.strip()
    content_start = inner + lead
    return Block(start=start, end=close + len(close_tag), content_start=content_start,
                 content_end=content_start + len(stripped))


def parse_structure(text: str) -> Structure:
    """Find the ``<perception>`` and ``<reasoning>`` blocks of ``text`` (rules 1–3 of the module docstring).

    Args:
        text: any string (non-strings count as ``""``); never raises.

    Returns:
        A :class:`Structure`.
    """
    text = text if isinstance(text, str) else ""
    blocks = {role: _find_block(text, o, c) for role, (o, c) in TAGS.items()}
    once = all((text.count(o), text.count(c)) == ((1, 1) if blocks[role] is not None else (0, 0))
               for role, (o, c) in TAGS.items())
    return Structure(perception=blocks["perception"], reasoning=blocks["reasoning"], once=once)


def blank_blocks(text: str, structure: Structure) -> str:
    """``text`` with every block of ``structure`` (tags included) overwritten by spaces, line breaks kept.

    The result has the same length and the same line breaks as ``text`` (rule 4).
    """
    if not structure.blocks:
        return text
    chars = list(text)
    for b in structure.blocks:
        for j in range(b.start, b.end):
            if chars[j] != "\n":
                chars[j] = " "
    return "".join(chars)


def structure_score(structure: Structure, answer_starts: Sequence[int] = ()) -> float:
    """Structure reward in [0, 1] (formula in the module docstring).

    Args:
        structure: from :func:`parse_structure`.
        answer_starts: character offsets of the answer labels that were written (parsed on
            the blanked text, :func:`blank_blocks`); one starting before the end of the last
            block makes the structure unclean.
    """
    p, r = structure.perception, structure.reasoning
    fraction = 0.5 * (p is not None and not p.empty) + 0.5 * (r is not None and not r.empty)
    if fraction == 0:
        return 0.0
    last_end = max(b.end for b in structure.blocks)
    clean = structure.once and structure.ordered and all(s >= last_end for s in answer_starts)
    return fraction * (1.0 if clean else UNCLEAN_FACTOR)


def structure_reward(completions: Sequence[str], segment_labels: Sequence[Sequence[str]], **kwargs) -> list[float]:
    """SRPO structure reward of B completions (TRL reward-function signature).

    Args:
        completions: B completion texts (any string; non-strings count as ``""``).
        segment_labels: B label lists (the answer lines that must follow the blocks).
        **kwargs: ignored (TRL passes the other dataset columns).

    Returns:
        B floats in [0, 1] (:func:`structure_score`).

    Raises:
        ValueError: the two lists differ in length, or a label list is empty / has duplicates.
    """
    if len(completions) != len(segment_labels):
        raise ValueError(f"structure_reward: {len(completions)} completions but {len(segment_labels)} label lists")
    out = []
    for text, labels in zip(completions, segment_labels):
        text = text if isinstance(text, str) else ""
        st = parse_structure(text)
        parsed = parse_segments(blank_blocks(text, st), labels)
        out.append(structure_score(st, [s.start for s in parsed.segments if s.present]))
    return out


def complete_fraction(completions: Sequence[str]) -> float:
    """Fraction of ``completions`` whose structure is complete (:attr:`Structure.complete`), in [0, 1].

    The rate at which SRPO's weights can act: a rollout without a complete structure trains as
    plain GRPO / SD-GRPO (the trainer logs ``1 - rate`` as ``srpo/structure_missing_frac``).

    Raises:
        ValueError: no completions.
    """
    if not completions:
        raise ValueError("complete_fraction: no completions")
    return sum(parse_structure(c).complete for c in completions) / len(completions)
