"""Grounding rewards (VisionReasoner, Dr. Seg, per-object IoU) against hand-computed values."""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segrl.rewards import make_segment_reward
from segrl.rewards.grounding import (
    DistributionRankedReward,
    GroundingObject,
    box_iou,
    drr_raw_metrics,
    format_reward,
    grounding_metrics,
    has_look,
    match_objects,
    non_repeat_reward,
    object_format,
    object_iou,
    parse_answer,
    point_score,
    section,
    targets_from_references,
    thinking_format,
    union_iou,
    vision_reasoner_accuracy,
)

T1 = GroundingObject((0.0, 0.0, 99.0, 99.0), (50.0, 50.0))
T2 = GroundingObject((200.0, 0.0, 299.0, 99.0), (250.0, 50.0))
TARGETS = [T1, T2]


def obj(box, point):
    return GroundingObject(tuple(map(float, box)), tuple(map(float, point)))


def answer(*lines: str, think: str = "<look>two boxes</look> checked") -> str:
    return f"<think>{think}</think>\n<answer>\n" + "\n".join(lines) + "\n</answer>"


def line(k, box, point):
    return f'Object {k}: {{"bbox_2d": {list(box)}, "point_2d": {list(point)}}}'


# ----------------------------------------------------------------------------- IoU and matching


def test_box_iou_is_pixel_inclusive_and_clamps_degenerate_boxes():
    # [0, 9] and [5, 14] cover 10 pixels each per side; overlap 5 x 5 = 25, union 100 + 100 - 25.
    assert box_iou(np.array([[0, 0, 9, 9]]), np.array([[5, 5, 14, 14]]))[0, 0] == pytest.approx(25 / 175)
    assert box_iou(np.array([[3, 3, 3, 3]]), np.array([[3, 3, 3, 3]]))[0, 0] == 1.0  # a one-pixel box
    # x2 = x1 - 1: zero area. The reference divides 0 by 0 (NaN); here the IoU is 0.
    assert box_iou(np.array([[5, 5, 4, 10]]), np.array([[5, 5, 4, 10]]))[0, 0] == 0.0
    # Inverted in both axes: the reference's area (-4) * (-4) = 16 would be positive; clamped to 0 here.
    assert box_iou(np.array([[10, 10, 5, 5]]), np.array([[0, 0, 20, 20]]))[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), np.array([[0, 0, 1, 1]])).shape == (0, 1)
    huge = np.array([[-1.7e308, -1.7e308, 1.7e308, 1.7e308]])
    assert box_iou(huge, huge)[0, 0] == 0.0  # overflow (inf - inf) scores 0, never NaN


def test_matching_and_accuracies_on_a_hand_computed_case():
    # P1 vs T1: overlap 95 x 95 = 9025, union 20000 - 9025 = 10975 -> IoU 0.8223 > 0.5; L1 = 5 < 10;
    # point distance sqrt(10^2 + 10^2) = 14.14 < 30 and (60, 60) inside P1 -> cost 0.
    # P2 vs T2: overlap 60 x 100 = 6000, union 14000 -> IoU 0.4286; L1 = (40 + 0 + 40 + 0) / 4 = 20;
    # distance 40 -> cost 3. Cross pairs share no pixel and are far -> cost 3.
    p1, p2 = obj([5, 5, 104, 104], [60, 60]), obj([240, 0, 339, 99], [290, 50])
    m = match_objects([p1, p2], TARGETS)
    np.testing.assert_allclose(m.cost, [[0, 3], [3, 3]])
    assert sorted(zip(m.rows.tolist(), m.cols.tolist())) == [(0, 0), (1, 1)]
    assert m.iou[0, 0] == pytest.approx(9025 / 10975) and m.iou[1, 1] == pytest.approx(6000 / 14000)
    assert vision_reasoner_accuracy([p1, p2], TARGETS) == pytest.approx((3 * 2 - 3) / 2)  # 1.5
    x1, x2, x3 = drr_raw_metrics([p1, p2], TARGETS)
    assert x1 == pytest.approx((9025 / 10975 + 6000 / 14000) / 2)
    assert x2 == 1.0
    assert x3 == pytest.approx((1.0 + (200 - 40) / 170) / 2)  # d = 14.1 -> 1; d = 40 -> 160/170


def test_perfect_answer_scores_the_maximum():
    assert vision_reasoner_accuracy(TARGETS, TARGETS) == 3.0
    assert drr_raw_metrics(TARGETS, TARGETS) == (1.0, 1.0, 1.0)


