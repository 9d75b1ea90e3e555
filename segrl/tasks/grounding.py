"""Reasoning grounding: find the object(s) an indirect query describes; one box + point per object.

One example = one image with several objects and a query that names the target(s) only through
a relation ("every object left of the largest circle", "every blue thing smaller than the red
square"). The answer reasons in ``<think>...</think>`` and lists one object per line in
``<answer>...</answer>``::

    <think>The largest circle is the large red circle <look>at (315, 315)</look>. Found 2: ...</think>
    <answer>
    Object 1: {"bbox_2d": [69, 69, 141, 141], "point_2d": [105, 105]}
    Object 2: {"bbox_2d": [15, 435, 195, 615], "point_2d": [105, 525]}
    </answer>

**Objects are segments.** ``segment_labels`` are ``Object 1`` .. ``Object N`` for the N targets
in reading order (box centres top to bottom, then left to right, as the prompt asks);
``segment_references[k]`` is the exact text after ``Object k:`` in the reference answer: the
target's JSON (for the last object followed by the closing ``</answer>`` line, which the parser
keeps in the last segment; readers take the first JSON value of a segment and ignore the rest).
So SD-GRPO scores segment k with the per-object IoU reward (``iou``,
:func:`segrl.rewards.grounding.object_iou`) against target k. The prompt never states N: an
answer with more objects writes ``Object N+1:`` lines, which the parser counts as unexpected
(their tokens get the rollout-level advantage), and missing objects are missing segments. The
Dr. Seg / VisionReasoner rewards (:mod:`segrl.rewards.grounding`) ignore the labels and match the
listed objects to the targets with the Hungarian algorithm.

Prompt: VisionReasoner's instruction (find the query with boxes and points, compare the objects,
reason then answer; Dr. Seg code ``verl/utils/rl_dataset.py``), rewritten for the labelled-line
answer, plus, with ``look_to_confirm=True`` (the default), Dr. Seg's Look-to-Confirm sentence
(:data:`LOOK_INSTRUCTION`) asking for ``<look>`` blocks around the visually checked parts of the
reasoning, with the reference's format example. :func:`segrl.prompts.add_look_to_confirm` turns a plain
prompt into the Look-to-Confirm one (the ``drseg`` trainer uses it).

Sources (``source_kind``):

* ``"synthetic"`` (offline default; ``source`` ignored): an ``image_side`` x ``image_side``
  canvas cut into a ``grid`` x ``grid`` grid (default 4 x 4); ``min_objects``-``max_objects``
  objects (default 3-6; circle, square, triangle; red, green, blue, yellow; small, medium, large)
  sit at the centres of distinct cells, so boxes and points are exact integers (box
  ``[cx - r, cy - r, cx + r, cy + r]``, point = the box centre, which lies inside every shape).
  With ``queries="relation"`` (default) the query relates the targets to a uniquely described
  anchor (:data:`RELATIONS`); with ``queries="attribute"`` it names them by their own colour or
  shape (:data:`ATTRIBUTE_QUERIES`: "every red object", "every circle"); 1 to ``max_targets``
  targets. Example ``i`` is drawn from ``random.Random(f"grounding-synthetic:{seed}:{i}")``
  (independent of ``count``). ``queries="all"`` ("every object") makes every object a target:
  localisation only. The CPU testbed of the Dr. Seg comparison (``configs/grounding_cpu.yaml``,
  ``make reproduce-drseg``) is ``grid=2``, 1-3 objects, ``queries="all"``, ``name_objects``,
  ``short_prompt``: few large objects (a cell is 2 x 2 of the tiny model's 16 image patches) whose
  coordinates take few values, in the 840-pixel frame the rewards' pixel thresholds assume.
* ``"visionreasoner"``: the VisionReasoner / Seg-Zero layout (e.g. the hub dataset
  ``Ricky06662/VisionReasoner_multi_object_7k_840`` the Dr. Seg code trains on): columns
  ``problem`` (the query), ``solution`` (a JSON string: a list of ``{"bbox_2d": [x1, y1, x2, y2],
  "point_2d": [x, y]}``), ``image``; optional ``id``, ``img_width``, ``img_height``. The ReasonSeg
  evaluation layout (``text``, ``bbox`` = one ``[x1, y1, x2, y2]``, ``image``, optional
  ``image_id``/``ann_id``) is read too, with the box centre as the target point (ReasonSeg gives
  a mask, not a point). ``source`` is a directory written by ``datasets.save_to_disk``, a
  directory of ``<split>-*.parquet`` files (a hub snapshot), or a hub id. Coordinates are kept
  in the stored image's pixels; images are kept as their original bytes. Splits: ``train``
  and ``test`` (or ``validation``) as published; with only a train split, the test split is
  carved out as in the synthetic source. Queries are lowercased and stripped of trailing
  ``.``, as the Dr. Seg dataset class does.

  Bad items (the policy shared by every builder, :mod:`segrl.tasks.build_log`; one item = one
  row): a row with an empty query, a bad ``solution`` / ``bbox``, no target, a missing or
  unreadable image or a duplicate id is skipped and listed in ``build_log.jsonl``
  (``file`` = the source, ``item`` = ``[split][index]``, the field, the reason); when a split's
  parquet files do not load together, each is loaded alone and an unreadable one is one
  skipped item. ``count`` caps the rows examined per split, good or bad.

Row (schema in :mod:`segrl.tasks.base`): ``id`` (``synthetic-<seed>-<i:05d>``, or the source's
``id``, or ``<image_id>-<ann_id>``, or ``<split>-<index>``); ``images`` = [the image];
``prompt`` = one user message (image, text); ``meta`` (JSON): ``task_version``, ``source_kind``,
``image_size`` [W, H], ``query``, ``objects`` (the targets, in segment order),
``look_to_confirm``, and for synthetic ``seed``, ``index``, ``grid``, ``queries``, ``name_objects``,
``short_prompt``, ``scene`` (every object), ``anchor`` (None for attribute and "all" queries),
``relation`` (the query template), ``targets`` (indices into ``scene``), ``panel_boxes`` (the targets'
boxes, one per segment: the warm start's vision alignment pools the patches inside box k for segment
k, :func:`segrl.trainers.sft._pool_groups`; it scales them by the image's own size, so align on the
stored images, not downscaled ones); for loaded data ``source``, ``layout``, ``source_split``,
``source_index``.

**Loose demonstrations** (``loose_box_fraction`` > 0; our construction, for a testbed where RL from an exact-box
reward has something to select): that fraction of the training rows has its ``reference`` redrawn by a second,
loose annotator (every box padded by ``loose_box_pad`` of its side, :func:`loosen_demonstration`; ``meta`` gains
``demonstration: "loose"``). Only the demonstration changes: rewards and metrics read ``segment_references``,
which stay exact, as does the test split. A warm start on the mix learns both conventions, the mode of its greedy
answers is the majority's, and its samples hold the other: the regime in which RL from a verifier sharpens pass@1
towards pass@k (Yue et al., 2025, arXiv 2504.13837, "Does Reinforcement Learning Really Incentivize Reasoning
Capacity in LLMs Beyond the Base Model?").

:func:`segrl.rewards.grounding.add_grounding_metrics` adds the example-level metrics (gIoU, count accuracy, ...) to a
``segrl eval`` run of this task.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from datasets import Dataset, DatasetDict
from PIL import Image, ImageDraw

from segrl.grounding_objects import GroundingObject, as_object, first_json_value
from segrl.prompts import LOOK_INSTRUCTION
from segrl.tasks.base import FEATURES, BuildOptions, DataError, TaskSpec, make_meta, png_value
from segrl.tasks.build_log import DEFAULT_MAX_SKIP_FRACTION, BadItem, BuildLog, save_with_log
from segrl.tasks.multichart import split_groups

SOURCE_KINDS = ("synthetic", "visionreasoner")
DEFAULT_SYNTHETIC_COUNT = 200
GRID = 4
SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 215), "yellow": (230, 195, 30)}
SIZES = {"small": 0.17, "medium": 0.29, "large": 0.43}
"""Half-side of an object's box as a fraction of a grid cell's side."""
BACKGROUND = (240, 240, 236)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")

def object_labels(n: int) -> list[str]:
    """``["Object 1", ..., "Object n"]``."""
    return [f"Object {k}" for k in range(1, n + 1)]


def prompt_text(query: str, width: int, height: int, look_to_confirm: bool = True, short: bool = False) -> str:
    """The instruction for one query (module docstring); ends with :data:`LOOK_INSTRUCTION` when asked.

    ``short``: the same contract (think, then one ``Object k:`` JSON line per object, reading order,
    pixels of the image) in one sentence without the format example: about 60 tokens instead of 190
    with the tiny tokenizer. Our choice for the CPU testbed, where the prompt's tokens dominate the
    cost of a training step; the Look-to-Confirm sentence is kept whole (it is part of Dr. Seg).
    """
    if short:
        text = (f'Find "{query}". Reason inside <think> </think>, then answer inside <answer> </answer> with one '
                "line per object, top to bottom then left to right: 'Object k: {\"bbox_2d\": [x1, y1, x2, y2], "
                f'"point_2d": [x, y]}}\' in pixels of the {width}x{height} image.')
        return f"{text}\n{LOOK_INSTRUCTION}" if look_to_confirm else text
    text = (
        f'Please find "{query}" with boxes and points. Compare the objects and pick every one that matches. '
        "Write the reasoning inside <think> </think>, then the answer inside <answer> </answer>: one line per "
        "object, top to bottom then left to right, each starting with 'Object k:' and followed by a JSON object "
        f'with "bbox_2d": [x1, y1, x2, y2] and "point_2d": [x, y] in pixels of the {width}x{height} image. '
        "For example:\n<think> thinking process here </think>\n<answer>\n"
        'Object 1: {"bbox_2d": [10, 100, 200, 210], "point_2d": [30, 110]}\n'
        'Object 2: {"bbox_2d": [225, 296, 706, 786], "point_2d": [302, 410]}\n</answer>'
    )
    return f"{text}\n{LOOK_INSTRUCTION}" if look_to_confirm else text


def reading_order(objects: Sequence[GroundingObject]) -> list[int]:
    """Indices of ``objects`` sorted by box centre: top to bottom, then left to right."""
    return sorted(range(len(objects)), key=lambda k: ((objects[k].bbox[1] + objects[k].bbox[3]) / 2,
                                                      (objects[k].bbox[0] + objects[k].bbox[2]) / 2, k))


def object_json(obj: GroundingObject, label: str | None = None) -> str:
    """``obj``'s JSON (:meth:`GroundingObject.to_json`), with ``"label": label`` appended when given.

    Readers of an answer object use ``bbox_2d`` and ``point_2d`` only
    (:func:`segrl.grounding_objects.as_object` ignores other keys), so a label changes no reward.
    """
    if label is None:
        return obj.to_json()
    return json.dumps({**json.loads(obj.to_json()), "label": label})


def answer_text(objects: Sequence[GroundingObject], labels: Sequence[str] | None = None) -> tuple[str, list[str]]:
    """``(answer block, segment references)`` for targets already in segment order (``labels``: one
    ``"label"`` per object, see :func:`object_json`)."""
    refs = [object_json(o, None if labels is None else labels[k]) for k, o in enumerate(objects)]
    body = "\n".join(f"{lab}: {r}" for lab, r in zip(object_labels(len(refs)), refs))
    refs[-1] = f"{refs[-1]}\n</answer>"
    return f"<answer>\n{body}\n</answer>", refs


def loose_box(bbox: Sequence[float], pad: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A loose annotator's box for the exact ``bbox``: every side moved out by ``pad`` times the box's own
    width (left, right) or height (top, bottom), rounded to whole pixels and clipped to the image.

    Args:
        bbox: ``(x1, y1, x2, y2)`` in pixels. pad: the margin as a fraction of the box's side (> 0).
        size: the image's ``(W, H)`` in pixels.

    Returns:
        ``(x1', y1', x2', y2')`` in pixels. Unclipped, its IoU with ``bbox`` is ``1 / (1 + 2 pad)^2``
        (0.44 at ``pad`` 0.25: below VisionReasoner's 0.5 threshold). The centre, and so the point, is kept.

    Our construction (no paper): the second annotator of :func:`loosen_demonstration`.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    dx, dy = pad * (x2 - x1), pad * (y2 - y1)
    w, h = size
    return (max(0, round(x1 - dx)), max(0, round(y1 - dy)), min(int(w), round(x2 + dx)), min(int(h), round(y2 + dy)))


def loosen_demonstration(row: dict, pad: float) -> dict:
    """``row`` with its demonstration (``reference``, what the SFT warm start imitates) redrawn by a loose
    annotator: every answer box replaced by :func:`loose_box` (points and labels kept, the reasoning kept).

    The row's ground truth is untouched: ``segment_references`` (what every reward and ``add_grounding_metrics``
    score against) and ``meta.objects`` / ``meta.panel_boxes`` keep the exact boxes; ``meta`` gains
    ``demonstration: "loose"`` and ``loose_box_pad``. So a warm start on a mix of exact and loose demonstrations
    puts probability on both box conventions, and RL under an exact-box reward can move mass between them.

    Raises:
        ValueError: a segment reference that is not an object's JSON (a row this module did not write).
    """
    meta = json.loads(row["meta"])
    size = tuple(meta["image_size"])
    objects, labels = [], []
    for k, refs in enumerate(row["segment_references"]):
        value = first_json_value(refs[0])
        obj = as_object(value)
        if obj is None:
            raise ValueError(f"row {row['id']!r}: segment_references[{k}] is not an object's JSON: {refs[0]!r}")
        objects.append(GroundingObject(loose_box(obj.bbox, pad, size), obj.point))
        labels.append(value.get("label"))
    answer, _ = answer_text(objects, None if all(lab is None for lab in labels) else labels)
    reasoning = row["reference"][:row["reference"].index("</think>") + len("</think>")]
    return {**row, "reference": f"{reasoning}\n{answer}",
            "meta": make_meta(**meta, demonstration="loose", loose_box_pad=pad)}


def is_loose_demonstration(row_id: str, seed: int, fraction: float) -> bool:
    """Whether training row ``row_id`` gets a loose demonstration: ``random.Random(f"grounding-loose:{seed}:{row_id}")``
    draws below ``fraction`` (so the choice depends on the row only, not on ``count`` or the split's order)."""
    return fraction > 0 and random.Random(f"grounding-loose:{seed}:{row_id}").random() < fraction


def _row(row_id: str, image: dict, query: str, size: tuple[int, int], think: str,
         objects: Sequence[GroundingObject], look_to_confirm: bool, labels: Sequence[str] | None = None,
         short: bool = False, **meta) -> dict:
    answer, refs = answer_text(objects, labels)
    return {
        "id": row_id,
        "task": TASK.name,
        "images": [image],
        "prompt": [{"role": "user", "content": [
            {"type": "image", "text": None},
            {"type": "text", "text": prompt_text(query, size[0], size[1], look_to_confirm, short)},
        ]}],
        "segment_labels": object_labels(len(objects)),
        "segment_references": [[r] for r in refs],
        "reference": f"<think>{think}</think>\n{answer}",
        "meta": make_meta(task_version=TASK.version, image_size=list(size), query=query,
                          objects=[json.loads(o.to_json()) for o in objects], look_to_confirm=look_to_confirm,
                          **meta),
    }


# --- synthetic --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneObject:
    """One rendered object: its attributes, grid cell and exact box/point (pixels)."""

    shape: str
    colour: str
    size: str
    cell: int
    box: tuple[int, int, int, int]
    point: tuple[int, int]

    @property
    def rank(self) -> int:
        return list(SIZES).index(self.size)

    def name(self) -> str:
        return f"the {self.size} {self.colour} {self.shape}"

    def target(self) -> GroundingObject:
        return GroundingObject(tuple(float(v) for v in self.box), tuple(float(v) for v in self.point))


@dataclass(frozen=True)
class Relation:
    """A query template: ``text`` with ``{anchor}`` (and ``{colour}``); ``holds(obj, anchor, colour)``."""

    text: str
    holds: Callable[[SceneObject, SceneObject, str], bool]


RELATIONS = (
    Relation("every object left of {anchor}", lambda o, a, c: o.point[0] < a.point[0]),
    Relation("every object right of {anchor}", lambda o, a, c: o.point[0] > a.point[0]),
    Relation("every object above {anchor}", lambda o, a, c: o.point[1] < a.point[1]),
    Relation("every object below {anchor}", lambda o, a, c: o.point[1] > a.point[1]),
    Relation("every object larger than {anchor}", lambda o, a, c: o.rank > a.rank),
    Relation("every object smaller than {anchor}", lambda o, a, c: o.rank < a.rank),
    Relation("every object with the same colour as {anchor}", lambda o, a, c: o.colour == a.colour),
    Relation("every object with the same shape as {anchor}", lambda o, a, c: o.shape == a.shape),
    Relation("every {colour} thing smaller than {anchor}", lambda o, a, c: o.colour == c and o.rank < a.rank),
    Relation("every {colour} thing left of {anchor}", lambda o, a, c: o.colour == c and o.point[0] < a.point[0]),
)
"""Query templates; the anchor is never a target."""


def anchor_names(obj: SceneObject, scene: Sequence[SceneObject]) -> list[str]:
    """Descriptions that pick out ``obj`` alone in ``scene`` (sorted, so sampling is deterministic)."""
    others = [o for o in scene if o is not obj]
    names = []
    if not any(o.colour == obj.colour and o.shape == obj.shape for o in others):
        names.append(f"the {obj.colour} {obj.shape}")
    if not any(o.size == obj.size and o.shape == obj.shape for o in others):
        names.append(f"the {obj.size} {obj.shape}")
    same_shape = [o for o in others if o.shape == obj.shape]
    if same_shape and all(o.rank < obj.rank for o in same_shape):
        names.append(f"the largest {obj.shape}")
    if same_shape and all(o.rank > obj.rank for o in same_shape):
        names.append(f"the smallest {obj.shape}")
    if all(o.rank < obj.rank for o in others):
        names.append("the largest object")
    if all(o.rank > obj.rank for o in others):
        names.append("the smallest object")
    return sorted(names)


def sample_scene(rng: random.Random, side: int, min_objects: int = 3, max_objects: int = 6,
                 grid: int = GRID) -> list[SceneObject]:
    """``min_objects``-``max_objects`` objects in distinct cells of the ``grid`` x ``grid`` grid of a
    ``side``-pixel canvas (module docstring; defaults 3-6 objects on 4 x 4)."""
    cell = side // grid
    n = rng.randint(min_objects, max_objects)
    scene = []
    for c in rng.sample(range(grid * grid), n):
        shape, colour, size = rng.choice(SHAPES), rng.choice(sorted(COLOURS)), rng.choice(list(SIZES))
        cx, cy = (c % grid) * cell + cell // 2, (c // grid) * cell + cell // 2
        r = max(2, round(SIZES[size] * cell))
        scene.append(SceneObject(shape, colour, size, c, (cx - r, cy - r, cx + r, cy + r), (cx, cy)))
    return scene


def render_scene(scene: Sequence[SceneObject], side: int) -> Image.Image:
    """The RGB canvas with every object drawn inside its box (pixel-inclusive corners)."""
    image = Image.new("RGB", (side, side), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for o in scene:
        x1, y1, x2, y2 = o.box
        fill = COLOURS[o.colour]
        if o.shape == "circle":
            draw.ellipse([x1, y1, x2, y2], fill=fill)
        elif o.shape == "square":
            draw.rectangle([x1, y1, x2, y2], fill=fill)
        else:
            draw.polygon([(o.point[0], y1), (x1, y2), (x2, y2)], fill=fill)
    return image


QUERY_KINDS = ("relation", "attribute", "all")
"""``relation``: targets named through an anchor (:data:`RELATIONS`, the default); ``attribute``: targets
named by their own colour or shape (:data:`ATTRIBUTE_QUERIES`); ``all``: every object of the scene
(:data:`ALL_QUERY`: localisation only, the easiest)."""


@dataclass(frozen=True)
class AttributeQuery:
    """A direct query: ``text`` with ``{value}``; ``values(scene)`` the values it may take; ``holds(obj, value)``."""

    text: str
    values: Callable[[Sequence[SceneObject]], list[str]]
    holds: Callable[[SceneObject, str], bool]


ATTRIBUTE_QUERIES = (
    AttributeQuery("every {value} object", lambda sc: sorted({o.colour for o in sc}), lambda o, v: o.colour == v),
    AttributeQuery("every {value}", lambda sc: sorted({o.shape for o in sc}), lambda o, v: o.shape == v),
)
"""Attribute query templates (``queries="attribute"``): every object of one colour, or of one shape."""
ALL_QUERY = AttributeQuery("every object", lambda sc: [""], lambda o, v: True)
"""The query of ``queries="all"``: every object in the image is a target."""


def synthetic_example(i: int, *, seed: int, side: int, max_targets: int = 3, grid: int = GRID,
                      min_objects: int = 3, max_objects: int = 6, queries: str = "relation") -> dict:
    """The scene, query and targets of example ``i`` (deterministic in its arguments).

    Returns:
        ``{"scene", "anchor", "anchor_name", "relation", "colour", "query", "targets"}`` with
        ``targets`` the scene indices of the targets in reading order. For ``queries="attribute"`` / ``"all"``
        ``anchor`` and ``anchor_name`` are None, ``relation`` is the template and ``colour`` its value.
    """
    rng = random.Random(f"grounding-synthetic:{seed}:{i}")
    while True:
        scene = sample_scene(rng, side, min_objects, max_objects, grid)
        for _ in range(100):
            if queries in ("attribute", "all"):
                q = rng.choice(ATTRIBUTE_QUERIES) if queries == "attribute" else ALL_QUERY
                value = rng.choice(q.values(scene))
                hits = [k for k, o in enumerate(scene) if q.holds(o, value)]
                a = name = None
                rel_text, query = q.text, q.text.format(value=value)
            else:
                rel = rng.choice(RELATIONS)
                a = rng.randrange(len(scene))
                names = anchor_names(scene[a], scene)
                if not names:
                    continue
                name = rng.choice(names)
                value = rng.choice(sorted({o.colour for o in scene}))
                hits = [k for k, o in enumerate(scene) if k != a and rel.holds(o, scene[a], value)]
                rel_text, query = rel.text, rel.text.format(anchor=name, colour=value)
            if 1 <= len(hits) <= max_targets:
                order = reading_order([scene[k].target() for k in hits])
                return {"scene": scene, "anchor": a, "anchor_name": name, "relation": rel_text, "colour": value,
                        "query": query, "targets": [hits[k] for k in order]}


def synthetic_row(i: int, *, seed: int, side: int, max_targets: int = 3, look_to_confirm: bool = True,
                  grid: int = GRID, min_objects: int = 3, max_objects: int = 6, queries: str = "relation",
                  name_objects: bool = False, short_prompt: bool = False) -> dict:
    """Row ``i`` of the synthetic source (module docstring); ``name_objects``: every answer object's JSON
    also carries ``"label": "<size> <colour> <shape>"``; ``short_prompt``: :func:`prompt_text`'s short form."""
    ex = synthetic_example(i, seed=seed, side=side, max_targets=max_targets, grid=grid, min_objects=min_objects,
                           max_objects=max_objects, queries=queries)
    scene = ex["scene"]
    targets = [scene[k] for k in ex["targets"]]
    found = "; ".join(t.name() for t in targets)
    if ex["anchor"] is None:  # attribute query: the look block holds what was found
        found = f"<look>{found}</look>" if look_to_confirm else found
        think = f"Found {len(targets)}: {found}."
    else:
        anchor = scene[ex["anchor"]]
        where = f"at ({anchor.point[0]}, {anchor.point[1]})"
        if look_to_confirm:
            where = f"<look>{where}</look>"
        think = (f"{ex['anchor_name'][0].upper()}{ex['anchor_name'][1:]} is {anchor.name()} {where}. "
                 f"Found {len(targets)}: {found}.")
    return _row(
        f"synthetic-{seed}-{i:05d}", png_value(render_scene(scene, side)), ex["query"], (side, side), think,
        [t.target() for t in targets], look_to_confirm,
        labels=[f"{t.size} {t.colour} {t.shape}" for t in targets] if name_objects else None,
        short=short_prompt, source_kind="synthetic", seed=seed, index=i, grid=grid,
        queries=queries, name_objects=name_objects, short_prompt=short_prompt, scene=[asdict(o) for o in scene],
        anchor=ex["anchor"], relation=ex["relation"], targets=ex["targets"],
        panel_boxes=[list(t.box) for t in targets],
    )


# --- VisionReasoner / ReasonSeg ---------------------------------------------------------------
LAYOUTS = {"visionreasoner": ("problem", "solution", "image"), "reasonseg": ("text", "bbox", "image")}
"""Required columns of each layout the loader reads."""
TEST_SPLITS = ("test", "validation", "val")


def _read_parquet_split(path: Path, split: str, names: list[str], log: BuildLog):
    """One split's parquet files as a Dataset. If they do not load together, each file is loaded
    alone and a file that cannot be read is a bad item (skipped and listed in ``log``)."""
    from datasets import concatenate_datasets, load_dataset

    try:
        return load_dataset("parquet", data_files={split: names}, split=split)
    except Exception as e:  # pyarrow / datasets errors: find the file(s) to blame, one at a time
        first = e
    parts = []
    for name in names:
        try:
            parts.append(load_dataset("parquet", data_files={split: [name]}, split=split))
        except Exception as e:  # pyarrow / datasets errors -> a bad file, named; one item (its rows are unknown)
            log.count()
            log.skip(BadItem(name, None, f"cannot read the parquet file ({type(e).__name__}: {e})",
                             message=f"{name}: cannot read the {split} parquet file ({type(e).__name__}: {e})"))
    if not parts:
        raise DataError(f"{path}: cannot read the {split} parquet files ({type(first).__name__}: {first})")
    try:
        return concatenate_datasets(parts)
    except ValueError as e:  # files of one split that differ in columns
        raise DataError(f"{path}: the {split} parquet files differ in their columns ({e})") from e


def _open_source(source, log: BuildLog) -> tuple[dict, str, Path | None]:
    """``({split: Dataset}, name for messages, base directory for relative image paths)``."""
    from datasets import Dataset as _Dataset
    from datasets import load_dataset, load_from_disk

    if source is None:
        raise DataError("source_kind='visionreasoner' needs a source: a saved dataset directory, parquet files or "
                        "a hub id")
    path = Path(source)
    if path.exists():
        if not path.is_dir():
            raise DataError(f"{path}: expected a directory (save_to_disk output or parquet files)")
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            try:
                ds = load_from_disk(str(path))
            except (OSError, ValueError) as e:
                raise DataError(f"{path}: cannot load the saved dataset ({e})") from e
            splits = {"train": ds} if isinstance(ds, _Dataset) else dict(ds)
            return splits, str(path), path
        files: dict[str, list[str]] = {}
        for f in sorted(path.rglob("*.parquet")):
            files.setdefault(f.name.split("-")[0].split(".")[0], []).append(str(f))
        if not files:
            raise DataError(f"{path}: neither a save_to_disk directory nor parquet files (<split>-*.parquet)")
        splits = {}
        for split, names in files.items():  # one split at a time: splits may differ in columns
            splits[split] = _read_parquet_split(path, split, names, log)
        return splits, str(path), path
    if HUB_ID.fullmatch(str(source)):
        try:
            return dict(load_dataset(str(source))), str(source), None
        except Exception as e:  # offline, not found, auth ... -> one clear message
            raise DataError(
                f"{source}: not a local directory, and loading it from the Hugging Face hub failed "
                f"({type(e).__name__}: {e}). Download it where the hub is reachable (datasets.load_dataset(...)"
                ".save_to_disk(DIR)) and pass DIR."
            ) from e
    raise DataError(f"{source}: dataset directory not found")


def _layout(columns: Sequence[str], where: str) -> str:
    for name, required in LAYOUTS.items():
        if all(c in columns for c in required):
            return name
    raise DataError(f"{where}: columns {sorted(columns)} match no known layout; need "
                    + " or ".join(f"{list(r)} ({n})" for n, r in LAYOUTS.items()))


def _bad(where: str, fld: str | None, reason: str, message: str | None = None) -> BadItem:
    """A bad row ``where`` (``name[split][index]``): file = the source name, item = ``[split][index]``."""
    name, _, rest = where.partition("[")
    return BadItem(name, fld, reason, item=f"[{rest}" if rest else None,
                   message=message or f"{where}: field {fld!r}: {reason}")


def _image_bytes(value, base: Path | None, where: str) -> tuple[dict, tuple[int, int]]:
    """The stored image (original bytes) and its ``(W, H)``.

    Raises:
        BadItem: not an image, a missing file, no bytes, unreadable bytes (field ``image``).
    """
    if not isinstance(value, dict):
        raise _bad(where, "image", "not an image", f"{where}: field 'image' is not an image")
    data, path = value.get("bytes"), value.get("path")
    if data is None and path:
        p = Path(path) if Path(path).is_absolute() or base is None else base / path
        if not p.is_file():
            raise _bad(where, "image", f"file {p} not found")
        data = p.read_bytes()
    if not data:
        raise _bad(where, "image", "holds no bytes", f"{where}: field 'image' holds no bytes")
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise _bad(where, "image", f"unreadable image ({e})") from e
    return {"bytes": data, "path": None}, size


def _target(value, where: str, field: str) -> GroundingObject:
    obj = as_object(value)
    if obj is None:
        raise _bad(where, field, f"expected {{'bbox_2d': [x1, y1, x2, y2], 'point_2d': [x, y]}} "
                   f"with finite numbers, got {value!r:.120}")
    x1, y1, x2, y2 = obj.bbox
    if x2 < x1 or y2 < y1:
        raise _bad(where, field, f"box {list(obj.bbox)} has x2 < x1 or y2 < y1")
    return obj


def _targets(row: dict, layout: str, where: str) -> list[GroundingObject]:
    """The row's target objects, in the source's order.

    Raises:
        BadItem: ``solution`` is not a JSON list of objects with finite boxes and points (``bbox``
            for ReasonSeg), a box with ``x2 < x1``, no object at all.
    """
    if layout == "visionreasoner":
        text = row["solution"]
        data = first_json_value(text) if isinstance(text, str) else text
        if not isinstance(data, list):
            raise _bad(where, "solution", f"expected a JSON list of objects, got {text!r:.120}")
        objects = [_target(item, where, "solution") for item in data]
    else:
        box = row["bbox"]
        if isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box):
            point = [round((box[0] + box[2]) / 2), round((box[1] + box[3]) / 2)]
        else:
            point = None
        objects = [_target({"bbox_2d": box, "point_2d": point}, where, "bbox")]
    if not objects:
        fld = "solution" if layout == "visionreasoner" else "bbox"
        raise _bad(where, fld, "no target object (segments need at least one)",
                   f"{where}: no target object (segments need at least one; field {fld!r})")
    return objects


def _loaded_splits(source, seed, split_seed, count, test_fraction, look_to_confirm,
                   log: BuildLog) -> dict[str, list[dict]]:
    splits, name, base = _open_source(source, log)
    if not splits:
        raise DataError(f"{name}: no split")
    train_name = "train" if "train" in splits else (next(iter(splits)) if len(splits) == 1 else None)
    if train_name is None:
        raise DataError(f"{name}: no 'train' split (has {list(splits)})")
    test_name = next((s for s in TEST_SPLITS if s in splits), None)
    rows: dict[str, list[dict]] = {}
    for our, theirs in (("train", train_name), ("test", test_name)):
        if theirs is None:
            continue
        ds = splits[theirs]
        layout = _layout(ds.column_names, f"{name}[{theirs}]")
        from datasets import Image as ImageFeature

        ds = ds.cast_column("image", ImageFeature(decode=False))
        n = len(ds) if count is None else min(len(ds), int(count))
        out, seen = [], {}
        for idx in range(n):
            row = ds[idx]
            where = f"{name}[{theirs}][{idx}]"
            log.count()
            try:
                query_field = "problem" if layout == "visionreasoner" else "text"
                query_raw = row[query_field]
                if not isinstance(query_raw, str) or not query_raw.strip():
                    raise _bad(where, query_field, "is empty", f"{where}: field {query_field!r} is empty")
                query = " ".join(query_raw.split()).lower().strip(".").strip()
                objects = _targets(row, layout, where)
                objects = [objects[k] for k in reading_order(objects)]
                image, size = _image_bytes(row["image"], base, where)
                if row.get("id") not in (None, ""):
                    rid, id_field = str(row["id"]), "id"
                elif row.get("image_id") is not None and row.get("ann_id") is not None:
                    rid, id_field = f"{row['image_id']}-{row['ann_id']}", "image_id"
                else:
                    rid, id_field = f"{theirs}-{idx:06d}", None
                if rid in seen:
                    raise _bad(where, id_field, f"duplicate id {rid!r} (first at {seen[rid]})",
                               f"{where}: duplicate id {rid!r} (first at {seen[rid]}; field {id_field!r})")
            except BadItem as e:
                log.skip(e)
                continue
            seen[rid] = where
            look = f"<look>{len(objects)} matching object(s) in the image.</look>" if look_to_confirm else (
                f"{len(objects)} matching object(s) in the image.")
            out.append(_row(rid, image, query, size, f"The query asks for {query}. {look}", objects,
                            look_to_confirm, source_kind="visionreasoner", layout=layout, source=name,
                            source_split=theirs, source_index=idx, seed=seed))
        rows[our] = out
    log.check()
    for split, out in rows.items():
        if not out:
            raise DataError(f"{name}: no usable row in the {split} split ({log.first_errors()})")
    if "test" not in rows:
        by_id = {r["id"]: r for r in rows["train"]}
        train, test = split_groups(list(by_id), split_seed, test_fraction)
        rows = {"train": [by_id[r] for r in train], "test": [by_id[r] for r in test]}
    return rows


# --- build ------------------------------------------------------------------------------------
def build(
    source: str | Path | None,
    out_dir: str | Path,
    *,
    source_kind: str = "synthetic",
    count: int | None = None,
    seed: int = 0,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    image_side: int = 840,
    max_targets: int = 3,
    grid: int = GRID,
    min_objects: int = 3,
    max_objects: int = 6,
    queries: str = "relation",
    name_objects: bool = False,
    short_prompt: bool = False,
    look_to_confirm: bool = True,
    loose_box_fraction: float = 0.0,
    loose_box_pad: float = 0.25,
    strict: bool = False,
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION,
) -> DatasetDict:
    """Build the grounding DatasetDict (``train``/``test``) and save it atomically.

    Everything is built in memory first; ``out_dir`` is written (or replaced) only once the whole
    dataset exists, so on any error nothing is written.

    Args:
        source: the VisionReasoner/ReasonSeg dataset (``source_kind="visionreasoner"``: a
            ``save_to_disk`` directory, a directory of parquet files or a hub id); ignored for synthetic.
        out_dir: where the DatasetDict is written.
        source_kind: ``"synthetic"`` or ``"visionreasoner"``.
        count: synthetic: number of examples (default 200, >= 2); loaded: at most this many rows
            per split (default all).
        seed: scene sampling seed (synthetic; stored in meta for loaded data).
        split_seed: train/test split seed (synthetic, and loaded data without a test split).
        test_fraction: held-out fraction, in [0, 1], for the same cases.
        image_side: synthetic canvas side in pixels (>= 4 * 24); 840 keeps the reward's pixel
            thresholds (10, 30, 200 px) at the scale of the VisionReasoner 840-pixel data.
        max_targets: synthetic: the most targets a query may have (1 .. 6).
        grid: synthetic: cells per side of the object grid (2 .. 8; default 4). Every object sits at a
            cell centre, so a coarser grid means larger objects and fewer distinct coordinates.
        min_objects, max_objects: synthetic: objects per scene (1 <= min <= max <= grid * grid).
        queries: synthetic: ``relation`` (targets named through an anchor, :data:`RELATIONS`) or
            ``attribute`` (every object of one colour or shape, :data:`ATTRIBUTE_QUERIES`) or ``all``
            (every object, :data:`ALL_QUERY`; needs ``max_objects <= max_targets``).
        name_objects: synthetic: every answer object's JSON also carries ``"label": "<size> <colour>
            <shape>"`` (no reward reads it; the warm start's vision alignment learns the words from the
            target's patches, so the tower encodes colour, shape and size where the object is).
        short_prompt: synthetic: the one-sentence instruction (:func:`prompt_text`).
        look_to_confirm: end every prompt with Dr. Seg's Look-to-Confirm instruction and put a
            ``<look>`` block in every reference's reasoning.
        loose_box_fraction: the fraction of *training* rows (in [0, 1]; default 0, every demonstration exact)
            whose demonstration a loose annotator drew (:func:`loosen_demonstration`, chosen per row by
            :func:`is_loose_demonstration`); the test split and every row's ground truth stay exact.
        loose_box_pad: the loose annotator's margin, a fraction of each box's side (in (0, 1]; default 0.25).
        strict: loaded data: the first bad row raises its :class:`~segrl.tasks.build_log.BadItem`.
        max_skip_fraction: loaded data: fail when more than this fraction of the rows is bad (0..1).

    Returns:
        The DatasetDict that was written (rows as in the module docstring, features ``FEATURES``).

    Raises:
        BadItem: loaded data, under ``strict``: the first bad row (a bad ``solution``/``bbox``:
            not finite numbers, ``x2 < x1``, no target; an empty query; an unreadable or missing
            image; a duplicate id) or unreadable parquet file, naming ``source[split][row]`` and
            the field.
        TooManySkipped: loaded data: more than ``max_skip_fraction`` of the rows are bad.
        DataError: loaded data: a missing directory or split, an unknown column layout, a split
            without a usable row, a hub id that cannot be loaded.
        ValueError: a bad option (unknown ``source_kind``, ``count`` < 2 synthetic or < 1 loaded,
            ``image_side`` < 96, ``max_targets`` outside 1 .. 6, ``test_fraction`` outside [0, 1],
            ``grid`` outside 2 .. 8, object counts outside 1 <= min <= max <= grid * grid, an unknown
            ``queries``).
    """
    if source_kind not in SOURCE_KINDS:
        raise ValueError(f"source_kind must be one of {SOURCE_KINDS}, got {source_kind!r}")
    if not 0.0 <= float(test_fraction) <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    if not 0.0 <= float(loose_box_fraction) <= 1.0:
        raise ValueError(f"loose_box_fraction must be in [0, 1], got {loose_box_fraction}")
    if not 0.0 < float(loose_box_pad) <= 1.0:
        raise ValueError(f"loose_box_pad must be in (0, 1], got {loose_box_pad}")
    log = BuildLog(TASK.name, strict=strict, max_skip_fraction=max_skip_fraction, unit="row")
    if source_kind == "synthetic":
        if image_side < max(4, grid) * 24:
            raise ValueError(f"image_side must be >= {max(4, grid) * 24} pixels (24 per grid cell, at least 96), "
                             f"got {image_side}")
        if not 1 <= max_targets <= 6:
            raise ValueError(f"max_targets must be in 1 .. 6, got {max_targets}")
        if not 2 <= grid <= 8:
            raise ValueError(f"grid must be in 2 .. 8, got {grid}")
        if not 1 <= min_objects <= max_objects <= grid * grid:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= grid * grid = {grid * grid}, got "
                             f"{min_objects}, {max_objects}")
        if queries not in QUERY_KINDS:
            raise ValueError(f"queries must be one of {QUERY_KINDS}, got {queries!r}")
        if queries == "all" and max_objects > max_targets:
            raise ValueError(f"queries='all' makes every object a target: need max_objects <= max_targets, got "
                             f"{max_objects} > {max_targets}")
        if queries == "relation" and max_objects < 2:
            raise ValueError(f"relation queries need an anchor and a target: max_objects >= 2, got {max_objects}")
        n = DEFAULT_SYNTHETIC_COUNT if count is None else int(count)
        if n < 2:
            raise ValueError(f"count must be >= 2 (one train and one test example), got {count}")
        by_id = {}
        for i in range(n):
            row = synthetic_row(i, seed=seed, side=image_side, max_targets=max_targets,
                                look_to_confirm=look_to_confirm, grid=grid, min_objects=min_objects,
                                max_objects=max_objects, queries=queries, name_objects=name_objects,
                                short_prompt=short_prompt)
            by_id[row["id"]] = row
        train, test = split_groups(list(by_id), split_seed, test_fraction)
        splits = {"train": [by_id[r] for r in train], "test": [by_id[r] for r in test]}
        log.count(n)  # generated: nothing can be bad
    else:
        if count is not None and int(count) < 1:
            raise ValueError(f"count must be >= 1 or None, got {count}")
        splits = _loaded_splits(source, seed, split_seed, count, test_fraction, look_to_confirm, log)
    summary = {"source_kind": source_kind}
    if loose_box_fraction > 0:
        loose = [is_loose_demonstration(r["id"], seed, float(loose_box_fraction)) for r in splits["train"]]
        splits["train"] = [loosen_demonstration(r, float(loose_box_pad)) if is_loose else r
                           for r, is_loose in zip(splits["train"], loose)]
        summary.update(loose_box_fraction=float(loose_box_fraction), loose_box_pad=float(loose_box_pad),
                       loose_demonstrations=sum(loose))
    ds = DatasetDict({name: Dataset.from_list(rows, features=FEATURES) for name, rows in splits.items()})
    splits.clear()
    save_with_log(ds, out_dir, log, **summary)
    return ds


