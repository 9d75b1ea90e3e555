"""Synthetic panels: grid layout and numbering, exact descriptions, rendering, determinism, entangled panels."""

from __future__ import annotations

import random
import statistics

import pytest
from PIL import Image

from segrl.tasks.panels import (
    COLOURS,
    GUTTER,
    ObjectSpec,
    SceneChange,
    SceneSpec,
    apply_change,
    compose_grid,
    describe,
    describe_change,
    entangled_panels,
    fit_panel,
    grid_gap,
    grid_layout,
    referring_expression,
    render_panel,
    sample_scene,
)

PANEL_COLOURS = [
    (200, 30, 30),
    (30, 200, 30),
    (30, 30, 200),
    (200, 200, 30),
    (30, 200, 200),
    (200, 30, 200),
    (120, 60, 0),
    (0, 120, 60),
]


def _solid_panels(k, side=112):
    return [Image.new("RGB", (side, side), PANEL_COLOURS[j]) for j in range(k)]


# --- layout -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "k, expected",
    [
        (1, (1, 1)),
        (2, (1, 2)),
        (3, (2, 2)),
        (4, (2, 2)),
        (5, (2, 3)),
        (6, (2, 3)),
        (7, (2, 4)),
        (8, (2, 4)),
        (9, (3, 3)),
        (10, (3, 4)),
        (16, (4, 4)),
        (17, (4, 5)),
    ],
)
def test_grid_layout(k, expected):
    assert grid_layout(k) == expected


def test_grid_layout_rejects_zero():
    with pytest.raises(ValueError, match="at least one panel"):
        grid_layout(0)