def test_no_prediction():
    assert vision_reasoner_accuracy([], TARGETS) == 0.0
    assert drr_raw_metrics([], TARGETS) == (0.0, 0.0, 0.0)  # x2 = min(0, 2) / max(0, 2)
    assert drr_raw_metrics([], []) == (0.0, 1.0, 0.0)  # both empty: count fit 1 (reference)


def test_more_predictions_than_targets():
    extra = obj([500, 500, 599, 599], [550, 550])
    # Both targets matched at cost 0; the extra prediction only raises max(M, N) to 3.
    assert vision_reasoner_accuracy([T1, T2, extra], TARGETS) == pytest.approx(6 / 3)
    assert drr_raw_metrics([T1, T2, extra], TARGETS) == pytest.approx((1.0, 2 / 3, 1.0))


def test_degenerate_predicted_box():
    # Inverted box: IoU 0, L1 = 99, and its point (50, 50) is not inside [99, 99, 0, 0] -> cost 3.
    bad = obj([99, 99, 0, 0], [50, 50])
    assert vision_reasoner_accuracy([bad], [T1]) == 0.0
    assert drr_raw_metrics([bad], [T1]) == (0.0, 1.0, 1.0)  # x3 needs no in-box test: distance 0


def test_point_score_piecewise():
    np.testing.assert_allclose(point_score([0, 30, 115, 200, 1e9]), [1.0, 1.0, 85 / 170, 0.0, 0.0])


def test_at_most_120_objects_are_matched():
    many = [T1] * 130
    m = match_objects(many, [T1])
    assert (m.n_pred, m.n_target) == (120, 1)
    assert vision_reasoner_accuracy(many, [T1]) == pytest.approx(3 / 120)


# ----------------------------------------------------------------------------- parsing and format


def test_parse_answer_labelled_lines_and_json_list():
    text = answer(line(1, [0, 0, 99, 99], [50, 50]), line(2, [200, 0, 299, 99], [250, 50]))
    assert parse_answer(text).objects == TARGETS
    listed = '<answer>[{"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}]</answer>'
    assert parse_answer(listed).objects == [T1]
    assert parse_answer("no tags").found is False and parse_answer("no tags").objects == []


def test_malformed_json_removes_every_prediction():
    broken = answer('Object 1: {"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]',  # no closing brace
                    line(2, [200, 0, 299, 99], [250, 50]))
    parsed = parse_answer(broken)
    assert len(parsed.items) == 2 and parsed.items[0] is None
    assert parsed.objects == []  # all or nothing, as the reference
    assert object_format(broken) == pytest.approx((0 + 2) / 2)
    assert vision_reasoner_accuracy(parsed.objects, TARGETS) == 0.0
    assert object_format('<answer>[{"bbox_2d": [0, 0, 99, 99], </answer>') == 0.0  # broken JSON list


def test_non_numbers_and_non_finite_coordinates_are_invalid():
    for box in ("[0, 0, NaN, 99]", "[0, 0, 1e309, 99]", '[0, 0, "9", 99]', "[0, 0, true, 99]", "[0, 0, 99]",
                "[0, 0, 1" + "0" * 400 + ", 99]"):
        text = answer(f'Object 1: {{"bbox_2d": {box}, "point_2d": [50, 50]}}')
        assert parse_answer(text).objects == []
        assert object_format(text) == 1.0  # the point still counts


def test_format_reward_hand_values():
    good = answer(line(1, [0, 0, 99, 99], [50, 50]), line(2, [200, 0, 299, 99], [250, 50]))
    assert format_reward(good) == 4.0  # think/answer 1 + objects 2 + look 1
    assert format_reward(good, look_bonus=False) == 3.0  # VisionReasoner
    no_look = answer(line(1, [0, 0, 99, 99], [50, 50]), think="plain")
    assert format_reward(no_look) == 3.0
    # One object with a 3-number box: (1 + 2) / 2 object score.
    half = answer('Object 1: {"bbox_2d": [0, 0, 9], "point_2d": [5, 5]}', line(2, [0, 0, 9, 9], [5, 5]))
    assert format_reward(half) == pytest.approx(1 + 1.5 + 1)
    assert format_reward(good + "\n") == 3.0  # fullmatch: trailing text breaks the think/answer format
    assert format_reward("") == 0.0


