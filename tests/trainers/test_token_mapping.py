"""Token mapping: character spans -> token segment ids -> (B, T) advantages."""

import torch

from segrl.tasks.segments import parse_segments
from segrl.trainers.token_mapping import (
    assign_tokens_to_segments,
    map_advantages_to_tokens,
    segment_index_tensor,
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
