"""Synthetic scenes for multi-panel dense captioning: sample, render, describe, lay out in a grid.

A *scene* (:class:`SceneSpec`) is a square panel with a coloured, textured background and 1-4
*object groups* (:class:`ObjectSpec`). Each group is ``count`` (1-3) copies of one shape, in
one colour and one size, in one cell of a 3x3 grid. Everything is drawn with ``PIL.ImageDraw``
without anti-aliasing, so a spec gives byte-identical pixels on every machine with the same
Pillow.

Vocabulary (each word is its own token for the caption metrics):

* colours: :data:`COLOURS` (10 named RGB values; an object's colour never equals the background's);
* shapes: :data:`SHAPES` (7; plural :data:`PLURALS`);
* sizes: ``small``/``medium``/``large`` = :data:`SIZE_FRACTION` of the object's slot;
* positions: :data:`POSITIONS`, the 3x3 cells in reading order ("top left" ... "bottom right"),
  at most one group per cell;
* textures: ``plain``/``stripes``/``dots``/``grid``, described as :data:`TEXTURE_WORDS`
  (``plain``/``striped``/``dotted``/``gridded``).

Geometry of :func:`render_panel` (``side`` = panel side in pixels, ``cell = side / 3``): a
group sits in its cell. One copy gets the whole cell as its slot, centred; 2 copies sit side
by side and 3 copies in a triangle, each in a slot of ``cell / 2``. A copy's extent (circle
diameter, star tip-to-tip ...) is ``SIZE_FRACTION[size] * slot``; sizes therefore compare
within the same count.

Descriptions (:func:`describe`) are exact and deterministic, one sentence, groups in reading
order of their cells::

    A large red circle in the top left and two small blue squares in the bottom right,
    on a striped yellow background.

No synonyms: every attribute has one word, so the caption metrics (BLEU, CIDEr-D) separate a
right description from one with a wrong attribute and from another scene's (tested).

*Entangled* panels (:func:`entangled_panels`) share one scene: panel 1 is a sampled scene
described in full; every later panel copies an earlier one with exactly one change (an
object's colour, size or cell, or the background's colour or texture) and is described
relative to it: ``"As in panel 1, but the circle is green."`` Such a caption is right only
in the context of the panel it names.

:func:`compose_grid` lays K panel images out in a grid (:func:`grid_layout`) and prints each
panel's number in its top-left corner with PIL's default font.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

from PIL import Image, ImageDraw, ImageFont

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (245, 220, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "purple": (130, 50, 170),
    "pink": (245, 130, 190),
    "brown": (130, 80, 40),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}
"""The named palette (RGB)."""

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "hexagon")
PLURALS = {s: ("crosses" if s == "cross" else s + "s") for s in SHAPES}
SIZES = ("small", "medium", "large")
SIZE_FRACTION = {"small": 0.45, "medium": 0.7, "large": 0.95}
"""A copy's extent as a fraction of its slot (see the module docstring)."""

POSITIONS = (
    "top left", "top middle", "top right",
    "middle left", "centre", "middle right",
    "bottom left", "bottom middle", "bottom right",
)  # fmt: skip
"""The 3x3 cells in reading order; index ``i`` is row ``i // 3``, column ``i % 3``."""

TEXTURES = ("plain", "stripes", "dots", "grid")
TEXTURE_WORDS = {"plain": "plain", "stripes": "striped", "dots": "dotted", "grid": "gridded"}
MAX_OBJECTS = 4
MAX_COUNT = 3
COUNT_WORDS = {2: "two", 3: "three"}
COUNT_WEIGHTS = (3, 2, 1)
"""Sampling weights of counts 1, 2, 3."""

CHANGE_KINDS = ("colour", "size", "position", "background", "texture")
"""What an entangled panel may change relative to the panel it copies."""

GUTTER = (48, 48, 48)
"""Colour between and around the panels of a grid (and of a letterboxed photo's padding)."""


