"""Multi-panel dense captioning: K panels composed into one grid image, one caption segment per panel.

One example = K images laid out by :func:`segrl.tasks.panels.compose_grid` (numbered "1" ..
"K" in their top-left corners) and the K descriptions as segments ``Panel 1`` ... ``Panel K``.

Sources (``source_kind``):

* ``"synthetic"`` (offline default): scenes from :mod:`segrl.tasks.panels`; ``source`` is
  ignored. Example ``i`` draws its K scenes from ``random.Random(f"docci-synthetic:{seed}:{i}")``
  (so example ``i`` does not depend on ``count``); references are :func:`~segrl.tasks.panels.describe`.
  With ``entangled=True`` the K panels share one scene and later captions are relative to an
  earlier panel (:func:`~segrl.tasks.panels.entangled_panels`: ``"As in panel 1, but the
  circle is green."``).
* ``"docci"``: DOCCI (Onoe et al., 2024, "DOCCI: Descriptions of Connected and Contrasting
  Images", ECCV) as published: a local directory holding ``docci_descriptions.jsonlines``
  (one JSON object per line with ``example_id``, ``split``, ``image_file``, ``description``;
  other keys ignored; blank lines skipped) and ``images/<image_file>``. A ``source`` that is
  not a local path but looks like a hub id (``google/docci``) is tried with
  ``datasets.load_dataset``; offline that fails with a :class:`DataError` saying how to get
  the files.

Row (schema in :mod:`segrl.tasks.base`):

* ``id``: ``synthetic-<seed>-<i:05d>`` (``-entangled`` appended when entangled), or the K
  DOCCI ``example_id`` joined with ``+``; ``task``: ``"docci"``.
* ``images``: ``[grid]``, one RGB image (size in :func:`~segrl.tasks.panels.compose_grid`).
* ``prompt``: one user message: ``{"type": "image", "text": None}`` then one text block
  asking for a dense description of every numbered panel and ending with
  :func:`~segrl.tasks.base.format_instruction`.
* ``segment_labels``: ``Panel 1`` ... ``Panel K``; ``segment_references``: ``[[description]]``
  per panel (DOCCI descriptions with whitespace runs collapsed to one space, so each segment
  is one line); ``reference``: :func:`~segrl.segments.format_answer`.
* ``meta`` (JSON): ``task_version``, ``source_kind``, ``panels`` (K), ``panel_side``,
  ``layout`` ``[rows, cols]``, ``panel_boxes`` (``[left, top, right, bottom]`` per panel,
  right/bottom exclusive), ``seed``; synthetic: ``index``, ``entangled``, ``scene_specs``
  (:meth:`SceneSpec.to_dict` per panel), and when entangled ``refers_to`` / ``changes`` (None
  for panel 1); DOCCI: ``source`` (the jsonlines file name), ``source_ids``, ``image_files``,
  ``docci_split``.

Splits:

* synthetic: ``count`` examples; ids split by ``split_seed`` exactly as
  :func:`segrl.tasks.multichart.split_groups` (``round(test_fraction * count)`` to test, at
  least 1 and at most count - 1).
* DOCCI: DOCCI's own split; ``train`` rows go to train and ``test`` rows to test; the
  ``qual_*`` subsets (DOCCI's qualitative sets, e.g. ``qual_dev``, ``qual_test``) are skipped;
  ``test_fraction`` and ``split_seed`` are unused. Within a split, the examples (file order)
  are shuffled with ``random.Random(f"docci-group:{seed}:{split}")`` and cut into consecutive
  groups of K; the last ``n mod K`` are dropped; ``count`` keeps the first ``count`` groups of
  each split. Only the images of kept groups are opened.

Bad items (DOCCI; the policy shared by every builder, :mod:`segrl.tasks.build_log`; one item =
one non-blank line of the descriptions file, or one hub row): a line that is not UTF-8 JSON
object, lacks a required field or has an empty one, repeats an ``example_id`` or names an
unknown split is skipped; a record whose image is missing or unreadable is skipped when its
group is composed, and the next record in the shuffled order takes its place. Each is listed in
``build_log.jsonl`` with file, line and field. With no bad item the groups are exactly those
above. The synthetic source has no bad items (its log lists 0 of ``count``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from datasets import Dataset, DatasetDict
from PIL import Image

from segrl.segments import format_answer
from segrl.tasks.base import (
    FEATURES,
    BuildOptions,
    DataError,
    TaskSpec,
    format_instruction,
    make_meta,
    png_value,
)
from segrl.tasks.build_log import DEFAULT_MAX_SKIP_FRACTION, BadItem, BuildLog, save_with_log
from segrl.tasks.multichart import split_groups
from segrl.tasks.panels import (
    MAX_OBJECTS,
    compose_grid,
    describe,
    entangled_panels,
    grid_layout,
    render_panel,
    sample_scene,
)

DESCRIPTIONS_FILE = "docci_descriptions.jsonlines"
IMAGES_DIR = "images"
REQUIRED_FIELDS = ("example_id", "split", "image_file", "description")
SPLITS = {"train": "train", "test": "test"}
"""DOCCI split -> our split; any split starting with ``qual_`` is skipped, any other is an error."""
SOURCE_KINDS = ("synthetic", "docci")
LAYOUTS = ("grid", "images")
DEFAULT_SYNTHETIC_COUNT = 200
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def panel_labels(k: int) -> list[str]:
    """``["Panel 1", ..., "Panel k"]``."""
    return [f"Panel {j}" for j in range(1, k + 1)]


def _prompt_text(k: int, source_kind: str, entangled: bool, layout: str = "grid") -> str:
    labels = panel_labels(k)
    if layout == "images":
        intro = "The image is panel 1." if k == 1 else f"The images are panels 1 to {k}, in order."
    elif k == 1:
        intro = "The image is one panel, numbered 1 in its top-left corner."
    else:
        intro = (
            f"The image is a grid of {k} panels, numbered 1 to {k} in their top-left corners "
            "(left to right, top to bottom)."
        )
    if source_kind == "synthetic":
        what = (
            "Describe every panel densely and exactly: each group of shapes with its count, size, "
            "colour, shape and cell on a 3x3 grid (top left to bottom right), then the background's "
            "texture and colour."
        )
        if entangled and k > 1:
            what += (
                " Describe panel 1 in full. Every later panel repeats an earlier panel with one change: "
                "describe it as 'As in panel N, but ...', naming that panel and the change."
            )
    else:
        what = (
            "Describe every panel in dense detail: the main subjects and their attributes, where they "
            "are, any visible text, and the background, lighting and setting."
        )
    return f"{intro} {what}\n\n{format_instruction(labels, unit='panel')}"


def _row(row_id: str, images: Image.Image | list[Image.Image], descriptions: list[str], prompt_text: str,
         meta: str) -> dict:
    labels = panel_labels(len(descriptions))
    images = images if isinstance(images, list) else [images]
    return {
        "id": row_id,
        "task": TASK.name,
        "images": [png_value(im) for im in images],
        "prompt": [
            {
                "role": "user",
                "content": [{"type": "image", "text": None} for _ in images]
                + [{"type": "text", "text": prompt_text}],
            }
        ],
        "segment_labels": labels,
        "segment_references": [[d] for d in descriptions],
        "reference": format_answer(labels, descriptions),
        "meta": meta,
    }


# --- synthetic -------------------------------------------------------------------------------
def synthetic_row(i: int, *, panels: int, panel_side: int, seed: int, entangled: bool = False,
                  layout: str = "grid", max_objects: int = MAX_OBJECTS) -> dict:
    """Row ``i`` of the synthetic source (module docstring); deterministic in its arguments.

    ``layout="images"`` gives the K panels as K separate ``panel_side`` images (no grid, no printed
    numbers); ``max_objects`` (1..4) caps the object groups per scene (fewer: shorter, easier captions).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"option 'layout': expected one of {LAYOUTS}, got {layout!r}")
    rng = random.Random(f"docci-synthetic{'-entangled' if entangled else ''}:{seed}:{i}")
    if entangled:
        ent = entangled_panels(rng, panels, max_objects=max_objects)
        specs = [p.spec for p in ent]
        captions = [p.caption for p in ent]
        extra = {
            "refers_to": [p.refers_to for p in ent],
            "changes": [asdict(p.change) if p.change else None for p in ent],
        }
    else:
        specs = [sample_scene(rng, max_objects=max_objects) for _ in range(panels)]
        captions = [describe(s) for s in specs]
        extra = {}
    rendered = [render_panel(s, panel_side) for s in specs]
    if layout == "images":  # one image per panel: pixels and image tokens per panel constant in K
        images, geometry = rendered, {"layout": "images", "max_objects": max_objects}
    else:
        images, boxes = compose_grid(rendered, [str(j) for j in range(1, panels + 1)], panel_side)
        geometry = {"layout": list(grid_layout(panels)), "panel_boxes": [list(b) for b in boxes]}
        if max_objects != MAX_OBJECTS:
            geometry["max_objects"] = max_objects
    meta = make_meta(
        task_version=TASK.version,
        source_kind="synthetic",
        panels=panels,
        panel_side=panel_side,
        **geometry,
        seed=seed,
        index=i,
        entangled=entangled,
        scene_specs=[s.to_dict() for s in specs],
        **extra,
    )
    row_id = f"synthetic-{seed}-{i:05d}" + ("-entangled" if entangled else "")
    return _row(row_id, images, captions, _prompt_text(panels, "synthetic", entangled, layout), meta)