@dataclass(frozen=True)
class GroundingOptions(BuildOptions):
    """``segrl build-data grounding`` options (:func:`build`); ``size`` is the number of examples."""

    builder_names: ClassVar[dict[str, str]] = {"size": "count"}

    seed: int = field(default=0, metadata={"help": "Scene seed (synthetic)."})
    size: int | None = field(default=None, metadata={
        "help": f"Examples (synthetic: total, default {DEFAULT_SYNTHETIC_COUNT}; loaded: per split).",
        "aliases": ("--count",)})
    test_fraction: float = field(default=0.2, metadata={"help": "Held-out fraction (same cases as split_seed)."})
    source_kind: str = field(default="synthetic", metadata={
        "help": "synthetic (offline, rendered scenes) or visionreasoner."})
    split_seed: int = field(default=0, metadata={
        "help": "Train/test split seed (synthetic, or loaded data without a test split)."})
    image_side: int = field(default=840, metadata={"help": "Synthetic canvas side in pixels."})
    max_targets: int = field(default=3, metadata={"help": "Most targets per synthetic query."})
    grid: int = field(default=GRID, metadata={"help": "Cells per side of the synthetic object grid (2 .. 8)."})
    min_objects: int = field(default=3, metadata={"help": "Fewest objects per synthetic scene."})
    max_objects: int = field(default=6, metadata={"help": "Most objects per synthetic scene."})
    queries: str = field(default="relation", metadata={
        "help": "Synthetic queries: relation (through an anchor), attribute (every object of one colour/shape) or "
        "all (every object)."})
    name_objects: bool = field(default=False, metadata={
        "help": "Synthetic: each answer object's JSON also carries \"label\": \"<size> <colour> <shape>\".",
        "flag": "--name-objects/--no-name-objects"})
    short_prompt: bool = field(default=False, metadata={
        "help": "Synthetic: the one-sentence instruction instead of VisionReasoner's with its format example.",
        "flag": "--short-prompt/--full-prompt"})
    look_to_confirm: bool = field(default=True, metadata={
        "help": "Dr. Seg's Look-to-Confirm prompt (and <look> blocks in the references), or VisionReasoner's "
        "plain one.", "flag": "--look-to-confirm/--plain"})
    loose_box_fraction: float = field(default=0.0, metadata={
        "help": "Fraction of training demonstrations (references) drawn by a loose annotator: boxes padded by "
        "--loose-box-pad of their side; ground truth and the test split stay exact."})
    loose_box_pad: float = field(default=0.25, metadata={
        "help": "The loose annotator's margin per side, a fraction of the box's width/height."})


TASK = TaskSpec(
    name="grounding",
    version=2,  # 2: synthetic grid / object counts / attribute queries (meta.queries)
    build=build,
    segment_reward="iou",
    eval_metrics=("iou",),
    description="Reasoning grounding: boxes and points of the object(s) an indirect query describes "
    "(synthetic scenes or VisionReasoner/ReasonSeg data), one segment per target object.",
    options=GroundingOptions,
    source_help="VisionReasoner/ReasonSeg data: a save_to_disk directory, a directory of <split>-*.parquet files or "
    "a hub id; unused for --source-kind synthetic.",
)
