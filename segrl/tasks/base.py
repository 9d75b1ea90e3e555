"""What every task shares: its spec, the row schema, the answer-format instruction, atomic saving.

Row schema (one example, every task; see README "Data"):

| field                | type              | meaning                                              |
|----------------------|-------------------|------------------------------------------------------|
| ``id``               | str               | stable id from the source                            |
| ``task``             | str               | task registry name                                   |
| ``images``           | list[Image]       | the prompt's images, in prompt order                 |
| ``prompt``           | list[message]     | TRL conversational format with ``{"type": "image"}`` |
| ``segment_labels``   | list[str]         | labels the answer must use, in order                 |
| ``segment_references`` | list[list[str]] | one or more references per segment                   |
| ``reference``        | str               | the whole reference answer, canonical format         |
| ``meta``             | str (JSON)        | source path, layout, answer types, task version ...  |
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import PIL.Image
from datasets import DatasetDict, Features, Image, List, Value

ROW_FIELDS = ("id", "task", "images", "prompt", "segment_labels", "segment_references", "reference", "meta")

FEATURES = Features(
    {
        "id": Value("string"),
        "task": Value("string"),
        "images": List(Image()),
        "prompt": List(
            {
                "role": Value("string"),
                "content": List({"type": Value("string"), "text": Value("string")}),
            }
        ),
        "segment_labels": List(Value("string")),
        "segment_references": List(List(Value("string"))),
        "reference": Value("string"),
        "meta": Value("string"),
    }
)
"""Arrow features of a built dataset (``prompt`` content blocks carry ``text=None`` for images)."""


DEFAULT_MAX_SKIP_FRACTION = 0.05
"""Default ``max_skip_fraction`` of every builder (our choice: a few typos pass, a wrong source or
parser does not; see :mod:`segrl.tasks.build_log`)."""


class DataError(ValueError):
    """Bad task input. The message names the offending file and field."""


@dataclass(frozen=True)
class BuildOptions:
    """Options every task's builder takes; a task subclasses this with its own (frozen, typed).

    ``segrl build-data TASK`` derives one command line option per field (``--field-name``; the help
    is the field's ``help`` metadata; ``flag`` metadata overrides the option's spelling, e.g.
    ``"--look-to-confirm/--plain"``; ``aliases`` adds older spellings such as ``--limit``), and
    ``segrl validate`` builds a few examples through :meth:`TaskSpec.build_with`.

    Attributes:
        seed (int, defaults to 0): the task's seed (split, sampling or drawing: see the task).
        size (int or None, defaults to None): how many examples (or groups) to build; None = the
            task's default (all of the source, or the task's synthetic count).
        test_fraction (float, defaults to 0.2): fraction held out for ``test``, in [0, 1].
        strict (bool, defaults to False): raise on the first bad source item (else skip, count and
            list it in ``build_log.jsonl``, :mod:`segrl.tasks.build_log`).
        max_skip_fraction (float, defaults to 0.05): fail the build, before anything is written,
            when more than this fraction of the items is skipped.

    Class attributes:
        builder_names: option field -> the builder's keyword, where they differ (``size`` is
            ``limit`` for multichart).
        unused: shared fields the task has no use for (MMSci keeps its own splits): not passed to
            the builder, not offered on the command line, refused at a non-default value.
    """

    builder_names: ClassVar[dict[str, str]] = {}
    unused: ClassVar[tuple[str, ...]] = ()

    seed: int = field(default=0, metadata={"help": "Seed of the split and of any sampling."})
    size: int | None = field(default=None, metadata={"help": "Examples (or groups) to build; default: the task's."})
    test_fraction: float = field(default=0.2, metadata={"help": "Fraction held out for test, in [0, 1]."})
    strict: bool = field(default=False, metadata={
        "help": "Fail on the first bad source item instead of skipping it (see build_log.jsonl)."})
    max_skip_fraction: float = field(default=DEFAULT_MAX_SKIP_FRACTION, metadata={
        "help": "Fail the build when more than this fraction of the source items is skipped."})

    def __post_init__(self) -> None:
        defaults = {f.name: f.default for f in fields(BuildOptions)}
        used = [f"{name}={getattr(self, name)!r}" for name in self.unused if getattr(self, name) != defaults[name]]
        if used:
            raise ValueError(f"{type(self).__name__}: this task does not use {', '.join(used)}")

    @classmethod
    def option_fields(cls) -> list:
        """The dataclass fields the builder takes (every field but :attr:`unused`)."""
        return [f for f in fields(cls) if f.name not in cls.unused]

    def builder_kwargs(self) -> dict:
        """Keyword arguments of the task's ``build`` function."""
        return {self.builder_names.get(f.name, f.name): getattr(self, f.name) for f in self.option_fields()}