def _synthetic_splits(
    panels, panel_side, split_seed, seed, count, test_fraction, entangled, layout="grid", max_objects=MAX_OBJECTS
) -> dict[str, list[dict]]:
    n = DEFAULT_SYNTHETIC_COUNT if count is None else int(count)
    if n < 2:
        raise ValueError(f"count must be >= 2 (one train and one test example), got {count}")
    rows = {}
    for i in range(n):
        row = synthetic_row(i, panels=panels, panel_side=panel_side, seed=seed, entangled=entangled,
                            layout=layout, max_objects=max_objects)
        rows[row["id"]] = row
    train, test = split_groups(list(rows), split_seed, test_fraction)
    return {"train": [rows[r] for r in train], "test": [rows[r] for r in test]}


# --- DOCCI -----------------------------------------------------------------------------------
@dataclass
class _Record:
    example_id: str
    split: str
    image_file: str
    description: str
    where: str  # "<file>:<line>" for messages
    load: Callable[[int], Image.Image]  # panel side -> image
    file: str = ""  # the source file (or hub name), for the build log
    item: str = ""  # "line 12" / "train[3]"


def _load_image_file(path: Path, where: str, side: int) -> Image.Image:
    """The image, fully loaded; a JPEG is decoded at the smallest 1/2^n scale still >= ``side``
    (``Image.draft``), since it is shrunk to a ``side`` panel anyway (DOCCI photos are ~1.5k px)."""
    if not path.is_file():
        raise DataError(f"{path}: image file not found (listed at {where})")
    try:
        with Image.open(path) as im:
            im.draft("RGB", (side, side))
            im.load()
            return im.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable image ({e}; listed at {where})") from e