@dataclass(frozen=True)
class ObjectSpec:
    """One group of identical shapes in one cell.

    Attributes:
        shape: one of :data:`SHAPES`.
        colour: a key of :data:`COLOURS`.
        size: one of :data:`SIZES`.
        position: one of :data:`POSITIONS`.
        count: number of copies, 1..:data:`MAX_COUNT`.

    Raises:
        ValueError: a value outside its vocabulary.
    """

    shape: str
    colour: str
    size: str
    position: str
    count: int = 1

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("colour", self.colour, tuple(COLOURS)),
            ("size", self.size, SIZES),
            ("position", self.position, POSITIONS),
        ):
            if value not in allowed:
                raise ValueError(f"ObjectSpec.{name}: {value!r} is not one of {allowed}")
        if (
            isinstance(self.count, bool)
            or not isinstance(self.count, int)
            or not 1 <= self.count <= MAX_COUNT
        ):
            raise ValueError(f"ObjectSpec.count: expected an int in 1..{MAX_COUNT}, got {self.count!r}")


@dataclass(frozen=True)
class SceneSpec:
    """One panel: background colour and texture, and 1..:data:`MAX_OBJECTS` object groups.

    ``objects`` is stored in reading order of the groups' cells (sorted on construction), so
    two specs with the same content compare equal.

    Raises:
        ValueError: a value outside its vocabulary, no or too many groups, two groups in one
            cell, or a group coloured like the background.
    """

    background: str
    texture: str
    objects: tuple[ObjectSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.background not in COLOURS:
            raise ValueError(f"SceneSpec.background: {self.background!r} is not one of {tuple(COLOURS)}")
        if self.texture not in TEXTURES:
            raise ValueError(f"SceneSpec.texture: {self.texture!r} is not one of {TEXTURES}")
        objs = tuple(self.objects)
        if not 1 <= len(objs) <= MAX_OBJECTS:
            raise ValueError(f"SceneSpec.objects: expected 1..{MAX_OBJECTS} groups, got {len(objs)}")
        if any(not isinstance(o, ObjectSpec) for o in objs):
            raise ValueError("SceneSpec.objects: every item must be an ObjectSpec")
        cells = [o.position for o in objs]
        if len(set(cells)) != len(cells):
            raise ValueError(f"SceneSpec.objects: two groups share a cell: {cells}")
        for o in objs:
            if o.colour == self.background:
                raise ValueError(
                    f"SceneSpec: the {o.shape} in the {o.position} is {o.colour}, like the background"
                )
        object.__setattr__(self, "objects", tuple(sorted(objs, key=lambda o: POSITIONS.index(o.position))))

    def to_dict(self) -> dict:
        """JSON-ready dict (``objects`` as a list of dicts); inverse of :meth:`from_dict`."""
        return {
            "background": self.background,
            "texture": self.texture,
            "objects": [asdict(o) for o in self.objects],
        }

    @classmethod
    def from_dict(cls, d: dict) -> SceneSpec:
        return cls(d["background"], d["texture"], tuple(ObjectSpec(**o) for o in d["objects"]))


def sample_scene(rng: random.Random, *, max_objects: int = MAX_OBJECTS) -> SceneSpec:
    """Sample a scene: uniform background colour and texture, 1..``max_objects`` groups (uniform),
    in distinct cells, each with a uniform shape, size and non-background colour and a count
    drawn with weights :data:`COUNT_WEIGHTS`.

    Args:
        rng: the only source of randomness (same state -> same spec).
        max_objects: 1..:data:`MAX_OBJECTS`.

    Raises:
        ValueError: ``max_objects`` out of range.
    """
    if not 1 <= max_objects <= MAX_OBJECTS:
        raise ValueError(f"max_objects must be in 1..{MAX_OBJECTS}, got {max_objects}")
    names = list(COLOURS)
    background = rng.choice(names)
    texture = rng.choice(TEXTURES)
    n = rng.randint(1, max_objects)
    cells = rng.sample(range(len(POSITIONS)), n)
    others = [c for c in names if c != background]
    objects = tuple(
        ObjectSpec(
            shape=rng.choice(SHAPES),
            colour=rng.choice(others),
            size=rng.choice(SIZES),
            position=POSITIONS[cell],
            count=rng.choices(range(1, MAX_COUNT + 1), weights=COUNT_WEIGHTS)[0],
        )
        for cell in cells
    )
    return SceneSpec(background, texture, objects)


# --- description ---------------------------------------------------------------------------
def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _group_phrase(o: ObjectSpec) -> str:
    """``"a large red circle in the top left"`` / ``"two small blue squares in the bottom right"``."""
    if o.count == 1:
        return f"{_article(o.size)} {o.size} {o.colour} {o.shape} in the {o.position}"
    return f"{COUNT_WORDS[o.count]} {o.size} {o.colour} {PLURALS[o.shape]} in the {o.position}"


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe(spec: SceneSpec) -> str:
    """The exact one-sentence description of ``spec`` (format in the module docstring).

    Groups are listed in reading order of their cells, joined with ", " and a final " and ";
    then ", on a <texture word> <colour> background." The first letter is capitalised.
    """
    text = _join([_group_phrase(o) for o in spec.objects])
    text += f", on {_article(TEXTURE_WORDS[spec.texture])} {TEXTURE_WORDS[spec.texture]} {spec.background} background."
    return text[0].upper() + text[1:]


# --- rendering -----------------------------------------------------------------------------
def _shade(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Texture colour: 30% towards black for light colours (Rec. 601 luma > 110), else 35% towards white."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    if luma > 110:
        return tuple(round(c * 0.7) for c in rgb)  # type: ignore[return-value]
    return tuple(round(c + (255 - c) * 0.35) for c in rgb)  # type: ignore[return-value]


def _draw_texture(draw: ImageDraw.ImageDraw, texture: str, side: int, rgb: tuple[int, int, int]) -> None:
    tone = _shade(rgb)
    if texture == "stripes":  # diagonal stripes, period side/7
        period = max(4, side // 7)
        width = max(1, period // 3)
        for x in range(-side, side + period, period):
            draw.line([(x, 0), (x + side, side)], fill=tone, width=width)
    elif texture == "dots":  # dot lattice, period side/8
        period = max(4, side // 8)
        r = max(1, side // 48)
        for y in range(period // 2, side, period):
            for x in range(period // 2, side, period):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=tone)
    elif texture == "grid":  # thin lines, period side/6
        period = max(4, side // 6)
        width = max(1, side // 64)
        for v in range(period // 2, side, period):
            draw.line([(v, 0), (v, side)], fill=tone, width=width)
            draw.line([(0, v), (side, v)], fill=tone, width=width)


def _polygon(cx: float, cy: float, radii: Sequence[float], start_deg: float) -> list[tuple[float, float]]:
    """Vertices at equal angular steps from ``start_deg`` (0 = right, 90 = down: image y grows down)."""
    n = len(radii)
    pts = []
    for i, r in enumerate(radii):
        a = math.radians(start_deg + 360.0 * i / n)
        pts.append((round(cx + r * math.cos(a), 2), round(cy + r * math.sin(a), 2)))
    return pts


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, rgb) -> None:
    """One copy of ``shape`` with extent ``2 r`` centred at ``(cx, cy)``."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
    elif shape == "square":
        h = 0.85 * r
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=rgb)
    elif shape == "triangle":  # centroid shifted down so the box is centred
        draw.polygon(_polygon(cx, cy + r / 4, [r] * 3, -90), fill=rgb)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy + r / 10, [r, 0.45 * r] * 5, -90), fill=rgb)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)], fill=rgb)
    elif shape == "cross":
        t = r / 3
        draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=rgb)
        draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=rgb)
    elif shape == "hexagon":
        draw.polygon(_polygon(cx, cy, [r] * 6, 0), fill=rgb)
    else:  # unreachable: ObjectSpec validates shapes
        raise ValueError(f"unknown shape {shape!r}")


_COPY_OFFSETS = {
    1: [(0.0, 0.0)],
    2: [(-0.25, 0.0), (0.25, 0.0)],
    3: [(-0.25, -0.25), (0.25, -0.25), (0.0, 0.25)],
}
"""Centres of a group's copies relative to its cell centre, in cells."""


def render_panel(spec: SceneSpec, side: int) -> Image.Image:
    """Draw ``spec`` as a ``side`` x ``side`` RGB image (geometry in the module docstring).

    Raises:
        ValueError: ``side`` < 24 pixels (shapes would be a pixel or two).
    """
    if side < 24:
        raise ValueError(f"panel side must be >= 24 pixels, got {side}")
    bg = COLOURS[spec.background]
    img = Image.new("RGB", (side, side), bg)
    draw = ImageDraw.Draw(img)
    _draw_texture(draw, spec.texture, side, bg)
    cell = side / 3
    for o in spec.objects:
        i = POSITIONS.index(o.position)
        ccx, ccy = (i % 3 + 0.5) * cell, (i // 3 + 0.5) * cell
        slot = cell if o.count == 1 else cell / 2
        r = SIZE_FRACTION[o.size] * slot / 2
        for dx, dy in _COPY_OFFSETS[o.count]:
            _draw_shape(draw, o.shape, ccx + dx * cell, ccy + dy * cell, r, COLOURS[o.colour])
    return img


# --- entangled panels ----------------------------------------------------------------------
@dataclass(frozen=True)
class SceneChange:
    """One edit of a scene.

    Attributes:
        kind: one of :data:`CHANGE_KINDS`.
        target: index into the edited scene's ``objects`` (reading order) for ``colour`` /
            ``size`` / ``position``; None for ``background`` / ``texture``.
        value: the new colour, size, position or texture.
    """

    kind: str
    target: int | None
    value: str


def apply_change(spec: SceneSpec, change: SceneChange) -> SceneSpec:
    """The scene ``spec`` with ``change`` applied.

    Raises:
        ValueError: the change does not fit the scene (bad target, a cell taken, an object
            coloured like the background, a value outside its vocabulary).
    """
    if change.kind == "background":
        return replace(spec, background=change.value)
    if change.kind == "texture":
        return replace(spec, texture=change.value)
    if change.kind not in ("colour", "size", "position"):
        raise ValueError(f"unknown change kind {change.kind!r}; known: {CHANGE_KINDS}")
    if change.target is None or not 0 <= change.target < len(spec.objects):
        raise ValueError(
            f"change target {change.target!r} is not an object index of a {len(spec.objects)}-group scene"
        )
    objs = list(spec.objects)
    objs[change.target] = replace(objs[change.target], **{change.kind: change.value})
    return replace(spec, objects=tuple(objs))


def referring_expression(spec: SceneSpec, index: int) -> str:
    """The shortest unambiguous name of group ``index`` in ``spec``: ``"the circle"`` if no other
    group has its shape, else ``"the red circle"`` if none has its shape and colour, else
    ``"the circle in the top left"`` (cells are unique). Plural shape for a count above 1."""
    o = spec.objects[index]
    noun = o.shape if o.count == 1 else PLURALS[o.shape]
    others = [p for j, p in enumerate(spec.objects) if j != index]
    if all(p.shape != o.shape for p in others):
        return f"the {noun}"
    if all((p.shape, p.colour) != (o.shape, o.colour) for p in others):
        return f"the {o.colour} {noun}"
    return f"the {noun} in the {o.position}"


def describe_change(spec: SceneSpec, change: SceneChange, panel: int) -> str:
    """``"As in panel <panel>, but <ref> is <value>."`` for ``change`` applied to ``spec`` (the
    scene of panel ``panel``, 1-based). Background changes read ``"the background is blue"`` /
    ``"the background is dotted"``."""
    if change.kind == "background":
        what = f"the background is {change.value}"
    elif change.kind == "texture":
        what = f"the background is {TEXTURE_WORDS[change.value]}"
    else:
        ref = referring_expression(spec, change.target)  # type: ignore[arg-type]
        verb = "is" if spec.objects[change.target].count == 1 else "are"  # type: ignore[index]
        value = f"in the {change.value}" if change.kind == "position" else change.value
        what = f"{ref} {verb} {value}"
    return f"As in panel {panel}, but {what}."


def sample_change(spec: SceneSpec, rng: random.Random) -> SceneChange:
    """A uniformly chosen kind of :data:`CHANGE_KINDS`, then a uniform valid new value: an
    object colour other than its own and the background's; another size; a free cell; a
    background colour other than its own and every object's; another texture."""
    kind = rng.choice(CHANGE_KINDS)
    if kind == "background":
        used = {o.colour for o in spec.objects} | {spec.background}
        free = [c for c in COLOURS if c not in used]
        if free:  # at most 5 colours are used, so never empty
            return SceneChange("background", None, rng.choice(free))
        kind = "texture"
    if kind == "texture":
        return SceneChange("texture", None, rng.choice([t for t in TEXTURES if t != spec.texture]))
    target = rng.randrange(len(spec.objects))
    o = spec.objects[target]
    if kind == "colour":
        choices = [c for c in COLOURS if c not in (o.colour, spec.background)]
    elif kind == "size":
        choices = [s for s in SIZES if s != o.size]
    else:
        taken = {p.position for p in spec.objects}
        choices = [p for p in POSITIONS if p not in taken]
        if not choices:  # unreachable with <= 4 groups in 9 cells
            return SceneChange("size", target, rng.choice([s for s in SIZES if s != o.size]))
    return SceneChange(kind, target, rng.choice(choices))


@dataclass(frozen=True)
class EntangledPanel:
    """One panel of an entangled example.

    Attributes:
        spec: the panel's scene.
        caption: its reference description (full for panel 1, relative after).
        refers_to: the 1-based number of the panel it copies; None for panel 1.
        change: the edit of that panel's scene; None for panel 1.
    """

    spec: SceneSpec
    caption: str
    refers_to: int | None = None
    change: SceneChange | None = None


def entangled_panels(rng: random.Random, k: int, *, max_objects: int = MAX_OBJECTS) -> list[EntangledPanel]:
    """``k`` panels sharing one scene: panel 1 is :func:`sample_scene` (``max_objects`` groups at
    most) described in full; panel
    ``j >= 2`` copies panel ``i`` (uniform over ``1 .. j-1``) with one :func:`sample_change`,
    described by :func:`describe_change`.

    Raises:
        ValueError: ``k`` < 1.
    """
    if k < 1:
        raise ValueError(f"need at least one panel, got {k}")
    first = sample_scene(rng, max_objects=max_objects)
    out = [EntangledPanel(first, describe(first))]
    for j in range(2, k + 1):
        i = rng.randint(1, j - 1)
        base = out[i - 1].spec
        change = sample_change(base, rng)
        out.append(EntangledPanel(apply_change(base, change), describe_change(base, change, i), i, change))
    return out


# --- grid ------------------------------------------------------------------------------------
def grid_layout(k: int) -> tuple[int, int]:
    """``(rows, cols)`` for ``k`` panels: 1 -> 1x1, 2 -> 1x2, 3-4 -> 2x2, 5-6 -> 2x3, 7-8 -> 2x4;
    above 8, ``cols = ceil(sqrt(k))`` and ``rows = ceil(k / cols)``.

    Raises:
        ValueError: ``k`` < 1.
    """
    if k < 1:
        raise ValueError(f"need at least one panel, got {k}")
    if k <= 8:
        cols = {1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4}[k]
    else:
        cols = math.ceil(math.sqrt(k))
    return math.ceil(k / cols), cols


def grid_gap(panel_side: int) -> int:
    """Gutter width in pixels between and around panels: ``max(2, panel_side // 32)``."""
    return max(2, panel_side // 32)


def fit_panel(image: Image.Image, side: int, fill: tuple[int, int, int] = GUTTER) -> Image.Image:
    """``image`` scaled (aspect kept, bicubic) to fit ``side`` x ``side`` and centred on ``fill``;
    RGB, transparent pixels composited on white. An image already ``side`` x ``side`` is only
    converted to RGB."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    else:
        rgb = image.convert("RGB")
    if rgb.size == (side, side):
        return rgb
    w, h = rgb.size
    scale = side / max(w, h)
    size = (max(1, min(side, round(w * scale))), max(1, min(side, round(h * scale))))
    out = Image.new("RGB", (side, side), fill)
    out.paste(rgb.resize(size, Image.Resampling.BICUBIC), ((side - size[0]) // 2, (side - size[1]) // 2))
    return out


def label_font(panel_side: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's default font at ``max(10, panel_side // 8)`` px (the bitmap default if FreeType is missing)."""
    try:
        return ImageFont.load_default(size=max(10, panel_side // 8))
    except (ImportError, OSError, TypeError):
        return ImageFont.load_default()


def compose_grid(
    images: Sequence[Image.Image], labels: Sequence[str], panel_side: int
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Lay panels out in a grid and print each one's label in its top-left corner.

    Layout: :func:`grid_layout` of ``K = len(images)``, row-major; gutter ``g =``
    :func:`grid_gap` of colour :data:`GUTTER` between and around panels, so the image is
    ``(cols * panel_side + (cols + 1) * g)`` x ``(rows * panel_side + (rows + 1) * g)``; unused
    cells are gutter. Each image goes through :func:`fit_panel`. The label is black text on a
    white box (padding ``max(1, font_px // 6)``) whose top-left corner is the panel's.

    Args:
        images: K >= 1 panel images, any size and mode.
        labels: K strings drawn on the panels ("1", "2", ...).
        panel_side: side of every panel in pixels (>= 24).

    Returns:
        ``(grid, boxes)``: the RGB grid and each panel's ``(left, top, right, bottom)`` pixel
        box (right/bottom exclusive, PIL's convention), in panel order.

    Raises:
        ValueError: no images, a label count that differs from the image count, ``panel_side`` < 24.
    """
    if not images:
        raise ValueError("compose_grid: no images")
    if len(labels) != len(images):
        raise ValueError(f"compose_grid: {len(images)} images but {len(labels)} labels")
    if panel_side < 24:
        raise ValueError(f"compose_grid: panel_side must be >= 24 pixels, got {panel_side}")
    rows, cols = grid_layout(len(images))
    g = grid_gap(panel_side)
    grid = Image.new("RGB", (cols * panel_side + (cols + 1) * g, rows * panel_side + (rows + 1) * g), GUTTER)
    draw = ImageDraw.Draw(grid)
    font = label_font(panel_side)
    boxes = []
    for k, (im, label) in enumerate(zip(images, labels)):
        r, c = divmod(k, cols)
        left, top = g + c * (panel_side + g), g + r * (panel_side + g)
        grid.paste(fit_panel(im, panel_side), (left, top))
        tl, tt, tr, tb = draw.textbbox((0, 0), str(label), font=font)
        pad = max(1, getattr(font, "size", 10) // 6)
        draw.rectangle(
            [left, top, left + (tr - tl) + 2 * pad - 1, top + (tb - tt) + 2 * pad - 1], fill=(255, 255, 255)
        )
        draw.text((left + pad - tl, top + pad - tt), str(label), fill=(0, 0, 0), font=font)
        boxes.append((left, top, left + panel_side, top + panel_side))
    return grid, boxes
