"""Multi-chart long-form QA from MultiChartQA: one example = one chart group, one segment per answer.

Source layout (MultiChartQA, Zhu et al., NAACL 2025; read in place, never copied)::

    <source>/data/<group>/chart-path_and_question-answer_pair.json   # or <source>/<group>/...
    <source>/data/<group>/<chart>.png ...

The JSON file is a list of questions, each a dict with (required) ``id`` (str), ``image``
(list of chart paths; Windows separators, only the file name is used, the file must be in the
group directory), ``question`` (str), ``answer`` (str), ``task`` (str, e.g.
``Parallel_Questions/Mixed``) and ``type`` (``"multiple-choice"`` or ``"open-ended"``);
``context`` and other keys are ignored.

Row (schema in :mod:`segrl.tasks.base`):

* ``id``: the group directory name; ``task``: ``"multichart"``.
* ``images``: the group's 2-3 charts (RGB PIL images, transparent pixels composited on white)
  in the order of the first question's ``image`` list.
* ``prompt``: one user message whose content is ``"Chart 1:"``, image, ``"Chart 2:"``, image,
  ..., then one text block: a line naming the charts ("the first chart" is Chart 1 ...), every
  question introduced by its label (``"Answer 3 question: ..."``), and
  :func:`~segrl.tasks.base.format_instruction` last. Every block is ``{"type", "text"}``
  (``text`` is None for images).
* ``segment_labels``: ``Answer 1`` ... ``Answer K``, K = the group's number of segments: one per
  question, except that a parallel question (``task`` starting with ``Parallel_Questions``)
  gives one segment per numbered sub-question, each with its own label in the prompt.
* ``segment_references``: ``[[answer]]`` per segment (a parallel answer split on ``;``).
* ``reference``: :func:`~segrl.tasks.segments.format_answer` of the labels and answers.
* ``meta`` (JSON): ``source`` (group dir relative to ``source``), ``task_version``,
  ``image_files``, ``question_ids`` / ``question_tasks`` (one per question),
  ``answer_types`` / ``segment_questions`` (one per segment: its type and the index of its
  question in ``question_ids``), ``n_images``, ``n_segments``, ``keep_notes``.

Prompt cleaning rules (upstream text is otherwise kept verbatim):

1. The preface "The first chart is <image>. The second chart is <image>. ... Question:" is
   removed; the number of ``<image>`` in it must equal the number of images, and no other
   ``<image>`` may remain.
2. Upstream answer-format notes are removed: "Note that your answer format should be as
   follows: Answer: ...", the "Now that you have got the answers ... Your answer format should
   be as follows:\\nAnswer: a; b" trailer, and "... give the final answer in the format of
   'Answer: [your final answer]'". When a *non-parallel* question's trailer asks for several
   values on one line ("Answer: a, b"), it is replaced by "Give the two answers on one line,
   in order, separated by ', '." (its single segment holds both values, as upstream).
3. A quoted example answer keeps its value and loses its upstream prefix:
   ``such as 'Answer: 2000'`` becomes ``such as '2000'``.
4. ``keep_notes=False`` drops every line that starts with "Note that", except the first line
   of a (sub-)question (in a few questions it defines the chart, "Note that the light blue bar
   represents ...") and lines saying how the final answer is computed ("... the final answer
   is the answer to the first question minus ...").
5. Double-encoded UTF-8 (``TÃ¼rkiye``, ``Î±``) is repaired in questions and answers, a stray
   ``Â`` before a space is dropped, and no-break spaces become spaces.

Answer types: a segment has its question's ``type``; a sub-question of a parallel question
(upstream types those ``open-ended`` as a whole) is ``multiple-choice`` when it lists options
(``A. ...`` lines).

Split: by group, deterministic for a seed: the (``limit``-truncated) sorted group names are
shuffled with ``random.Random(seed)``; the first ``round(test_fraction * n)`` go to ``test``
(at least 1 and at most n - 1), the rest to ``train``. Rows within a split are in sorted group
order. A build needs at least 2 groups (``datasets`` cannot save an empty split).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from datasets import Dataset, DatasetDict
from PIL import Image

from segrl.tasks.base import FEATURES, DataError, TaskSpec, format_instruction, make_meta, save_dataset_atomic
from segrl.tasks.segments import format_answer

GROUP_FILE = "chart-path_and_question-answer_pair.json"
"""Name of the per-group question file."""

REQUIRED_FIELDS = ("id", "image", "question", "answer", "task", "type")
ANSWER_TYPES = ("multiple-choice", "open-ended")
PARALLEL_PREFIX = "Parallel_Questions"

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}

# --- text repair -------------------------------------------------------------------------
# characters cp1252 maps to bytes 0x80-0x9f (the rest of 0x80-0xff is latin-1)
_CP1252_EXTRA = (
    "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018\u2019"
    "\u201a\u201c\u201d\u201e\u2020\u2021\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
_MOJIBAKE_RUN = re.compile(f"[\u0080-\u00ff{_CP1252_EXTRA}]{{2,}}")


def _cp1252_bytes(s: str) -> bytes | None:
    out = bytearray()
    for ch in s:
        try:
            out += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) < 256:  # the 5 bytes cp1252 leaves undefined decode to themselves in latin-1
                out.append(ord(ch))
            else:
                return None
    return bytes(out)


def _repair_run(m: re.Match) -> str:
    raw = _cp1252_bytes(m.group())
    if raw is None:
        return m.group()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return m.group()


def _fix_text(s: str) -> str:
    """Repair double-encoded UTF-8, drop a stray 'Â' before a space, normalise spaces/newlines."""
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _MOJIBAKE_RUN.sub(_repair_run, s)
    s = re.sub(r"\u00c2(?=[\s\u00a0]|$)", "", s)
    return s.replace("\u00a0", " ")


# --- question cleaning -------------------------------------------------------------------
_PREFACE = re.compile(
    r"^\s*((?:The\s+\w+\s+chart\s+is\s+<image>\s*[.,;]?\s*)+)Question\s*:[ \t]*", re.IGNORECASE
)
_FORMAT_NOTE = re.compile(
    r"^[ \t]*Note that:?\s*your answer format should (?:be )?as follows:?\s*Answer:[^\n]*$",
    re.IGNORECASE | re.MULTILINE,
)
_FORMAT_TRAILER = re.compile(
    r"^[ \t]*Now that you have got the answers? for the [^\n.]*?questions?\s*[.,]?\s*"
    r"Your answer format should (?:be )?as follows:?[ \t]*\n?[ \t]*Answer:([^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
_FORMAT_STEPS = re.compile(
    r"[ \t]*Note that you can have some intermediate calculation steps,? and finally give the final answer "
    r"in the format of '?Answer:\s*\[your final answer\]'?\.?",
    re.IGNORECASE,
)
_QUOTED_ANSWER = re.compile(r"(['\"])Answer:\s*")
_ITEM = re.compile(r"^[ \t]*(\d+)\.(?!\d)[ \t]*", re.MULTILINE)
_OPTION = re.compile(r"^[ \t]*[A-H][.)][ \t]+\S", re.MULTILINE)
_NOTE_LINE = re.compile(r"^\s*Note that\b", re.IGNORECASE)
_KEEP_NOTE = re.compile(r"the final answer is", re.IGNORECASE)


def _tidy(text: str) -> str:
    lines = [ln.strip() for ln in text.split("\n")]
    return "\n".join(ln for ln in lines if ln)


def _drop_notes(text: str) -> str:
    lines = text.split("\n")
    kept = lines[:1] + [ln for ln in lines[1:] if not _NOTE_LINE.match(ln) or _KEEP_NOTE.search(ln)]
    return "\n".join(kept)


@dataclass
class _Question:
    qid: str
    task: str
    type: str
    parts: list[str]  # prompt text per segment
    answers: list[str]  # reference per segment
    types: list[str] = field(default_factory=list)


def _where(path: Path, qid: object = None, fld: str | None = None) -> str:
    s = str(path)
    if qid is not None:
        s += f": question {qid!r}"
    if fld is not None:
        s += f": field {fld!r}"
    return s


def _parse_question(q: object, idx: int, path: Path, n_images: int, keep_notes: bool) -> _Question:
    if not isinstance(q, dict):
        raise DataError(f"{path}: question #{idx} is a {type(q).__name__}, expected an object")
    for f in REQUIRED_FIELDS:
        if f not in q or q[f] is None:
            raise DataError(f"{_where(path, q.get('id', f'#{idx}'), f)}: missing")
    qid = q["id"]
    if not isinstance(qid, str | int) or not str(qid).strip():
        raise DataError(f"{_where(path, f'#{idx}', 'id')}: expected a non-empty string, got {qid!r}")
    qid = str(qid)
    for f in ("question", "task", "type"):
        if not isinstance(q[f], str) or not q[f].strip():
            raise DataError(f"{_where(path, qid, f)}: expected a non-empty string, got {q[f]!r}")
    if q["type"] not in ANSWER_TYPES:
        raise DataError(f"{_where(path, qid, 'type')}: {q['type']!r} is not one of {ANSWER_TYPES}")
    answer = q["answer"]
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        raise DataError(f"{_where(path, qid, 'answer')}: expected a string, got {answer!r}")
    answer = " ".join(_fix_text(str(answer)).split())
    if not answer:
        raise DataError(f"{_where(path, qid, 'answer')}: empty answer")

    text = _fix_text(q["question"])
    m = _PREFACE.match(text)
    if m:
        n_pref = m.group(1).count("<image>")
        if n_pref != n_images:
            raise DataError(
                f"{_where(path, qid, 'question')}: the preface introduces {n_pref} charts "
                f"but the group has {n_images} images"
            )
        text = text[m.end() :]
    if "<image>" in text:
        raise DataError(
            f"{_where(path, qid, 'question')}: unexpected '<image>' placeholder in the question text"
        )

    parallel = q["task"].startswith(PARALLEL_PREFIX)
    multi_format: list[str] = []

    def _trailer(mt: re.Match) -> str:
        template = mt.group(1).strip()
        n = len([p for p in re.split(r"[;,\uff1b]", template) if p.strip()])
        if not parallel and n >= 2:
            sep = ";" if re.search(r"[;\uff1b]", template) else ","
            multi_format.append(
                f"Give the {_NUMBER_WORDS.get(n, str(n))} answers on one line, in order, "
                f"separated by '{sep} '."
            )
        return ""

    text = _FORMAT_NOTE.sub("", text)
    text = _FORMAT_TRAILER.sub(_trailer, text)
    text = _FORMAT_STEPS.sub("", text)
    text = _QUOTED_ANSWER.sub(r"\1", text)

    if not parallel:
        body = text if keep_notes else _drop_notes(_tidy(text))
        body = _tidy(body + ("\n" + "\n".join(multi_format) if multi_format else ""))
        if not body:
            raise DataError(
                f"{_where(path, qid, 'question')}: no question text left after removing the preface"
            )
        return _Question(qid, q["task"], q["type"], [body], [answer], [q["type"]])

    items = list(_ITEM.finditer(text))
    numbers = [int(it.group(1)) for it in items]
    if not items or numbers != list(range(1, len(items) + 1)):
        raise DataError(
            f"{_where(path, qid, 'question')}: a parallel question needs sub-questions numbered 1..n "
            f"at line starts, found {numbers}"
        )
    preamble = text[: items[0].start()].strip()
    subs = []
    for k, it in enumerate(items):
        end = items[k + 1].start() if k + 1 < len(items) else len(text)
        sub = _tidy(text[it.end() : end])
        if k == 0 and preamble:
            sub = _tidy(preamble + "\n" + sub)
        if not keep_notes:
            sub = _drop_notes(sub)
        if not sub:
            raise DataError(f"{_where(path, qid, 'question')}: sub-question {k + 1} is empty")
        subs.append(sub)
    answers = [a.strip() for a in re.split(r"[;\uff1b]", answer)]
    if len(answers) != len(subs):
        raise DataError(
            f"{_where(path, qid, 'answer')}: {len(answers)} sub-answers in {answer!r} "
            f"but {len(subs)} numbered sub-questions"
        )
    if any(not a for a in answers):
        raise DataError(f"{_where(path, qid, 'answer')}: empty sub-answer in {answer!r}")
    types = [
        "multiple-choice" if q["type"] == "multiple-choice" or len(_OPTION.findall(s)) >= 2 else q["type"]
        for s in subs
    ]
    return _Question(qid, q["task"], q["type"], subs, answers, types)


# --- groups --------------------------------------------------------------------------------
def _image_names(q: dict, path: Path, qid: str) -> list[str]:
    imgs = q.get("image")
    if not isinstance(imgs, list) or not imgs:
        raise DataError(
            f"{_where(path, qid, 'image')}: expected a non-empty list of image paths, got {imgs!r}"
        )
    names = []
    for p in imgs:
        name = PureWindowsPath(p).name if isinstance(p, str) else ""
        if name in ("", ".", ".."):
            raise DataError(f"{_where(path, qid, 'image')}: bad image path {p!r}")
        names.append(name)
    return names


def _load_image(path: Path, json_path: Path) -> Image.Image:
    """RGB copy of a chart, fully loaded; alpha is composited on white (a plain RGB convert
    would turn transparent pixels black)."""
    if not path.is_file():
        raise DataError(f"{path}: image file not found (listed in {json_path})")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                out = Image.new("RGB", rgba.size, (255, 255, 255))
                out.paste(rgba, mask=rgba.getchannel("A"))
            else:
                out = im.convert("RGB")
            out.load()
            return out
    except DataError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable image ({e})") from e


def _read_questions(json_path: Path) -> list:
    if not json_path.is_file():
        raise DataError(f"{json_path}: question file not found")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{json_path}: malformed JSON ({e})") from e
    if not isinstance(data, list):
        raise DataError(f"{json_path}: expected a list of questions, got {type(data).__name__}")
    if not data:
        raise DataError(f"{json_path}: the group has no questions")
    return data


def _build_row(group_dir: Path, source: Path, keep_notes: bool) -> dict:
    json_path = group_dir / GROUP_FILE
    raw = _read_questions(json_path)
    first = raw[0] if isinstance(raw[0], dict) else {}
    image_names = _image_names(first, json_path, str(first.get("id", "#0")))
    questions: list[_Question] = []
    seen: set[str] = set()
    for i, q in enumerate(raw):
        qid = str(q.get("id", f"#{i}")) if isinstance(q, dict) else f"#{i}"
        if isinstance(q, dict) and _image_names(q, json_path, qid) != image_names:
            raise DataError(
                f"{_where(json_path, qid, 'image')}: lists {_image_names(q, json_path, qid)} "
                f"but the group's first question lists {image_names}"
            )
        parsed = _parse_question(q, i, json_path, len(image_names), keep_notes)
        if parsed.qid in seen:
            raise DataError(f"{_where(json_path, parsed.qid, 'id')}: duplicate question id")
        seen.add(parsed.qid)
        questions.append(parsed)

    images = [_load_image(group_dir / name, json_path) for name in image_names]

    parts = [p for q in questions for p in q.parts]
    answers = [a for q in questions for a in q.answers]
    types = [t for q in questions for t in q.types]
    seg_q = [k for k, q in enumerate(questions) for _ in q.parts]
    labels = [f"Answer {k}" for k in range(1, len(parts) + 1)]

    n = len(images)
    if n <= len(_ORDINALS):
        names = [f"the {_ORDINALS[k]} chart is Chart {k + 1}" for k in range(n)]
        mapping = names[0] if n == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        intro = f"Answer the questions below about the {n} chart{'s' if n > 1 else ''} above ({mapping})."
    else:
        intro = f"Answer the questions below about the {n} charts above."
    blocks = []
    for label, part in zip(labels, parts):
        sep = "\n" if _ITEM.match(part) else " "
        blocks.append(f"{label} question:{sep}{part}")
    text = intro + "\n\n" + "\n\n".join(blocks) + "\n\n" + format_instruction(labels)

    content: list[dict] = []
    for k in range(n):
        content.append({"type": "text", "text": f"Chart {k + 1}:"})
        content.append({"type": "image", "text": None})
    content.append({"type": "text", "text": text})

    return {
        "id": group_dir.name,
        "task": TASK.name,
        "images": images,
        "prompt": [{"role": "user", "content": content}],
        "segment_labels": labels,
        "segment_references": [[a] for a in answers],
        "reference": format_answer(labels, answers),
        "meta": make_meta(
            source=group_dir.relative_to(source).as_posix(),
            task_version=TASK.version,
            image_files=image_names,
            question_ids=[q.qid for q in questions],
            question_tasks=[q.task for q in questions],
            answer_types=types,
            segment_questions=seg_q,
            n_images=n,
            n_segments=len(labels),
            keep_notes=keep_notes,
        ),
    }


def _group_dirs(source: Path) -> list[Path]:
    if not source.is_dir():
        raise DataError(f"{source}: source directory not found")
    root = source / "data" if (source / "data").is_dir() else source
    groups = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name
    )
    if not groups:
        raise DataError(f"{root}: no chart groups (expected sub-directories holding {GROUP_FILE})")
    return groups


def split_groups(names: list[str], seed: int, test_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic group split: ``(train, test)`` name lists, each in sorted order (rule in the module doc).

    With a single name everything goes to ``train``.
    """
    ordered = sorted(names)
    n = len(ordered)
    n_test = round(test_fraction * n)
    if n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    else:
        n_test = 0
    shuffled = list(ordered)
    random.Random(seed).shuffle(shuffled)
    test = set(shuffled[:n_test])
    return [g for g in ordered if g not in test], [g for g in ordered if g in test]