def _parse_line(raw: bytes, path: Path, lineno: int, source: Path, seen: dict[str, str]) -> _Record | None:
    """One line of the descriptions file as a record (None for a blank line).

    Raises:
        BadItem: not UTF-8, not JSON, not an object, a required field missing or not a
            non-empty string, a duplicate ``example_id``, a split that is neither ``train``,
            ``test`` nor ``qual_*`` (message ``<file>:<line>: ...``).
    """
    where = f"{path}:{lineno}"

    def bad(fld: str | None, reason: str, message: str) -> BadItem:
        return BadItem(path, fld, reason, item=f"line {lineno}", message=f"{where}: {message}")

    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad(None, f"not UTF-8 text ({e})", f"not UTF-8 text ({e})") from e
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        reason = f"unreadable JSON line ({e.msg} at column {e.colno})"
        raise bad(None, reason, reason) from e
    if not isinstance(obj, dict):
        reason = f"expected a JSON object, got {type(obj).__name__}"
        raise bad(None, reason, reason)
    for f in REQUIRED_FIELDS:
        if f not in obj:
            raise bad(f, "missing", f"field {f!r} missing")
        if not isinstance(obj[f], str) or not obj[f].strip():
            reason = f"expected a non-empty string, got {obj[f]!r}"
            raise bad(f, reason, f"field {f!r}: {reason}")
    eid, split = obj["example_id"], obj["split"]
    if eid in seen:
        reason = f"duplicate {eid!r} (first at {seen[eid]})"
        raise bad("example_id", reason, f"field 'example_id': {reason}")
    if split not in SPLITS and not split.startswith("qual_"):
        reason = f"{split!r} is not train, test or qual_*"
        raise bad("split", reason, f"field 'split': {reason}")
    seen[eid] = where
    image_path = source / IMAGES_DIR / obj["image_file"]
    return _Record(eid, split, obj["image_file"], " ".join(obj["description"].split()), where,
                   lambda side, p=image_path, w=where: _load_image_file(p, w, side), str(path), f"line {lineno}")


