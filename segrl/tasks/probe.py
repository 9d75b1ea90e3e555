"""Vision probe: one object per panel, name its colour and shape. The smallest test of sight.

One example = K panels, each a separate image of ``panel_side × panel_side`` pixels holding
one large shape (:data:`PROBE_SHAPES`, 4 kinds) in one colour (:data:`PROBE_COLOURS`, 6) centred
on a plain mid-grey background. The answer names each panel's colour and shape::

    Panel 1: red circle
    Panel 2: blue star

Why separate images rather than a grid: each panel keeps its pixels *and* its image tokens
as K grows (K images of the model's ``image_size`` each), so the probe varies K without
varying how much of a panel the model can see (EXPERIMENTS.md, "Controlled inputs stay
readable"). The grid layout with shrinking panels is :mod:`segrl.tasks.docci`'s.

A policy that ignores the image scores chance, 1/24 per panel (colour and shape uniform and
independent); one that reads it scores up to 1. Nothing else varies: no position, size,
count or texture, so a failure here is a failure to see, not to describe.

Row (schema in :mod:`segrl.tasks.base`):

* ``id``: ``probe-k<K>-<seed>-<i:05d>``; ``task``: ``"probe"``;
* ``images``: K RGB images, panel 1 first;
* ``prompt``: one user message: the K image blocks, then one text block (``"The images are
  panels 1 to K, in order."``, the question, :func:`~segrl.tasks.base.format_instruction`);
  with ``layout="interleaved"`` a text block ``"Panel k:"`` before each image block instead;
* ``segment_labels``: ``Panel 1`` ... ``Panel K``; ``segment_references``: ``[["<colour> <shape>"]]``
  per panel; ``reference``: :func:`~segrl.segments.format_answer`;
* ``meta`` (JSON): ``task_version``, ``panels``, ``panel_side``, ``seed``, ``index``, ``layout``, ``objects``
  (``{"colour", "shape"}`` per panel).

Example ``i`` draws from ``random.Random(f"probe:{seed}:{i}")`` (independent of ``count``);
the split is :func:`segrl.tasks.multichart.split_groups` on the ids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from datasets import Dataset, DatasetDict
from PIL import Image, ImageDraw

from segrl.segments import format_answer
from segrl.tasks.base import (
    FEATURES,
    BuildOptions,
    TaskSpec,
    format_instruction,
    make_meta,
    png_value,
    save_dataset_atomic,
)
from segrl.tasks.multichart import split_groups
from segrl.tasks.panels import COLOURS, _draw_shape

PROBE_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple")
PROBE_SHAPES = ("circle", "square", "triangle", "star")
BACKGROUND = (128, 128, 128)
"""Mid-grey: no probe colour equals it, and it is the blank image of :mod:`segrl.sight`."""
LAYOUTS = ("images_first", "interleaved")
DEFAULT_COUNT = 400
VERBOSE_INSTRUCTION = (
    "Look at every panel carefully before you answer. Each panel shows exactly one object on a plain grey "
    "background. The object is one of four shapes (a circle, a square, a triangle or a star) and it has one of "
    "six colours (red, orange, yellow, green, blue or purple). Its size and position do not change from panel "
    "to panel, so only its colour and its shape tell the panels apart. Give the colour first, then the shape."
)
"""Docci-length filler (task-relevant, content-free) of the ``verbose`` prompt."""
EXTENT = 0.32
"""The shape's extent (tip to tip) as a fraction of the panel side: docci's "large" object in one cell of
its 3x3 grid (0.95 of a third). Objects this size leave the old default blind (image-swap TV 0.0000).
"""


def render_object(colour: str, shape: str, side: int, extent: float = EXTENT) -> Image.Image:
    """One panel: ``shape`` in ``colour``, extent ``extent * side`` pixels, centred on :data:`BACKGROUND`."""
    im = Image.new("RGB", (side, side), BACKGROUND)
    _draw_shape(ImageDraw.Draw(im), shape, side / 2, side / 2, extent * side / 2, COLOURS[colour])
    return im


def probe_row(i: int, *, panels: int, panel_side: int, seed: int, layout: str = "images_first",
              verbose: bool = False, extent: float = EXTENT) -> dict:
    """Row ``i`` (module docstring); deterministic in its arguments."""
    rng = random.Random(f"probe:{seed}:{i}")
    objects = [{"colour": rng.choice(PROBE_COLOURS), "shape": rng.choice(PROBE_SHAPES)} for _ in range(panels)]
    labels = [f"Panel {k}" for k in range(1, panels + 1)]
    answers = [f"{o['colour']} {o['shape']}" for o in objects]
    question = "Name the colour and the shape of the object in " + ("the panel." if panels == 1 else "each panel.")
    if verbose:
        question = f"{VERBOSE_INSTRUCTION} {question}"
    content: list[dict] = []
    if layout == "interleaved":
        for label in labels:
            content += [{"type": "text", "text": f"{label}:"}, {"type": "image", "text": None}]
        content.append({"type": "text", "text": f"\n{question} {format_instruction(labels, unit='panel')}"})
    else:
        intro = "The image is panel 1." if panels == 1 else f"The images are panels 1 to {panels}, in order."
        content = [{"type": "image", "text": None} for _ in labels]
        content.append({"type": "text", "text": f"{intro} {question} {format_instruction(labels, unit='panel')}"})
    return {
        "id": f"probe-k{panels}-{seed}-{i:05d}",
        "task": TASK.name,
        "images": [png_value(render_object(o["colour"], o["shape"], panel_side, extent)) for o in objects],
        "prompt": [{"role": "user", "content": content}],
        "segment_labels": labels,
        "segment_references": [[a] for a in answers],
        "reference": format_answer(labels, answers),
        "meta": make_meta(task_version=TASK.version, panels=panels, panel_side=panel_side, seed=seed, index=i,
                          layout=layout, verbose=verbose, extent=extent, objects=objects),
    }


def build(
    source: str | Path | None,
    out_dir: str | Path,
    *,
    panels: int = 1,
    panel_side: int = 56,
    count: int | None = None,
    seed: int = 0,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    layout: str = "images_first",
    verbose: bool = False,
    extent: float = EXTENT,
) -> DatasetDict:
    """Build the probe DatasetDict (``train``/``test``) and save it atomically to ``out_dir``.

    Args:
        source: unused (the probe is rendered); accepted for the task interface.
        out_dir: where the DatasetDict is written.
        panels: K, panels (= images) per example, >= 1.
        panel_side: side of each panel image in pixels, >= 14 (match the model's ``image_size``
            so the processor does not resample it).
        count: examples in all, >= 2 (None: :data:`DEFAULT_COUNT`).
        seed: object sampling seed. split_seed: train/test split seed.
        test_fraction: held-out fraction, in [0, 1].
        layout: ``"images_first"`` (the K images, then the question: how every other task of
            the suite lays out its prompt) or ``"interleaved"`` (``"Panel k:"`` before each image).
        verbose: put :data:`VERBOSE_INSTRUCTION` (about 90 tokens) before the question, so the
            answer sits as far from the images as in docci's or multichart's prompts.

        extent: the object's extent as a fraction of the panel side, in (0, 1]. docci's "large"
            object in one cell of its 3x3 grid is about 0.32.

    Returns:
        The DatasetDict written (features ``FEATURES``).

    Raises:
        ValueError: an option out of range (the message names it).
    """
    count = DEFAULT_COUNT if count is None else count
    for name, value, low in (("panels", panels, 1), ("panel_side", panel_side, 14), ("count", count, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"option {name!r}: expected an int >= {low}, got {value!r}")
    if not 0.0 < float(extent) <= 1.0:
        raise ValueError(f"option 'extent': expected a fraction in (0, 1], got {extent}")
    if layout not in LAYOUTS:
        raise ValueError(f"option 'layout': expected one of {LAYOUTS}, got {layout!r}")
    if not 0.0 <= float(test_fraction) <= 1.0:
        raise ValueError(f"option 'test_fraction': expected a value in [0, 1], got {test_fraction}")
    rows = {r["id"]: r for r in (probe_row(i, panels=panels, panel_side=panel_side, seed=seed, layout=layout,
                                                         verbose=verbose, extent=extent)
                                 for i in range(count))}
    train, test = split_groups(list(rows), split_seed, test_fraction)
    ds = DatasetDict({
        "train": Dataset.from_list([rows[r] for r in train], features=FEATURES),
        "test": Dataset.from_list([rows[r] for r in test], features=FEATURES),
    })
    save_dataset_atomic(ds, out_dir)
    return ds


@dataclass(frozen=True)
class ProbeOptions(BuildOptions):
    """``segrl build-data probe`` options (:func:`build`); ``size`` is the number of examples."""

    builder_names: ClassVar[dict[str, str]] = {"size": "count"}
    unused: ClassVar[tuple[str, ...]] = ("strict", "max_skip_fraction")  # rendered: nothing to skip

    seed: int = field(default=0, metadata={"help": "Object sampling seed."})
    size: int | None = field(default=None, metadata={"help": f"Examples in all (default {DEFAULT_COUNT}).",
                                                      "aliases": ("--count",)})
    panels: int = field(default=1, metadata={"help": "K: panels (one image each) per example."})
    panel_side: int = field(default=56, metadata={"help": "Side of one panel image in pixels (the model's image_size)."})
    split_seed: int = field(default=0, metadata={"help": "Train/test split seed."})
    layout: str = field(default="images_first", metadata={
        "help": "images_first (the K images, then the question) or interleaved ('Panel k:' before each image)."})
    verbose: bool = field(default=False, metadata={
        "help": "A docci-length instruction before the question.", "flag": "--verbose"})
    extent: float = field(default=EXTENT, metadata={"help": "Object extent as a fraction of the panel side."})


TASK = TaskSpec(
    name="probe",
    version=1,
    build=build,
    segment_reward="accuracy",
    eval_metrics=("accuracy",),
    description="Vision probe: K panels (one image each), one coloured shape per panel; name colour and shape.",
    options=ProbeOptions,
    source_help="Unused (the probe is rendered).",
)
