"""Token mapping: character spans -> token segment ids -> (B, T) advantages."""

import pytest
import torch

from segrl.segments import parse_segments
from segrl.trainers.token_mapping import (
    assign_tokens_to_segments,
    map_advantages_to_tokens,
    segment_index_tensor,
    token_char_offsets,
)


def test_assign_tokens_by_largest_overlap():
    # text: "Hi\nAnswer 1: 17\nAnswer 2: blue"
    text = "Hi\nAnswer 1: 17\nAnswer 2: blue"
    spans = parse_segments(text, ["Answer 1", "Answer 2"]).spans
    assert spans == [(3, 15), (16, 30)]
    tokens = [(0, 2), (2, 9), (9, 12), (12, 15), (15, 16), (15, 22), (25, 30), (30, 30)]
    # "Hi" outside; "\nAnswer" overlaps seg 0 by 6 chars; " 1:" seg 0; " 17" seg 0; "\n" outside;
    # "\nAnswe" overlaps seg 1 by 6; " blue" seg 1; an empty (EOS) token is outside.
    assert assign_tokens_to_segments(tokens, spans) == [-1, 0, 0, 0, -1, 1, 1, -1]


def test_missing_segments_receive_no_tokens():
    assert assign_tokens_to_segments([(0, 3), (3, 6)], [(-1, -1), (0, 6)]) == [1, 1]


def test_map_advantages_to_tokens_by_hand():
    rollout = torch.tensor([0.5, -1.0])
    segment = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    token_segment = segment_index_tensor([[-1, 0, 0, 1], [1, -1]], T=4)
    out = map_advantages_to_tokens(rollout, segment, token_segment)
    assert torch.equal(out, torch.tensor([[0.5, 1.0, 1.0, 2.0], [4.0, -1.0, -1.0, -1.0]]))
    assert torch.equal(map_advantages_to_tokens(rollout, None, token_segment), rollout[:, None].expand(2, 4))


# ---------------------------------------------------------------- on the real tiny tokenizer


@pytest.fixture(scope="module")
def tokenizer(colour_tiny_model):
    from segrl.models import load_policy

    return load_policy(str(colour_tiny_model))[1].tokenizer


def _token_texts_by_segment(tokenizer, ids, text, labels):
    spans = parse_segments(text, labels).spans
    seg_of = assign_tokens_to_segments(token_char_offsets(tokenizer, ids, text), spans)
    groups = {}
    for t, k in zip(ids, seg_of):
        groups.setdefault(k, []).append(t)
    return {k: tokenizer.decode(v) for k, v in groups.items()}, seg_of


def test_segment_tokens_on_the_real_tokenizer_carry_their_advantage(tokenizer):
    text = "Sure.\nAnswer 1: red\nAnswer 2: dark blue"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    by_seg, seg_of = _token_texts_by_segment(tokenizer, ids, text, ["Answer 1", "Answer 2"])
    assert by_seg[0].strip() == "Answer 1: red"
    assert by_seg[1].strip() == "Answer 2: dark blue"
    assert by_seg[-1].replace("\n", "").replace("</s>", "").strip() == "Sure."
    assert seg_of[-1] == -1  # EOS carries the rollout-level advantage
    adv = map_advantages_to_tokens(
        torch.tensor([0.25]), torch.tensor([[1.5, -2.0]]), segment_index_tensor([seg_of], len(ids))
    )[0]
    for t, k in enumerate(seg_of):
        assert adv[t] == {-1: 0.25, 0: 1.5, 1: -2.0}[k]


def test_non_canonical_tokenisation_uses_the_exact_fallback(tokenizer):
    # Sampling can produce a tokenisation the tokenizer would not choose (here: one token per
    # character); offsets must still be exact, so each character lands in its own segment.
    text = "Answer 1: ab\nAnswer 2: cd"
    ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(ch)[0]) for ch in text]
    assert tokenizer(text, add_special_tokens=False)["input_ids"] != ids
    offsets = token_char_offsets(tokenizer, ids, text)
    assert offsets == [(i, i + 1) for i in range(len(text))]
    seg_of = assign_tokens_to_segments(offsets, parse_segments(text, ["Answer 1", "Answer 2"]).spans)
    assert seg_of == [0] * 12 + [-1] + [1] * 12


def _prefix_reference(tokenizer, ids):
    """The exact plain-loop reference: the decoded length of every prefix (O(T^2) token decodes)."""
    spans, prev = [], 0
    special = set(tokenizer.all_special_ids)
    for j, t in enumerate(ids):
        cur = max(prev, len(tokenizer.decode(ids[: j + 1], skip_special_tokens=True)))
        spans.append((prev, prev) if t in special else (prev, cur))
        prev = cur
    return spans


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fallback_equals_the_prefix_reference_with_linear_decoding(tokenizer, seed):
    """Random non-canonical tokenisations (one token per character, UTF-8 bytes of emoji and accents
    split over several tokens, EOS inside): the incremental fallback gives the reference's spans and
    decodes O(T) tokens where the reference decoded O(T^2)."""
    import random

    rng = random.Random(seed)
    pieces = ["Answer 1: ", "red", "\u00e9", "\U0001f600", " \u4e2d", "\nAnswer 2: ", "dark blue", ",", " ", "x"]
    text_parts = [rng.choice(pieces) for _ in range(60)]
    ids = []
    for part in text_parts:
        for ch in part:
            ids += tokenizer(ch, add_special_tokens=False)["input_ids"]
        if rng.random() < 0.05:
            ids.append(tokenizer.eos_token_id)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    assert tokenizer(text, add_special_tokens=False)["input_ids"] != [t for t in ids if t != tokenizer.eos_token_id]

    decoded = []

    class Counting:  # the tokenizer, counting the tokens it decodes
        def __getattr__(self, name):
            return getattr(tokenizer, name)

        def __call__(self, *args, **kwargs):
            return tokenizer(*args, **kwargs)

        def decode(self, token_ids, **kwargs):
            decoded.append(len(token_ids))
            return tokenizer.decode(token_ids, **kwargs)

    got = token_char_offsets(Counting(), ids, text)
    assert got == _prefix_reference(tokenizer, ids)
    T = len(ids)
    assert T > 150 and sum(decoded) <= 12 * T  # the prefix loop decoded T (T + 1) / 2 tokens
