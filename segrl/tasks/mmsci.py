"""Sub-figure captioning from MMSci: one example = one scientific figure, one segment per sub-figure.

Source layout (MMSci, Li et al., 2024, "MMSci: A Dataset for Graduate-Level Multi-Discipline
Multimodal Scientific Understanding"; the ``benchmark`` part of its release, read in place)::

    <source>/{train,dev,test}/image_caption_generation_data.json
    <source>/{train,dev,test}/images/<image>

``source`` is the ``benchmark`` directory or a directory holding it. Each JSON file is a list
of objects with (required, strings) ``uid`` (article id), ``category``, ``subject``,
``abstract``, ``content`` (the article text), ``image`` (file name under ``images/``) and
``caption``; other keys are ignored. Our ``train`` split is MMSci's ``train``; our ``test``
split is MMSci's ``dev`` by default (``eval_split``): MMSci's own ``test`` captions are
withheld in some releases, and an empty caption is skipped like any unusable one.

Splitting a caption (:func:`split_caption`). An MMSci caption is a figure title followed by
sub-captions introduced by their labels: ``"Angle-dependent MR of WTe2. (a) Sample #1 ...
(b) Sample #2 ..."``. Rules:

1. A *marker* is a parenthesised label at a boundary: at the start of the caption, or after
   ``. ; : ! ?`` (and optional blanks). Its body is a label (a letter) or a label list/range
   (``(a,b)``, ``(c-e)``, ``(a and b)``). The text before the first marker is the title.
2. The caption is split cleanly only if the markers are single lowercase letters ``a``, ``b``,
   ``c`` ... in order, each once, at least ``min_subfigures`` of them; each sub-caption (the
   text up to the next marker) is non-empty; and no sub-caption mentions, as ``(x)`` after a
   blank, a letter that is not one of the labels (that is a marker the rules could not place,
   e.g. ``"... at 3 K (c) Sample ..."`` with no full stop before ``(c)``, or an inline list
   ``(i) ... (ii)``). A reference to another label (``"as in (a)"``) is fine: captions that
   refer to each other are the point of this task.
3. Anything else raises :class:`UnsplittableCaption` with a reason; :func:`build` counts it,
   skips the figure and writes it to ``build_log.jsonl``. Sub-captions are never merged or
   guessed.

Sub-caption text: blanks collapsed to one space (each segment is one line), a colon right after
the label dropped.

Prompt settings (``setting``), after MMSci's ``run_captioning.py`` (``with_abstract`` /
``with_content``): ``ungrounded`` (the figure only), ``abstract`` (the article's abstract) and
``content`` (the article text). The context is cut at the last blank before
``max_context_chars`` characters and marked with `` ...`` (MMSci cuts at a token count; we
cut characters so that no tokenizer is needed to build the data).

Row (schema in :mod:`segrl.tasks.base`):

* ``id``: the image file name without its extension (MMSci names figures
  ``<uid>_figure_<n>.png``; unique over the whole build); ``task``: ``"mmsci"``.
* ``images``: ``[figure]``, RGB (transparent pixels composited on white), longer side cut to
  ``max_image_side`` when given.
* ``prompt``: one user message: ``{"type": "image", "text": None}`` then one text block:
  the context (``"Article abstract:\\n..."`` / ``"Article:\\n..."``) when grounded, the request
  for one caption per sub-figure, and :func:`format_instruction_mmsci` last.
* ``segment_labels``: ``(a)`` ... ; ``segment_references``: ``[[sub-caption]]`` per label;
  ``reference``: one line per sub-figure, ``"(a) <sub-caption>"`` (MMSci keeps its labels, the
  parser's colon is optional for parenthesised labels).
* ``meta`` (JSON): ``task_version``, ``setting``, ``source`` (``<split>/image_caption_generation_data.json``),
  ``mmsci_split``, ``index`` (position in that file), ``uid``, ``category``, ``subject``,
  ``image``, ``caption`` (the original), ``caption_title``, ``n_subfigures``,
  ``context_chars``, ``context_truncated``.

Bad items and the build log (the policy shared by every builder, :mod:`segrl.tasks.build_log`;
one item = one record): a record that cannot be parsed (not an object, a required field
missing or not a string, an empty or unsafe ``image`` name, a missing or unreadable image, an
id already used by an earlier figure) is skipped, counted and listed; a caption file that is
missing, not JSON or not a list is one skipped item. An unsplittable caption (rule 3) is a
well-formed record that this task's rules leave out: it is listed as *excluded*, never counted
as bad (many real figures have a single panel). ``<out>/build_log.jsonl``: the summary line
adds ``setting`` and ``splits`` (per split: records in the file, records examined (all, unless
``limit`` stopped early), kept, skipped = excluded by rule 3 or bad, skipped by reason); each
entry adds ``split``, ``index``, ``image`` and, for exclusions, ``detail``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from datasets import Dataset, DatasetDict

from segrl.segments import parse_segments
from segrl.tasks.base import (
    FEATURES,
    BuildOptions,
    DataError,
    TaskSpec,
    load_rgb_image,
    make_meta,
    png_value,
)
from segrl.tasks.build_log import (
    BUILD_LOG,  # noqa: F401  (re-exported: segrl.cli.build_data and older callers import it from here)
    DEFAULT_MAX_SKIP_FRACTION,
    BadItem,
    BuildLog,
    read_build_log,  # noqa: F401  (re-exported, as BUILD_LOG)
    save_with_log,
)

logger = logging.getLogger(__name__)

DATA_FILE = "image_caption_generation_data.json"
IMAGES_DIR = "images"
REQUIRED_FIELDS = ("uid", "category", "subject", "abstract", "content", "image", "caption")
SETTINGS = ("ungrounded", "abstract", "content")
EVAL_SPLITS = ("dev", "test")
DEFAULT_MAX_CONTEXT_CHARS = 4000  # ~1k tokens, MMSci's run_captioning.py default max_tokens = 1024

# A label body: one letter, or a list / range of letters ("a,b", "c-e", "a and b", "a & b").
_BODY = r"[A-Za-z](?:\s*(?:,|-|\u2013|\u2014|&|and|to)\s*[A-Za-z])*"
_MARKER = re.compile(r"(?:^|(?<=[.;:!?]))[ \t\r\n]*\((" + _BODY + r")\)")
_INLINE = re.compile(r"(?<!\S)\(([a-z])\)")


class UnsplittableCaption(ValueError):
    """A caption that cannot be split cleanly into sub-captions (module docstring, rule 2).

    Attributes:
        reason: a short stable category (``"no sub-figure labels"``, ``"labels out of sequence"`` ...).
        detail: the specifics (which labels, where).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class SubCaptions:
    """A caption split by :func:`split_caption`.

    Attributes:
        title: the text before the first label (may be empty), blanks collapsed.
        labels: ``["(a)", "(b)", ...]``.
        texts: one sub-caption per label, blanks collapsed, non-empty.
    """

    title: str
    labels: list[str]
    texts: list[str]