def test_thinking_format_matches_the_reference_regex():
    pattern = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
    cases = ["<think>a</think>\n<answer>b</answer>", "<think>a</think>x<answer>b</answer>",
             "<think></think><answer></answer>", "<think>a</think>b</think> <answer>c</answer>",
             "<think>a</think><answer>b</answer>\n", " <think>a</think><answer>b</answer>",
             "<think>a</answer>", "<think></think>\n\t <answer></answer></answer>", "<think></think><answer>",
             "<think><answer></think><answer>x</answer>", "<think>a</think>   </answer>"]
    for text in cases:
        assert thinking_format(text) == float(pattern.fullmatch(text) is not None), text


def test_look_block_must_be_non_empty_and_inside_think_or_answer():
    assert has_look("<think>x <look>red circle</look></think><answer>[]</answer>")
    assert has_look("<think>x</think><answer><look> y </look></answer>")
    assert not has_look("<think>x <look>  </look></think><answer>[]</answer>")  # blank look
    assert not has_look("<think>x</think><answer>[]</answer> <look>outside</look>")
    assert not has_look("<look>no think</look>")
    assert section("<think> a </think> <think>b</think>", "think") == "a"


def test_non_repeat_reward():
    assert non_repeat_reward("The red circle. The blue square. A triangle.") == 1.0
    assert non_repeat_reward("The red circle. The red circle. A triangle.") == 1.0  # one repeat is allowed
    assert non_repeat_reward("The red circle. the red circle! THE RED CIRCLE?") == 0.0  # two repeats
    assert non_repeat_reward("A. B. A. B.") == 0.0
    assert non_repeat_reward("<think> [your reasoning text] </think>") == 0.0  # prompt placeholder
    assert non_repeat_reward("I keep my visual-focus: Your  Visual\nFocus") == 0.0
    assert non_repeat_reward("") == 1.0


# ----------------------------------------------------------------------------- per-object IoU


def test_object_iou_segment_reward():
    ref = ['{"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}\n</answer>']
    preds = ['{"bbox_2d": [5, 5, 104, 104], "point_2d": [60, 60]}', "a red circle", '{"bbox_2d": [0, 0, 99]}']
    assert object_iou(preds, [ref] * 3) == pytest.approx([9025 / 10975, 0.0, 0.0])
    assert object_iou(["{}"], [["not an object"]]) == [None]
    metric = make_segment_reward("iou")
    assert metric(['{"bbox_2d": [0, 0, 99, 99], "point_2d": [1, 1]}'], [ref]) == [1.0]
    assert targets_from_references([ref]) == [T1]
    with pytest.raises(ValueError, match="segment 1"):
        targets_from_references([["oops"]])


# ----------------------------------------------------------------------------- evaluation


def test_union_iou_and_grounding_metrics():
    small = [obj([0, 0, 9, 9], [5, 5])]
    assert union_iou(small, [obj([5, 5, 14, 14], [9, 9])], (20, 20)) == pytest.approx(25 / 175)
    # Clipped to the 20 x 20 image: [15, 19] x [15, 19] = 25 pixels, disjoint from the 100-pixel target.
    assert union_iou([obj([15, 15, 29, 29], [16, 16])], small, (20, 20)) == 0.0
    two = [obj([0, 0, 9, 9], [5, 5]), obj([5, 0, 14, 9], [10, 5])]  # union of the boxes: 15 x 10 = 150
    assert union_iou(two, small, (20, 20)) == pytest.approx(100 / 150)
    m = grounding_metrics(answer(line(1, [0, 0, 99, 99], [50, 50])), TARGETS, (300, 100))
    assert m["giou"] == pytest.approx(10000 / 20000) and m["count_correct"] == 0.0
    assert m["vr_accuracy"] == pytest.approx(3 / 2) and m["thinking_format"] == 1.0


# ----------------------------------------------------------------------------- DRR


def test_drr_rank_on_a_known_history():
    drr = DistributionRankedReward(capacity=5, initial_zeros=2)
    drr.add(torch.tensor([[0.5, 1.0, 0.2], [0.3, 0.5, 0.9]]))
    # Pending rows do not count until the update (all ranks against the two zero rows).
    assert drr.rank(torch.tensor([[0.0, 0.0, 0.0]])).tolist() == [[1.0, 1.0, 1.0]]
    assert drr.update() == {"added": 2, "dropped": 0, "size": 4}
    # Columns: [0, 0, 0.5, 0.3], [0, 0, 1.0, 0.5], [0, 0, 0.2, 0.9].
    ranks = drr.rank(torch.tensor([[0.3, 0.5, 1.0], [0.0, 0.4, 0.1], [0.29, 0.99, 0.2]]))
    # 3/4 = 0.75 -> 0.8; 2/4 = 0.5; 1.0; 3/4 -> 0.8 (Python round, half to even on the binary value).
    np.testing.assert_allclose(ranks.numpy(), [[0.8, 0.8, 1.0], [0.5, 0.5, 0.5], [0.5, 0.8, 0.8]], atol=1e-6)
    # FIFO: two more rows exceed the capacity of 5, the oldest zero row goes.
    drr.add(torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2]]))
    assert drr.update() == {"added": 2, "dropped": 1, "size": 5}
    assert drr.history[:, 0].tolist() == pytest.approx([0.0, 0.5, 0.3, 0.1, 0.2])
    # 1 of 5 history values <= 0.05 in every column -> 0.2.
    np.testing.assert_allclose(drr.rank(torch.tensor([[0.05, 0.05, 0.05]])).numpy(), [[0.2, 0.2, 0.2]], atol=1e-6)