def build(
    source: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    limit: int | None = None,
    keep_notes: bool = True,
) -> DatasetDict:
    """Build the MultiChartQA DatasetDict (``train``/``test``) and save it atomically to ``out_dir``.

    Args:
        source: the MultiChartQA directory (holding ``data/<group>/``) or the ``data`` directory itself.
        out_dir: where the DatasetDict is written (replaced only once complete).
        seed: split seed.
        test_fraction: fraction of groups held out for ``test`` (0..1).
        limit: keep only the first ``limit`` groups in sorted name order (before splitting); >= 2.
        keep_notes: keep upstream "Note that ..." instructions (answer-format notes are always removed).

    Returns:
        The DatasetDict that was written (rows as in the module docstring, features ``FEATURES``).

    Raises:
        DataError: on bad input, naming the file (and question id / field): missing source or
            fewer than 2 groups, missing or malformed JSON, a group without questions, a missing or
            ill-typed field, image lists that differ between questions, a missing or unreadable
            image, a preface that does not match the images, parallel sub-questions not numbered
            1..n or whose count differs from the sub-answers. Nothing is written then.
        ValueError: on a bad option (``test_fraction`` outside [0, 1], ``limit`` < 2).
    """
    if not 0.0 <= float(test_fraction) <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    if limit is not None and int(limit) < 2:
        raise ValueError(f"limit must be >= 2 (one train and one test group) or None, got {limit}")
    src = Path(source).resolve()
    groups = _group_dirs(src)
    if len(groups) < 2:
        raise DataError(
            f"{groups[0].parent}: only one chart group ({groups[0].name}); need 2 to split train/test"
        )
    if limit is not None:
        groups = groups[: int(limit)]
    rows = {g.name: _build_row(g, src, keep_notes) for g in groups}
    train, test = split_groups(list(rows), seed, test_fraction)
    ds = DatasetDict(
        {
            "train": Dataset.from_list([rows[g] for g in train], features=FEATURES),
            "test": Dataset.from_list([rows[g] for g in test], features=FEATURES),
        }
    )
    rows.clear()
    save_dataset_atomic(ds, out_dir)
    return ds


TASK = TaskSpec(
    name="multichart",
    version=1,
    build=build,
    segment_reward="accuracy",
    eval_metrics=("accuracy",),
    description="MultiChartQA: 2-3 charts per group, all its questions answered in one response, "
    "one segment per (sub-)answer.",
)