def _squash(text: str) -> str:
    return " ".join(text.split())


def split_caption(caption: str, min_subfigures: int = 2) -> SubCaptions:
    """Split an MMSci caption into its title and one sub-caption per label (module docstring).

    Args:
        caption: the figure's caption.
        min_subfigures: fewest labels for a clean split (>= 1).

    Returns:
        The :class:`SubCaptions`.

    Raises:
        UnsplittableCaption: with ``reason`` one of ``"empty caption"``, ``"no sub-figure labels"``,
            ``"too few sub-figure labels"``, ``"combined or uppercase label"``,
            ``"labels out of sequence"``, ``"empty sub-caption"``, ``"unplaced label"``.
        ValueError: ``min_subfigures`` < 1.
    """
    if min_subfigures < 1:
        raise ValueError(f"min_subfigures must be >= 1, got {min_subfigures}")
    if not isinstance(caption, str) or not caption.strip():
        raise UnsplittableCaption("empty caption")
    markers = list(_MARKER.finditer(caption))
    if not markers:
        raise UnsplittableCaption("no sub-figure labels", "no '(a)' at the start or after a full stop")
    bodies = [m.group(1) for m in markers]
    odd = [b for b in bodies if not re.fullmatch(r"[a-z]", b)]
    if odd:
        raise UnsplittableCaption("combined or uppercase label", ", ".join(f"({b})" for b in odd))
    expected = [chr(ord("a") + j) for j in range(len(bodies))]
    if bodies != expected:
        raise UnsplittableCaption(
            "labels out of sequence",
            f"found {', '.join(f'({b})' for b in bodies)}; expected (a), (b), ... each once",
        )
    texts = []
    for j, m in enumerate(markers):
        end = markers[j + 1].start() if j + 1 < len(markers) else len(caption)
        text = _squash(caption[m.end():end])
        if text.startswith(":"):
            text = text[1:].lstrip()
        if not text:
            raise UnsplittableCaption("empty sub-caption", f"({bodies[j]})")
        stray = sorted({x for x in _INLINE.findall(text) if x not in bodies})
        if stray:
            raise UnsplittableCaption(
                "unplaced label",
                f"({', '.join(stray)}) inside the text of ({bodies[j]}), not after a full stop",
            )
        texts.append(text)
    if len(bodies) < min_subfigures:
        raise UnsplittableCaption("too few sub-figure labels", f"{len(bodies)} < {min_subfigures}")
    title = _squash(caption[: markers[0].start()])
    return SubCaptions(title, [f"({b})" for b in bodies], texts)