@pytest.mark.parametrize(
    "k, size",
    [(1, (118, 118)), (2, (233, 118)), (3, (233, 233)), (4, (233, 233)), (6, (348, 233)), (8, (463, 233))],
)
def test_compose_grid_size_boxes_and_numbers(k, size):
    side = 112
    assert grid_gap(side) == 3
    grid, boxes = compose_grid(_solid_panels(k), [str(j + 1) for j in range(k)], side)
    assert grid.mode == "RGB" and grid.size == size
    _, cols = grid_layout(k)
    assert len(boxes) == k
    for j, (left, top, right, bottom) in enumerate(boxes):
        r, c = divmod(j, cols)
        assert (left, top) == (3 + c * 115, 3 + r * 115)  # row-major, gutter 3 between and around
        assert (right - left, bottom - top) == (side, side)
        # panel content: the centre and the bottom-right corner are the panel's own colour
        assert grid.getpixel((left + side // 2, top + side // 2)) == PANEL_COLOURS[j]
        assert grid.getpixel((right - 1, bottom - 1)) == PANEL_COLOURS[j]
        # the number: dark (anti-aliased black) ink on a white box in the top-left corner
        corner = grid.crop((left, top, left + 16, top + 20))
        colours = {rgb for _, rgb in corner.getcolors(16 * 20)}
        assert (255, 255, 255) in colours and any(max(rgb) < 40 for rgb in colours)
        assert PANEL_COLOURS[j] not in {
            grid.getpixel((left + x, top + y)) for x in range(3) for y in range(3)
        }
    # gutter left of the first panel; the unused cell of a 3-panel grid is gutter too
    assert grid.getpixel((1, 50)) == GUTTER
    if k == 3:
        assert grid.getpixel((118 + 56, 118 + 56)) == GUTTER


def test_compose_grid_boxes_k4_exact():
    _, boxes = compose_grid(_solid_panels(4), ["1", "2", "3", "4"], 112)
    assert boxes == [(3, 3, 115, 115), (118, 3, 230, 115), (3, 118, 115, 230), (118, 118, 230, 230)]


def test_compose_grid_labels_differ_in_the_corner():
    same = [Image.new("RGB", (112, 112), (200, 200, 200))] * 2
    grid, boxes = compose_grid(same, ["1", "2"], 112)
    crops = [grid.crop((b[0], b[1], b[0] + 20, b[1] + 20)).tobytes() for b in boxes]
    assert crops[0] != crops[1]
    # away from the corner both panels are untouched
    assert grid.crop((boxes[0][0] + 30, boxes[0][1], boxes[0][2], boxes[0][3])).getcolors() == [
        (82 * 112, (200, 200, 200))
    ]


def test_compose_grid_errors():
    with pytest.raises(ValueError, match="no images"):
        compose_grid([], [], 112)
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        compose_grid(_solid_panels(2), ["1"], 112)
    with pytest.raises(ValueError, match="panel_side"):
        compose_grid(_solid_panels(1, 16), ["1"], 16)


def test_fit_panel_letterboxes_keeping_aspect():
    wide = Image.new("RGB", (200, 100), (10, 200, 10))
    out = fit_panel(wide, 112)
    assert out.size == (112, 112)
    assert out.getpixel((56, 56)) == (10, 200, 10)  # content centred: 112 x 56 band
    assert out.getpixel((56, 5)) == GUTTER and out.getpixel((56, 106)) == GUTTER
    rgba = Image.new("RGBA", (112, 112), (0, 0, 0, 0))
    assert fit_panel(rgba, 112).getpixel((3, 3)) == (255, 255, 255)  # transparent -> white, not black


# --- descriptions -----------------------------------------------------------------------------
def test_describe_brief_example_sorted_in_reading_order():
    spec = SceneSpec(
        "yellow",
        "stripes",
        (
            ObjectSpec("square", "blue", "small", "bottom right", 2),
            ObjectSpec("circle", "red", "large", "top left"),
        ),
    )
    assert spec.objects[0].position == "top left"
    assert describe(spec) == (
        "A large red circle in the top left and two small blue squares in the bottom right, "
        "on a striped yellow background."
    )


@pytest.mark.parametrize(
    "spec, text",
    [
        (
            SceneSpec("black", "grid", (ObjectSpec("cross", "orange", "medium", "centre", 3),)),
            "Three medium orange crosses in the centre, on a gridded black background.",
        ),
        (
            SceneSpec("white", "plain", (ObjectSpec("hexagon", "green", "small", "middle right"),)),
            "A small green hexagon in the middle right, on a plain white background.",
        ),
        (
            SceneSpec(
                "pink",
                "dots",
                (
                    ObjectSpec("star", "purple", "large", "bottom left", 2),
                    ObjectSpec("diamond", "brown", "medium", "top middle"),
                    ObjectSpec("triangle", "black", "small", "top right", 3),
                    ObjectSpec("circle", "yellow", "small", "middle left"),
                ),
            ),
            (
                "A medium brown diamond in the top middle, three small black triangles in the top right, "
                "a small yellow circle in the middle left and two large purple stars in the bottom left, "
                "on a dotted pink background."
            ),
        ),
    ],
)
def test_describe_exact(spec, text):
    assert describe(spec) == text


def test_spec_validation():
    with pytest.raises(ValueError, match="like the background"):
        SceneSpec("red", "plain", (ObjectSpec("circle", "red", "small", "centre"),))
    with pytest.raises(ValueError, match="share a cell"):
        SceneSpec(
            "red",
            "plain",
            (ObjectSpec("circle", "blue", "small", "centre"), ObjectSpec("star", "blue", "small", "centre")),
        )
    with pytest.raises(ValueError, match="shape"):
        ObjectSpec("blob", "blue", "small", "centre")
    with pytest.raises(ValueError, match="count"):
        ObjectSpec("circle", "blue", "small", "centre", 4)
    with pytest.raises(ValueError, match="1..4 groups"):
        SceneSpec("red", "plain", ())
    spec = SceneSpec("red", "dots", (ObjectSpec("circle", "blue", "small", "centre", 2),))
    assert SceneSpec.from_dict(spec.to_dict()) == spec


def test_caption_metrics_separate_right_wrong_and_other_descriptions():
    """CIDEr-D and BLEU-4: exact > one attribute wrong > another scene's description, on average."""
    from segrl.rewards import make_segment_reward

    rng = random.Random(7)
    specs = [sample_scene(rng) for _ in range(60)]
    refs = [[describe(s)] for s in specs]
    wrong = []
    for s in specs:  # recolour the first group
        o = s.objects[0]
        new = next(c for c in COLOURS if c not in (o.colour, s.background))
        wrong.append(describe(apply_change(s, SceneChange("colour", 0, new))))
    other = [describe(s) for s in specs[1:] + specs[:1]]
    exact = [r[0] for r in refs]
    for name in ("cider_d", "bleu4"):
        metric = make_segment_reward(name, reference_corpus=refs)
        s_exact, s_wrong, s_other = (statistics.mean(metric(p, refs)) for p in (exact, wrong, other))
        assert s_exact > s_wrong + 0.1 * s_exact, (name, s_exact, s_wrong)
        assert s_wrong > s_other + 0.1 * s_exact, (name, s_wrong, s_other)


# --- rendering ----------------------------------------------------------------------------------
def test_render_panel_pixels():
    side = 112
    spec = SceneSpec(
        "white",
        "plain",
        (
            ObjectSpec("circle", "red", "large", "top left"),
            ObjectSpec("square", "blue", "small", "bottom right", 2),
        ),
    )
    img = render_panel(spec, side)
    assert img.size == (side, side) and img.mode == "RGB"
    cell = side / 3
    assert img.getpixel((int(cell / 2), int(cell / 2))) == COLOURS["red"]
    assert img.getpixel((int(1.5 * cell), int(1.5 * cell))) == COLOURS["white"]  # empty centre cell
    # two copies side by side at +-cell/4 from the cell centre; the cell centre between them is background
    cx, cy = 2.5 * cell, 2.5 * cell
    assert img.getpixel((int(cx - cell / 4), int(cy))) == COLOURS["blue"]
    assert img.getpixel((int(cx + cell / 4), int(cy))) == COLOURS["blue"]
    assert img.getpixel((int(cx), int(cy))) == COLOURS["white"]
    striped = render_panel(SceneSpec("white", "stripes", spec.objects), side)
    assert len(striped.getcolors()) == 4  # background, stripe shade, red, blue
    with pytest.raises(ValueError, match="24"):
        render_panel(spec, 16)


def test_sizes_are_ordered():
    def ink(size):
        img = render_panel(SceneSpec("white", "plain", (ObjectSpec("star", "black", size, "centre"),)), 112)
        return {c: n for n, c in img.getcolors()}[COLOURS["black"]]

    assert ink("small") < ink("medium") < ink("large")


# --- determinism --------------------------------------------------------------------------------
def _sample(seed, n=8):
    rng = random.Random(seed)
    specs = [sample_scene(rng) for _ in range(n)]
    return specs, [render_panel(s, 64).tobytes() for s in specs], [describe(s) for s in specs]


def test_same_seed_same_scenes_images_descriptions():
    assert _sample(3) == _sample(3)
    grid_a = compose_grid([render_panel(s, 64) for s in _sample(3)[0][:4]], list("1234"), 64)[0].tobytes()
    grid_b = compose_grid([render_panel(s, 64) for s in _sample(3)[0][:4]], list("1234"), 64)[0].tobytes()
    assert grid_a == grid_b


def test_different_seeds_differ():
    a, b = _sample(0), _sample(1)
    assert a[0] != b[0] and a[1] != b[1] and a[2] != b[2]
    assert len(set(_sample(0, 30)[2])) == 30  # no repeated description among 30 scenes


def test_sampled_scenes_are_valid_and_varied():
    rng = random.Random(11)
    specs = [sample_scene(rng) for _ in range(300)]
    assert {len(s.objects) for s in specs} == {1, 2, 3, 4}
    assert {o.count for s in specs for o in s.objects} == {1, 2, 3}
    assert {s.texture for s in specs} == {"plain", "stripes", "dots", "grid"}
    assert len({o.shape for s in specs for o in s.objects}) == 7
    assert all(o.colour != s.background for s in specs for o in s.objects)


# --- entangled ----------------------------------------------------------------------------------
def test_referring_expression_is_minimal_and_unambiguous():
    spec = SceneSpec(
        "white",
        "plain",
        (
            ObjectSpec("circle", "red", "small", "top left"),
            ObjectSpec("circle", "red", "large", "centre"),
            ObjectSpec("circle", "blue", "small", "bottom left", 2),
            ObjectSpec("star", "green", "small", "bottom right"),
        ),
    )
    assert [referring_expression(spec, j) for j in range(4)] == [
        "the circle in the top left",
        "the circle in the centre",
        "the blue circles",
        "the star",
    ]


def test_describe_change_sentences():
    spec = SceneSpec(
        "yellow",
        "plain",
        (
            ObjectSpec("circle", "red", "small", "top left"),
            ObjectSpec("square", "blue", "large", "centre", 2),
        ),
    )
    cases = [
        (SceneChange("colour", 0, "green"), "As in panel 1, but the circle is green."),
        (SceneChange("size", 1, "small"), "As in panel 1, but the squares are small."),
        (SceneChange("position", 0, "bottom right"), "As in panel 1, but the circle is in the bottom right."),
        (SceneChange("background", None, "pink"), "As in panel 1, but the background is pink."),
        (SceneChange("texture", None, "dots"), "As in panel 1, but the background is dotted."),
    ]
    for change, text in cases:
        assert describe_change(spec, change, 1) == text
    moved = apply_change(spec, SceneChange("position", 0, "bottom right"))
    assert [o.position for o in moved.objects] == ["centre", "bottom right"]
    with pytest.raises(ValueError, match="share a cell"):
        apply_change(spec, SceneChange("position", 0, "centre"))


def test_entangled_panels_chain_of_single_changes():
    for seed in range(20):
        panels = entangled_panels(random.Random(seed), 6)
        assert panels[0].caption == describe(panels[0].spec) and panels[0].refers_to is None
        for k, p in enumerate(panels[1:], start=2):
            assert 1 <= p.refers_to < k
            base = panels[p.refers_to - 1].spec
            assert p.caption.startswith(f"As in panel {p.refers_to}, but ")
            assert p.spec == apply_change(base, p.change) and p.spec != base
            assert p.caption == describe_change(base, p.change, p.refers_to)
    assert entangled_panels(random.Random(1), 4) == entangled_panels(random.Random(1), 4)