def read_docci_descriptions(source: Path, log: BuildLog | None = None) -> list[_Record]:
    """Parse ``source/docci_descriptions.jsonlines`` into records (images not opened yet).

    Each non-blank line is one item of ``log`` (a default, non-strict log when None); a line
    that :func:`_parse_line` refuses is skipped and listed there.

    Raises:
        BadItem: under ``log.strict``, the first bad line (``<file>:<line>``).
        DataError: the directory or file is missing; no line is a usable record.
    """
    if log is None:
        log = BuildLog(TASK.name, max_skip_fraction=1.0, unit="line")
    if not source.is_dir():
        raise DataError(f"{source}: DOCCI directory not found")
    path = source / DESCRIPTIONS_FILE
    if not path.is_file():
        raise DataError(f"{path}: DOCCI descriptions file not found")
    records: list[_Record] = []
    seen: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        log.count()
        try:
            rec = _parse_line(raw, path, lineno, source, seen)
        except BadItem as e:
            log.skip(e)
            continue
        if rec is not None:
            records.append(rec)
    if not records:
        raise DataError(f"{path}: no examples" + (f" ({log.first_errors()})" if log.skipped else ""))
    return records


def _hub_records(name: str, log: BuildLog) -> list[_Record]:
    """Records from ``datasets.load_dataset(name)`` (``example_id``, ``description``, ``image`` per row);
    a row missing one of them is skipped and listed in ``log``."""
    try:
        from datasets import load_dataset

        hub = load_dataset(name)
    except Exception as e:  # any failure (offline, scripts unsupported, not found) -> one clear message
        raise DataError(
            f"{name}: not a local directory, and loading it from the Hugging Face hub failed "
            f"({type(e).__name__}: {e}). Download {DESCRIPTIONS_FILE} and docci_images.tar.gz from "
            f"https://google.github.io/docci/, unpack them into one directory and pass that directory."
        ) from e
    records = []
    for split, ds in hub.items():
        for j, ex in enumerate(ds):
            where = f"{name}[{split}][{j}]"
            log.count()
            missing = next((f for f in ("example_id", "description", "image") if ex.get(f) is None), None)
            if missing is not None:
                log.skip(BadItem(name, missing, "missing", item=f"{split}[{j}]",
                                 message=f"{where}: field {missing!r} missing"))
                continue
            records.append(
                _Record(
                    str(ex["example_id"]),
                    split,
                    str(ex.get("image_file", "")),
                    " ".join(str(ex["description"]).split()),
                    where,
                    lambda side, im=ex["image"]: im,
                    name,
                    f"{split}[{j}]",
                )
            )
    return records


def _docci_records(source, log: BuildLog) -> tuple[list[_Record], str]:
    if source is None:
        raise DataError("source_kind='docci' needs a source: the DOCCI directory (or a hub id)")
    path = Path(source)
    if path.exists():
        return read_docci_descriptions(path.resolve(), log), DESCRIPTIONS_FILE
    if HUB_ID.fullmatch(str(source)):
        return _hub_records(str(source), log), str(source)
    raise DataError(f"{source}: DOCCI directory not found")