@dataclass(frozen=True)
class TaskSpec:
    """A task: how to build its data and how to score a segment; ``segrl build-data`` and
    ``segrl validate`` are derived from it.

    Attributes:
        name: registry name (``multichart``, ``docci``, ``mmsci`` ...).
        version: bumped whenever prompts, parsing or splits change; stored in every row's meta.
        build: ``build(source, out_dir, **options) -> DatasetDict``; writes ``out_dir`` atomically
            (the keywords: :meth:`BuildOptions.builder_kwargs`, and ``stats`` when :attr:`fills_stats`).
        segment_reward: name in ``segrl.rewards.SEGMENT_REWARDS`` of the per-segment reward.
        eval_metrics: names of per-segment metrics reported by ``segrl eval``.
        description: one line for ``segrl build-data --help``.
        holistic_metrics: names (of ``eval_metrics``) that ``segrl eval`` also scores on the whole
            answer against the whole ``reference`` (reported as ``<name>_holistic``).
        options: the task's :class:`BuildOptions` subclass.
        source: default ``--source`` of ``segrl build-data`` (None: the task needs none by default).
        source_help: help of ``--source``.
        report: ``report(dataset, out_dir, options, stats) -> lines`` printed after a build (counts
            the builder left in ``stats``); None: nothing beyond the split sizes.
        fills_stats: the builder takes a ``stats`` dict and fills it with counts.
    """

    name: str
    version: int
    build: Callable[..., DatasetDict]
    segment_reward: str
    eval_metrics: tuple[str, ...]
    description: str = ""
    holistic_metrics: tuple[str, ...] = ()
    options: type[BuildOptions] = BuildOptions
    source: str | None = None
    source_help: str = "Source data (see the task's module docstring)."
    report: Callable[..., list[str]] | None = None
    fills_stats: bool = False

    def build_with(self, source, out_dir, options: BuildOptions | None = None, stats: dict | None = None) -> DatasetDict:
        """Build with typed ``options`` (default: the task's defaults).

        Raises:
            TypeError: ``options`` is not this task's options class.
            DataError, ValueError: as the task's builder.
        """
        options = self.options() if options is None else options
        if not isinstance(options, self.options):
            raise TypeError(f"task {self.name!r} takes {self.options.__name__}, got {type(options).__name__}")
        kwargs = options.builder_kwargs()
        if stats is not None and self.fills_stats:
            kwargs["stats"] = stats
        return self.build(source, out_dir, **kwargs)


def format_instruction(labels: Sequence[str], unit: str = "question") -> str:
    """The answer-format sentence every prompt ends with (the parser's contract, stated to the model).

    Args:
        labels: the K segment labels, in order.
        unit: what one segment answers ("question", "panel", "sub-figure").
    """
    first, last = labels[0], labels[-1]
    if len(labels) == 1:
        return f"Answer on one line that starts with '{first}:'."
    return (
        f"Answer with one line per {unit}, from '{first}:' to '{last}:', "
        f"each line starting with its label and a colon, in this order: {', '.join(labels)}."
    )


def save_dataset_atomic(dataset: DatasetDict, out_dir: str | os.PathLike,
                        extra_files: dict[str, str] | None = None) -> Path:
    """Save ``dataset`` to ``out_dir`` through a temporary sibling directory and a rename.

    A crash mid-write leaves ``out_dir`` untouched (no partial dataset); an existing
    ``out_dir`` is replaced only once the new one is complete.

    Args:
        dataset: the DatasetDict. out_dir: the final directory.
        extra_files: ``{file name: UTF-8 text}`` written into the directory before the rename
            (e.g. ``build_log.jsonl``), so they appear together with the data or not at all.

    Returns:
        The final directory.
    """
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        dataset.save_to_disk(str(tmp / "data"))
        for name, text in (extra_files or {}).items():
            (tmp / "data" / name).write_text(text, encoding="utf-8")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        (tmp / "data").rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def downscale_images(dataset, max_side: int | None):
    """Shrink every image so its longer side is at most ``max_side`` pixels (aspect kept), in memory.

    A CPU speed-up for small policies: the processor would resize anyway, but decoding a
    large PNG on every step dominates a tiny model's step time. Returns ``dataset``
    unchanged when ``max_side`` is None. Nothing is written to the dataset's directory
    (``keep_in_memory``), so its fingerprint does not change.

    Args:
        dataset: a ``datasets.Dataset`` with an ``images`` column.
        max_side: the longest allowed side in pixels, or None.

    Raises:
        ValueError: ``max_side`` < 1.
    """
    if max_side is None:
        return dataset
    if max_side < 1:
        raise ValueError(f"max_image_side must be >= 1, got {max_side}")

    def shrink(row):
        out = []
        for im in row["images"]:
            im = im.convert("RGB")
            if max(im.size) > max_side:
                im.thumbnail((max_side, max_side))
            out.append(im)
        return {"images": out}

    return dataset.map(shrink, keep_in_memory=True, desc=f"downscale images to <= {max_side}px")


def make_meta(**fields) -> str:
    """Serialise a row's ``meta`` (sorted keys, so rows are byte-stable for a seed)."""
    return json.dumps(fields, sort_keys=True, ensure_ascii=False)


def png_value(image: PIL.Image.Image, compress_level: int = 6) -> dict:
    """``{"bytes": PNG, "path": None}``: what a ``datasets.Image`` column stores, so rows wait for
    ``Dataset.from_list`` as compact lossless bytes instead of decoded pixels.

    Args:
        image: any PIL image. compress_level: zlib level 0-9 (same pixels at every level).
    """
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return {"bytes": buf.getvalue(), "path": None}


def load_rgb_image(path: Path, where: str) -> PIL.Image.Image:
    """An image file as a fully loaded RGB image; alpha is composited on white (a plain RGB
    conversion would turn transparent pixels black).

    Args:
        path: the image file. where: where the source lists it, for the error message.

    Raises:
        DataError: the file is missing or unreadable (naming ``path`` and ``where``).
    """
    if not path.is_file():
        raise DataError(f"{path}: image file not found (listed at {where})")
    try:
        with PIL.Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                out = PIL.Image.new("RGB", rgba.size, (255, 255, 255))
                out.paste(rgba, mask=rgba.getchannel("A"))
            else:
                out = im.convert("RGB")
            out.load()
            return out
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable image ({e}; listed at {where})") from e