def format_answer_mmsci(labels: Sequence[str], texts: Sequence[str]) -> str:
    """``"(a) text"`` lines, MMSci's own format (the parser's colon is optional for ``(x)`` labels).

    Raises:
        ValueError: the numbers of labels and texts differ.
    """
    if len(labels) != len(texts):
        raise ValueError(f"format_answer_mmsci: {len(labels)} labels but {len(texts)} texts")
    return "\n".join(f"{lab} {txt}" for lab, txt in zip(labels, texts))


def format_instruction_mmsci(labels: Sequence[str]) -> str:
    """The answer-format sentence of every MMSci prompt (the parser's contract, stated to the model)."""
    return (
        f"Answer with one line per sub-figure, from '{labels[0]}' to '{labels[-1]}', each line "
        f"starting with its label, in this order: {', '.join(labels)}."
    )


def truncate_context(text: str, max_chars: int) -> tuple[str, bool]:
    """``text`` with blanks collapsed, cut at the last blank before ``max_chars`` characters
    (then `` ...`` appended); returns ``(text, truncated)``.

    Raises:
        ValueError: ``max_chars`` < 1.
    """
    if max_chars < 1:
        raise ValueError(f"max_context_chars must be >= 1, got {max_chars}")
    text = _squash(text)
    if len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    if " " in cut and not text[max_chars].isspace():
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + " ...", True