def _docci_splits(source, panels, panel_side, seed, count, log: BuildLog) -> dict[str, list[dict]]:
    records, source_name = _docci_records(source, log)
    by_split: dict[str, list[_Record]] = {"train": [], "test": []}
    for r in records:
        if r.split in SPLITS:
            by_split[SPLITS[r.split]].append(r)
    out: dict[str, list[dict]] = {}
    text = _prompt_text(panels, "docci", False)
    labels = [str(j) for j in range(1, panels + 1)]
    for split, recs in by_split.items():
        if len(recs) < panels:
            raise DataError(
                f"{source_name}: split {split!r} has {len(recs)} examples, fewer than panels={panels}"
            )
        order = list(recs)
        random.Random(f"docci-group:{seed}:{split}").shuffle(order)
        n_groups = len(order) // panels
        if count is not None:
            n_groups = min(n_groups, int(count))
        rows: list[dict] = []
        pending = iter(order)
        while len(rows) < n_groups:
            group, images = [], []
            for r in pending:  # the next K records whose image opens; a bad image is skipped
                try:
                    images.append(r.load(panel_side))
                except DataError as e:
                    log.skip(BadItem(r.file, "image_file", str(e), item=r.item, message=f"{e}; field 'image_file'"))
                    continue
                group.append(r)
                if len(group) == panels:
                    break
            if len(group) < panels:
                break  # the split ran out of records (the rest were bad images)
            grid, boxes = compose_grid(images, labels, panel_side)
            meta = make_meta(
                task_version=TASK.version,
                source_kind="docci",
                source=source_name,
                panels=panels,
                panel_side=panel_side,
                layout=list(grid_layout(panels)),
                panel_boxes=[list(b) for b in boxes],
                seed=seed,
                source_ids=[r.example_id for r in group],
                image_files=[r.image_file for r in group],
                docci_split=split,
            )
            rows.append(
                _row("+".join(r.example_id for r in group), grid, [r.description for r in group], text, meta)
            )
        out[split] = rows
    log.check()
    for split, rows in out.items():
        if not rows:
            raise DataError(f"{source_name}: split {split!r}: no group of {panels} usable examples "
                            f"({log.first_errors()})")
    return out


# --- build ------------------------------------------------------------------------------------
def build(
    source: str | Path | None,
    out_dir: str | Path,
    *,
    panels: int = 4,
    panel_side: int = 112,
    split_seed: int = 0,
    seed: int = 0,
    count: int | None = None,
    test_fraction: float = 0.2,
    source_kind: str = "synthetic",
    entangled: bool = False,
    layout: str = "grid",
    max_objects: int = MAX_OBJECTS,
    strict: bool = False,
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION,
) -> DatasetDict:
    """Build the multi-panel captioning DatasetDict (``train``/``test``) and save it atomically.

    Everything is built in memory first; ``out_dir`` is written (or replaced) only once the
    whole dataset exists, so on any error nothing is written.

    Args:
        source: the DOCCI directory or hub id (``source_kind="docci"``); ignored for synthetic.
        out_dir: where the DatasetDict is written.
        panels: K, panels per example (>= 1).
        panel_side: side of each panel in pixels (>= 24).
        split_seed: synthetic train/test split seed (unused for DOCCI: its own splits are kept).
        seed: scene sampling seed (synthetic) or grouping-shuffle seed (DOCCI).
        count: synthetic: number of examples (default 200, >= 2); DOCCI: at most this many
            examples per split (default all).
        test_fraction: synthetic: fraction of examples held out for test (0..1).
        source_kind: ``"synthetic"`` or ``"docci"``.
        entangled: synthetic only: the K panels share one scene, later captions relative.
        layout: synthetic only: ``"grid"`` (one grid image, panels numbered) or ``"images"`` (K separate
            ``panel_side`` images: a panel's pixels and image tokens do not change with K, the layout of
            the Tables' testbeds; EXPERIMENTS.md "Controlled inputs stay readable").
        max_objects: synthetic only: at most this many object groups per scene (1..4).
        strict: DOCCI: the first bad line or image raises its :class:`~segrl.tasks.build_log.BadItem`.
        max_skip_fraction: DOCCI: fail when more than this fraction of the lines is bad (0..1).

    Returns:
        The DatasetDict that was written (rows as in the module docstring, features ``FEATURES``).

    Raises:
        BadItem: DOCCI, under ``strict``: the first bad item (an unreadable jsonlines line, a
            missing or empty field, a duplicate id, an unknown split, a missing or unreadable
            image), naming ``<file>:<line>`` and the field.
        TooManySkipped: DOCCI: more than ``max_skip_fraction`` of the lines (hub: rows) are bad.
        DataError: ``panels`` < 1; DOCCI: missing directory or descriptions file, a split with
            fewer than K examples or without one group of K good ones, a hub id that cannot be
            loaded.
        ValueError: a bad option (unknown ``source_kind``, ``panel_side`` < 24, ``count`` < 2
            (synthetic) or < 1 (DOCCI), ``test_fraction`` outside [0, 1], ``entangled`` with DOCCI).
    """
    if isinstance(panels, bool) or not isinstance(panels, int) or panels < 1:
        raise DataError(f"option 'panels': need at least 1 panel per example, got {panels!r}")
    if source_kind not in SOURCE_KINDS:
        raise ValueError(f"source_kind must be one of {SOURCE_KINDS}, got {source_kind!r}")
    if panel_side < 24:
        raise ValueError(f"panel_side must be >= 24 pixels, got {panel_side}")
    if not 0.0 <= float(test_fraction) <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    unit = "line" if source_kind == "docci" and source is not None and Path(source).exists() else "example"
    log = BuildLog(TASK.name, strict=strict, max_skip_fraction=max_skip_fraction, unit=unit)
    if source_kind == "docci":
        if entangled:
            raise ValueError(
                "entangled=True needs source_kind='synthetic' (DOCCI panels are unrelated photos)"
            )
        if layout != "grid" or max_objects != MAX_OBJECTS:
            raise ValueError("layout / max_objects are options of source_kind='synthetic' (DOCCI photos keep the grid)")
        if count is not None and int(count) < 1:
            raise ValueError(f"count must be >= 1 or None, got {count}")
        splits = _docci_splits(source, panels, panel_side, seed, count, log)
    else:
        splits = _synthetic_splits(panels, panel_side, split_seed, seed, count, test_fraction, entangled,
                                   layout, max_objects)
        log.count(sum(len(rows) for rows in splits.values()))  # generated: nothing can be bad
    ds = DatasetDict({name: Dataset.from_list(rows, features=FEATURES) for name, rows in splits.items()})
    splits.clear()
    save_with_log(ds, out_dir, log, source_kind=source_kind, panels=panels)
    return ds