def test_drr_call_ranks_then_holds_and_rejects_bad_input():
    drr = DistributionRankedReward(capacity=4, initial_zeros=0)
    assert drr(torch.tensor([[0.5, 0.5, 0.5]])).tolist() == [[0.0, 0.0, 0.0]]  # empty history
    drr.update()
    assert drr(torch.tensor([[0.5, 0.4, 0.6]])).tolist() == [[1.0, 0.0, 1.0]]
    with pytest.raises(ValueError, match=r"expected \(B, 3\)"):
        drr.rank(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="non-finite"):
        drr.add(torch.tensor([[float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="initial_zeros"):
        DistributionRankedReward(capacity=4, initial_zeros=5)


def test_drr_state_survives_a_checkpoint_round_trip(tmp_path):
    drr = DistributionRankedReward(capacity=6, initial_zeros=3)
    drr.add(torch.tensor([[0.7, 0.2, 0.4], [0.1, 0.9, 0.3]]))
    drr.update()
    drr.add(torch.tensor([[0.6, 0.6, 0.6]]))  # still pending at the save
    torch.save(drr.state_dict(), tmp_path / "drr.pt")
    restored = DistributionRankedReward(capacity=6, initial_zeros=3)
    restored.load_state_dict(torch.load(tmp_path / "drr.pt", weights_only=True))
    assert torch.equal(restored.history, drr.history) and torch.equal(restored.pending, drr.pending)
    probe = torch.tensor([[0.65, 0.25, 0.35]])
    assert torch.equal(restored.rank(probe), drr.rank(probe))
    assert restored.update() == drr.update() == {"added": 1, "dropped": 0, "size": 6}
    with pytest.raises(ValueError, match="capacity=6 but this reward has capacity=2048"):
        DistributionRankedReward().load_state_dict(drr.state_dict())


# ----------------------------------------------------------------------------- garbage never crashes

FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "<look>", "</look>", "Object 1:", "object 2 :", "\n",
             "{", "}", "[", "]", '"bbox_2d": ', '"point_2d": ', "[0, 0, 99, 99]", "[50, 50]", "[5, 5, 104, 104]",
             "NaN", "1e309", "-0", ", ", ". ", "your reasoning text", "\u00a0", "**"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=40).map("".join))
def test_rewards_on_garbage_stay_in_range(text):
    assert 0.0 <= format_reward(text) <= 4.0 and non_repeat_reward(text) in (0.0, 1.0)
    preds = parse_answer(text).objects
    assert 0.0 <= vision_reasoner_accuracy(preds, TARGETS) <= 3.0
    assert all(0.0 <= x <= 1.0 and math.isfinite(x) for x in drr_raw_metrics(preds, TARGETS))
    [iou] = object_iou([text], [['{"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}']])
    assert 0.0 <= iou <= 1.0


@pytest.mark.parametrize("text", [
    "<answer>" + " " * 50_000,
    "<think>" + "</think> " * 6_000 + "</answer>",
    "<answer>" + "Object 1:\n" * 5_000 + "</answer>",
    "<answer>" + "[" * 50_000 + "</answer>",
    "<think><look>" + " " * 50_000 + "</think>",
    "your" + " " * 50_000 + "x",
], ids=["open_answer_spaces", "many_think_closes", "many_markers", "deep_json", "look_spaces", "placeholder_spaces"])
def test_pathological_inputs_run_in_linear_time(text):
    t0 = time.perf_counter()
    format_reward(text), non_repeat_reward(text), object_iou([text], [["{}"]])
    assert drr_raw_metrics(parse_answer(text).objects, TARGETS)[0] == 0.0
    assert time.perf_counter() - t0 < 5.0  # ~0.1 s here; a backtracking regex takes minutes