def prompt_text(labels: Sequence[str], setting: str, context: str = "") -> str:
    """The text block of a prompt (module docstring).

    Raises:
        ValueError: unknown ``setting``.
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    k = len(labels)
    ask = (
        f"The figure above has {k} sub-figures, labelled {labels[0]} to {labels[-1]}. "
        "Write a detailed caption for every sub-figure"
    )
    if setting == "ungrounded":
        head = ""
        ask += "."
    else:
        head = ("Article abstract:\n" if setting == "abstract" else "Article:\n") + context + "\n\n"
        ask += ", based on the article."
    return f"{head}{ask}\n\n{format_instruction_mmsci(labels)}"


# --- reading ---------------------------------------------------------------------------------
def benchmark_dir(source: str | Path) -> Path:
    """The directory holding MMSci's split directories: ``source`` or ``source/benchmark``.

    Raises:
        DataError: neither holds ``train/image_caption_generation_data.json``.
    """
    src = Path(source)
    if not src.is_dir():
        raise DataError(f"{src}: MMSci directory not found")
    for cand in (src, src / "benchmark"):
        if (cand / "train" / DATA_FILE).is_file():
            return cand.resolve()
    raise DataError(
        f"{src}: no train/{DATA_FILE} here or under benchmark/ (expected MMSci's benchmark layout: "
        f"<split>/{DATA_FILE} and <split>/{IMAGES_DIR}/)"
    )


def read_records(path: Path) -> list:
    """The items of one ``image_caption_generation_data.json`` (each checked by :func:`check_record`).

    Raises:
        BadItem: (field None: the whole file) missing file, malformed JSON, not a list.
    """
    def bad(reason: str) -> BadItem:
        return BadItem(path, None, reason, message=f"{path}: {reason}")

    if not path.is_file():
        raise bad("MMSci caption file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad(f"malformed JSON ({e})") from e
    if not isinstance(data, list):
        raise bad(f"expected a list of records, got {type(data).__name__}")
    return data


def check_record(rec: object, path: Path, i: int) -> dict:
    """Record ``#i`` of ``path`` with every required field checked.

    Raises:
        BadItem: not an object, a required field missing or not a string, an empty or unsafe
            ``image`` (named ``<file>: record #i: field 'x'``).
    """
    def bad(fld: str | None, reason: str, message: str) -> BadItem:
        return BadItem(path, fld, reason, item=f"record #{i}", message=f"{path}: record #{i}: {message}")

    if not isinstance(rec, dict):
        raise bad(None, f"expected an object, got {type(rec).__name__}",
                  f"expected an object, got {type(rec).__name__}")
    for f in REQUIRED_FIELDS:
        if f not in rec:
            raise bad(f, "missing", f"field {f!r} missing")
        if not isinstance(rec[f], str):
            reason = f"expected a string, got {type(rec[f]).__name__}"
            raise bad(f, reason, f"field {f!r}: {reason}")
    if not rec["image"].strip():
        raise bad("image", "empty", "field 'image' is empty")
    image_rel = Path(rec["image"])
    if image_rel.is_absolute() or ".." in image_rel.parts:
        raise bad("image", f"bad file name {rec['image']!r}", f"field 'image': bad file name {rec['image']!r}")
    return rec


def _png(path: Path, where: str, max_side: int | None) -> dict:
    """The figure as ``{"bytes": PNG, "path": None}``: RGB, alpha composited on white, at most ``max_side``."""
    rgb = load_rgb_image(path, where)
    if max_side is not None and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side))
    return png_value(rgb)


def _split_rows(
    bench: Path, mmsci_split: str, our_split: str, *, setting: str, limit: int | None, max_context_chars: int,
    max_image_side: int | None, min_subfigures: int, log: BuildLog, seen: dict[str, str],
) -> tuple[list[dict], int, int, Counter]:
    """Rows of one MMSci split, the number of records in its file, how many were examined (fewer
    when ``limit`` stopped the scan) and the reasons of the records left out; bad and excluded
    records go to ``log`` (module docstring); ``seen`` maps the figure ids already used to their split."""
    json_path = bench / mmsci_split / DATA_FILE
    rel = f"{mmsci_split}/{DATA_FILE}"
    reasons: Counter = Counter()
    try:
        records = read_records(json_path)
    except BadItem as e:
        log.count()
        log.skip(e, split=our_split)
        reasons["unreadable file"] += 1
        return [], 0, 0, reasons
    rows, examined = [], 0
    for i, raw in enumerate(records):
        if limit is not None and len(rows) >= limit:
            break
        examined += 1
        log.count()
        try:
            rec = check_record(raw, json_path, i)
        except BadItem as e:
            image = raw.get("image") if isinstance(raw, dict) and isinstance(raw.get("image"), str) else None
            log.skip(e, split=our_split, index=i, image=image)
            reasons[f"bad field {e.field!r}" if e.field else "bad record"] += 1
            continue

        def exclude(reason: str, detail: str, fld: str = "caption") -> None:
            log.exclude(json_path, fld, reason, item=f"record #{i}", split=our_split, index=i, image=rec["image"],
                        detail=detail)
            reasons[reason] += 1

        try:
            sub = split_caption(rec["caption"], min_subfigures)
        except UnsplittableCaption as e:
            exclude(e.reason, e.detail)
            continue
        context, truncated = "", False
        if setting != "ungrounded":
            context, truncated = truncate_context(rec[setting], max_context_chars)
            if not context:
                exclude(f"empty {setting}", f"setting {setting!r}", setting)
                continue
        reference = format_answer_mmsci(sub.labels, sub.texts)
        if parse_segments(reference, sub.labels).texts != sub.texts:  # defensive: the parser's contract
            exclude("reference does not parse", reference[:80])
            continue
        image_rel = Path(rec["image"])
        where = f"{json_path}: record #{i}"
        try:
            if image_rel.stem in seen:
                raise BadItem(json_path, "image", f"duplicate figure id {image_rel.stem!r}", item=f"record #{i}",
                              message=f"{where}: field 'image': duplicate figure id {image_rel.stem!r} "
                              f"(already in {seen[image_rel.stem]})")
            image = _png(bench / mmsci_split / IMAGES_DIR / image_rel, where, max_image_side)
        except DataError as e:
            err = e if isinstance(e, BadItem) else BadItem(json_path, "image", str(e), item=f"record #{i}",
                                                           message=f"{e}; field 'image'")
            log.skip(err, split=our_split, index=i, image=rec["image"])
            reasons["bad field 'image'"] += 1
            continue
        seen[image_rel.stem] = our_split
        rows.append({
            "id": image_rel.stem,
            "task": TASK.name,
            "images": [image],
            "prompt": [{
                "role": "user",
                "content": [
                    {"type": "image", "text": None},
                    {"type": "text", "text": prompt_text(sub.labels, setting, context)},
                ],
            }],
            "segment_labels": sub.labels,
            "segment_references": [[t] for t in sub.texts],
            "reference": reference,
            "meta": make_meta(
                task_version=TASK.version, setting=setting, source=rel, mmsci_split=mmsci_split, index=i,
                uid=rec["uid"], category=rec["category"], subject=rec["subject"], image=rec["image"],
                caption=rec["caption"], caption_title=sub.title, n_subfigures=len(sub.labels),
                context_chars=len(context), context_truncated=truncated,
            ),
        })
    return rows, len(records), examined, reasons


def build(
    source: str | Path,
    out_dir: str | Path,
    *,
    setting: str = "abstract",
    eval_split: str = "dev",
    limit: int | None = None,
    max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
    max_image_side: int | None = None,
    min_subfigures: int = 2,
    strict: bool = False,
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION,
) -> DatasetDict:
    """Build the MMSci sub-figure captioning DatasetDict (``train``/``test``) and save it atomically.

    Everything is built in memory first; ``out_dir`` is written (or replaced) only once the
    whole dataset exists, so on any error nothing is written. Unsplittable captions are
    excluded, counted and logged (module docstring), never merged; bad records are skipped,
    counted and logged.

    Args:
        source: MMSci's ``benchmark`` directory (or a directory holding it).
        out_dir: where the DatasetDict (and ``build_log.jsonl``) is written.
        setting: ``ungrounded``, ``abstract`` or ``content`` (module docstring).
        eval_split: the MMSci split that becomes ``test``: ``dev`` (default) or ``test``.
        limit: keep at most this many examples per split (the first usable ones in file order).
        max_context_chars: abstract / article text cut to this many characters.
        max_image_side: shrink figures whose longer side exceeds this (pixels); None keeps them.
        min_subfigures: fewest sub-figure labels for a usable caption.
        strict: the first bad record raises its :class:`~segrl.tasks.build_log.BadItem`.
        max_skip_fraction: fail when more than this fraction of the records is bad (0..1).

    Returns:
        The DatasetDict that was written (rows as in the module docstring, features ``FEATURES``).

    Raises:
        BadItem: under ``strict``, the first bad record or file (a missing or malformed JSON
            file, a missing or ill-typed field, a missing or unreadable image, a bad image name,
            a duplicate id), naming the file, the record and the field.
        TooManySkipped: more than ``max_skip_fraction`` of the records are bad.
        DataError: no MMSci layout at ``source``; a split left with no usable example.
        ValueError: a bad option.
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    if eval_split not in EVAL_SPLITS:
        raise ValueError(f"eval_split must be one of {EVAL_SPLITS}, got {eval_split!r}")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    if max_image_side is not None and max_image_side < 1:
        raise ValueError(f"max_image_side must be >= 1 or None, got {max_image_side}")
    if min_subfigures < 1:
        raise ValueError(f"min_subfigures must be >= 1, got {min_subfigures}")
    if max_context_chars < 1:
        raise ValueError(f"max_context_chars must be >= 1, got {max_context_chars}")
    log = BuildLog(TASK.name, strict=strict, max_skip_fraction=max_skip_fraction, unit="record")
    bench = benchmark_dir(source)
    splits: dict[str, list[dict]] = {}
    summary: dict = {"task_version": TASK.version, "setting": setting, "splits": {}}
    seen: dict[str, str] = {}
    empty: list[str] = []
    for ours, theirs in (("train", "train"), ("test", eval_split)):
        rows, n, examined, reasons = _split_rows(
            bench, theirs, ours, setting=setting, limit=limit, max_context_chars=max_context_chars,
            max_image_side=max_image_side, min_subfigures=min_subfigures, log=log, seen=seen,
        )
        if not rows:
            empty.append(f"{bench / theirs / DATA_FILE}: no usable figure ({n} records; skipped: {dict(reasons) or 'none'})")
        splits[ours] = rows
        summary["splits"][ours] = {
            "mmsci_split": theirs, "records": n, "examined": examined, "kept": len(rows),
            "skipped": sum(reasons.values()),
            "skipped_by_reason": dict(sorted(reasons.items())),
        }
    log.check()
    if empty:
        raise DataError(empty[0])
    for e in log.entries:
        logger.info("mmsci: %s %s %s (%s): %s", e.kind, e.extra.get("split"), e.item, e.extra.get("image"), e.reason)
    ds = DatasetDict({name: Dataset.from_list(rows, features=FEATURES) for name, rows in splits.items()})
    splits.clear()
    save_with_log(ds, out_dir, log, **summary)
    return ds


@dataclass(frozen=True)
class MMSciOptions(BuildOptions):
    """``segrl build-data mmsci`` options (:func:`build`); MMSci keeps its own splits, so ``seed`` and
    ``test_fraction`` do not apply (refused when set); ``size`` is the most figures per split."""

    builder_names: ClassVar[dict[str, str]] = {"size": "limit"}
    unused: ClassVar[tuple[str, ...]] = ("seed", "test_fraction")

    size: int | None = field(default=None, metadata={"help": "Keep at most N usable figures per split.",
                                                      "aliases": ("--limit",)})
    setting: str = field(default="abstract", metadata={"help": "Prompt context: ungrounded, abstract or content."})
    eval_split: str = field(default="dev", metadata={"help": "MMSci split used as our test split: dev or test."})
    max_context_chars: int = field(default=DEFAULT_MAX_CONTEXT_CHARS, metadata={
        "help": "Cut the abstract / article text to this many characters."})
    max_image_side: int | None = field(default=None, metadata={"help": "Shrink figures to this longer side (pixels)."})
    min_subfigures: int = field(default=2, metadata={"help": "Fewest sub-figure labels for a usable caption."})


def report(ds, out, options: MMSciOptions, stats: dict) -> list[str]:
    """Per split: records read, kept and skipped by reason (from the build log)."""
    summary, _ = read_build_log(out)
    lines = []
    for split, s in summary["splits"].items():
        reasons = ", ".join(f"{k}: {v}" for k, v in s["skipped_by_reason"].items()) or "none"
        lines.append(f"{split} (MMSci {s['mmsci_split']}): {s['records']} records, {s['kept']} kept, "
                     f"{s['skipped']} skipped ({reasons})")
    return [*lines, f"skipped figures listed in {Path(out) / BUILD_LOG}"]


TASK = TaskSpec(
    name="mmsci",
    version=1,
    build=build,
    segment_reward="cider_d",
    eval_metrics=("bleu1", "bleu2", "bleu3", "bleu4", "cider_d", "meteor", "rouge_l", "bertscore"),
    description="MMSci sub-figure captioning: one scientific figure per example, one caption segment "
    "per sub-figure label (a), (b), ...; ungrounded, abstract- or content-grounded prompts.",
    holistic_metrics=("bleu1", "bleu2", "bleu3", "bleu4", "cider_d", "meteor", "rouge_l", "bertscore"),
    options=MMSciOptions,
    source="data/raw/mmsci/benchmark",
    source_help="MMSci's benchmark directory (<split>/image_caption_generation_data.json + <split>/images/), or its "
    "parent.",
    report=report,
)