@dataclass(frozen=True)
class DocciOptions(BuildOptions):
    """``segrl build-data docci`` options (:func:`build`); ``size`` is the number of examples."""

    builder_names: ClassVar[dict[str, str]] = {"size": "count"}

    seed: int = field(default=0, metadata={"help": "Scene / grouping seed."})
    size: int | None = field(default=None, metadata={"help": "Examples (synthetic: total; docci: per split).",
                                                      "aliases": ("--count",)})
    test_fraction: float = field(default=0.2, metadata={"help": "Held-out fraction (synthetic)."})
    source_kind: str = field(default="synthetic", metadata={"help": "synthetic (offline, rendered scenes) or docci."})
    panels: int = field(default=4, metadata={"help": "K: panels per grid image (one segment each)."})
    panel_side: int = field(default=112, metadata={"help": "Side of one panel in pixels."})
    split_seed: int = field(default=0, metadata={"help": "Train/test split seed (synthetic)."})
    entangled: bool = field(default=False, metadata={
        "help": "Synthetic panels share a scene; captions refer to earlier panels.", "flag": "--entangled"})
    layout: str = field(default="grid", metadata={
        "help": "Synthetic: grid (one grid image) or images (K separate panel images, constant pixels per panel)."})
    max_objects: int = field(default=MAX_OBJECTS, metadata={"help": "Synthetic: object groups per scene, at most (1-4)."})


TASK = TaskSpec(
    name="docci",
    version=1,
    build=build,
    segment_reward="cider_d",
    eval_metrics=("cider_d", "bleu4", "meteor"),
    holistic_metrics=("cider_d",),
    description="Multi-panel dense captioning: K panels (synthetic scenes or DOCCI photos) in one grid "
    "image, one caption segment per numbered panel.",
    options=DocciOptions,
    source_help="DOCCI directory (docci_descriptions.jsonlines + images/) or the hub id google/docci; unused for "
    "--source-kind synthetic.",
)
