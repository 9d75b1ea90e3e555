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
* ``reference``: :func:`~segrl.segments.format_answer` of the labels and answers.
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

Long form (``questions_per_answer=K``, ``segrl build-data multichart --questions-per-answer K``):
one example asks exactly K questions about one chart group and expects K segments
``Answer 1`` ... ``Answer K`` (the paper's second setting; credit misattribution is measured
against K). A group's segments are its questions with parallel questions expanded into their
sub-questions (a sub-answer counts as a question; MultiChartQA's sub-questions each name their
chart, and none of the sample's 187 parallel questions has text before its item 1, so a
sub-question stands alone when its siblings go to another example). Per group, with n segments:

* ``n % K`` segments, drawn by ``random.Random(f"{seed}:{group}")``, are left out and the other
  segments are cut, in their original order, into ``n // K`` examples (:func:`long_form_chunks`);
  drawing them at random keeps the question categories balanced (MultiChartQA orders each group
  direct, parallel, comparative, sequential; always dropping the tail would drop the hardest).
* A group with fewer than K segments is **skipped and counted** (``stats["groups_skipped"]``,
  printed by the CLI), never turned into a shorter example: K must be exact in every row,
  because the measurement is misattribution and accuracy *against K* (a row of fewer segments
  would be a smaller K in the K column). The shipped sample has 4-7 segments per group, so it
  has no K = 8 example at all; such a build raises :class:`DataError` saying so.
* Every image of the group is shown (a question may refer to any chart); the prompt is built
  as above from the chosen segments only. Row ids are ``<group>-k<K>-<j>`` (j = 1, 2, ...).
* The split is made on groups *before* chunking, so the held-out groups are the same for every
  K. ``meta`` adds ``group``, ``questions_per_answer``, ``group_segments`` (indices of the row's
  segments among the group's) and ``group_n_segments``; ``question_ids`` / ``question_tasks``
  list only the questions the row asks, and ``segment_questions`` indexes that list.

Without ``questions_per_answer`` the rows are exactly those of task version 1 (one row per group
with all its segments), so the version is unchanged.

Bad items (the policy shared by every builder, :mod:`segrl.tasks.build_log`; one item = one
question): a question that cannot be parsed (a missing or ill-typed field, a preface that does
not match the images, an image list that differs from the one most of the group's questions
give, a duplicate id, sub-questions that cannot be matched to the answer's parts) is skipped
alone; a group file that is missing, not JSON, not a list or empty is one skipped item; a
missing or unreadable chart skips the group's questions. Each is listed in
``build_log.jsonl`` with file, question, field and reason. One repair: a parallel question
whose sub-question numbers are out of sequence (``1., 2., 2.``) while their count equals the
answer's ``;``-separated parts is kept, its sub-questions taken in order (the numbers are
not part of the prompt), and the repair is logged. The split is drawn on every group
directory, bad ones included, so a skipped group moves no other group between train and test.
In long form, a group with fewer than K segments is logged as *excluded* (by the rule above,
not a bad item).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import ClassVar

from datasets import Dataset, DatasetDict

from segrl.segments import format_answer
from segrl.tasks.base import (
    FEATURES,
    BuildOptions,
    DataError,
    TaskSpec,
    format_instruction,
    load_rgb_image,
    make_meta,
    png_value,
)
from segrl.tasks.build_log import DEFAULT_MAX_SKIP_FRACTION, BadItem, BuildLog, save_with_log

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


def _bad(path: Path, qid: object, fld: str | None, reason: str) -> BadItem:
    """The :class:`BadItem` of question ``qid``'s field ``fld`` (message: ``<file>: question 'id': field 'f': reason``)."""
    return BadItem(path, fld, reason, item=None if qid is None else f"question {qid!r}",
                   message=f"{_where(path, qid, fld)}: {reason}")


def _parse_question(q: object, idx: int, path: Path, n_images: int, keep_notes: bool,
                    log: BuildLog | None = None) -> _Question:
    """One question of a group file as its segments.

    Raises:
        BadItem: the question cannot be parsed (module docstring); the message names the file,
            the question id and the field. Sub-questions numbered out of sequence whose count
            equals the answer's parts are repaired instead (renumbered 1..n in order) and the
            repair is recorded in ``log``.
    """
    if not isinstance(q, dict):
        raise BadItem(path, None, f"is a {type(q).__name__}, expected an object", item=f"question #{idx}",
                      message=f"{path}: question #{idx} is a {type(q).__name__}, expected an object")
    for f in REQUIRED_FIELDS:
        if f not in q or q[f] is None:
            raise _bad(path, q.get("id", f"#{idx}"), f, "missing")
    qid = q["id"]
    if not isinstance(qid, str | int) or not str(qid).strip():
        raise _bad(path, f"#{idx}", "id", f"expected a non-empty string, got {qid!r}")
    qid = str(qid)
    for f in ("question", "task", "type"):
        if not isinstance(q[f], str) or not q[f].strip():
            raise _bad(path, qid, f, f"expected a non-empty string, got {q[f]!r}")
    if q["type"] not in ANSWER_TYPES:
        raise _bad(path, qid, "type", f"{q['type']!r} is not one of {ANSWER_TYPES}")
    answer = q["answer"]
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        raise _bad(path, qid, "answer", f"expected a string, got {answer!r}")
    answer = " ".join(_fix_text(str(answer)).split())
    if not answer:
        raise _bad(path, qid, "answer", "empty answer")

    text = _fix_text(q["question"])
    m = _PREFACE.match(text)
    if m:
        n_pref = m.group(1).count("<image>")
        if n_pref != n_images:
            raise _bad(path, qid, "question",
                       f"the preface introduces {n_pref} charts but the group has {n_images} images")
        text = text[m.end() :]
    if "<image>" in text:
        raise _bad(path, qid, "question", "unexpected '<image>' placeholder in the question text")

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
            raise _bad(path, qid, "question", "no question text left after removing the preface")
        return _Question(qid, q["task"], q["type"], [body], [answer], [q["type"]])

    items = list(_ITEM.finditer(text))
    numbers = [int(it.group(1)) for it in items]
    answers = [a.strip() for a in re.split(r"[;\uff1b]", answer)]
    if not items or numbers != list(range(1, len(items) + 1)):
        if not items or len(items) != len(answers):
            raise _bad(path, qid, "question",
                       f"a parallel question needs sub-questions numbered 1..n at line starts, found {numbers} "
                       f"(and {len(answers)} sub-answers, so the numbering cannot be repaired)")
        if log is not None:  # the count matches the answer's parts: the numbers are a typo
            log.repair(path, "question", f"sub-questions numbered {numbers}; renumbered 1..{len(items)} in order "
                       f"(the answer has {len(answers)} parts)", item=f"question {qid!r}")
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
            raise _bad(path, qid, "question", f"sub-question {k + 1} is empty")
        subs.append(sub)
    if len(answers) != len(subs):
        raise _bad(path, qid, "answer", f"{len(answers)} sub-answers in {answer!r} "
                   f"but {len(subs)} numbered sub-questions")
    if any(not a for a in answers):
        raise _bad(path, qid, "answer", f"empty sub-answer in {answer!r}")
    types = [
        "multiple-choice" if q["type"] == "multiple-choice" or len(_OPTION.findall(s)) >= 2 else q["type"]
        for s in subs
    ]
    return _Question(qid, q["task"], q["type"], subs, answers, types)


# --- groups --------------------------------------------------------------------------------
def _image_names(q: dict, path: Path, qid: str) -> list[str]:
    imgs = q.get("image")
    if not isinstance(imgs, list) or not imgs:
        raise _bad(path, qid, "image", f"expected a non-empty list of image paths, got {imgs!r}")
    names = []
    for p in imgs:
        name = PureWindowsPath(p).name if isinstance(p, str) else ""
        if name in ("", ".", ".."):
            raise _bad(path, qid, "image", f"bad image path {p!r}")
        names.append(name)
    return names


def _read_questions(json_path: Path) -> list:
    """The group file's list of questions.

    Raises:
        BadItem: (field None: the whole file) missing, not UTF-8 JSON, not a list, or empty.
    """
    def bad(reason: str) -> BadItem:
        return BadItem(json_path, None, reason, message=f"{json_path}: {reason}")

    if not json_path.is_file():
        raise bad("question file not found")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad(f"malformed JSON ({e})") from e
    if not isinstance(data, list):
        raise bad(f"expected a list of questions, got {type(data).__name__}")
    if not data:
        raise bad("the group has no questions")
    return data


@dataclass
class _Group:
    """One parsed chart group: its directory, chart files and images, and questions in file order."""

    dir: Path
    image_names: list[str]
    images: list  # PIL images (or, once encoded, ``datasets`` Image dicts ``{"path", "bytes"}``)
    questions: list[_Question]

    def segments(self) -> list[tuple[int, str, str, str]]:
        """The group's segments in order: ``(question index, prompt text, answer, answer type)``."""
        return [
            (qi, part, answer, typ)
            for qi, q in enumerate(self.questions)
            for part, answer, typ in zip(q.parts, q.answers, q.types)
        ]


def _read_group(group_dir: Path, keep_notes: bool, log: BuildLog) -> _Group | None:
    """One chart group with its good questions, or None when nothing of it is usable.

    Bad input is handed to ``log`` (module docstring, "Bad items"): an unreadable group file is
    one skipped item; a bad question is skipped alone; a question whose image list differs from
    the one most questions give (ties: the first) is skipped; a missing or unreadable chart skips
    the group's good questions with it.

    Raises:
        BadItem: under ``log.strict``, the first bad item.
    """
    json_path = group_dir / GROUP_FILE
    try:
        raw = _read_questions(json_path)
    except BadItem as e:
        log.count()
        log.skip(e)
        return None
    log.count(len(raw))
    lists: dict[int, list[str]] = {}  # question index -> its image names (when readable)
    for i, q in enumerate(raw):
        if isinstance(q, dict):
            try:
                lists[i] = _image_names(q, json_path, str(q.get("id", f"#{i}")))
            except BadItem:
                pass  # skipped below, with the question
    image_names = list(Counter(tuple(v) for v in lists.values()).most_common(1)[0][0]) if lists else None
    questions: list[_Question] = []
    seen: set[str] = set()
    for i, q in enumerate(raw):
        try:
            qid = str(q.get("id", f"#{i}")) if isinstance(q, dict) else f"#{i}"
            if isinstance(q, dict):
                names = lists.get(i) or _image_names(q, json_path, qid)
                if names != image_names:
                    raise _bad(json_path, qid, "image",
                               f"lists {names} but the group's other questions list {image_names}")
            parsed = _parse_question(q, i, json_path, len(image_names or ()), keep_notes, log)
            if parsed.qid in seen:
                raise _bad(json_path, parsed.qid, "id", "duplicate question id")
        except BadItem as e:
            log.skip(e)
            continue
        seen.add(parsed.qid)
        questions.append(parsed)
    if not questions:
        return None
    try:
        images = [load_rgb_image(group_dir / name, str(json_path)) for name in image_names]
    except DataError as e:
        log.skip(BadItem(json_path, "image", str(e), item=f"group {group_dir.name!r}",
                         message=f"{e} (field 'image'; group {group_dir.name!r}: its {len(questions)} "
                         f"questions skipped)"), n=len(questions))
        return None
    return _Group(group_dir, image_names, images, questions)


def chart_prompt(n_charts: int, labels: list[str], parts: list[str]) -> list[dict]:
    """The user message of a chart-group example (shared with :mod:`segrl.tasks.chartgen`).

    Content: ``"Chart 1:"``, image, ..., ``"Chart n:"``, image, then one text block: the line
    naming the charts, one ``"<label> question: <part>"`` block per segment, and
    :func:`~segrl.tasks.base.format_instruction` of ``labels``.

    Args:
        n_charts: number of images (>= 1).
        labels: the K segment labels. parts: the K question texts, in label order.

    Returns:
        ``[{"role": "user", "content": [...]}]`` (TRL conversational format).
    """
    n = n_charts
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
    return [{"role": "user", "content": content}]


def _make_row(group: _Group, source: Path, keep_notes: bool, picked: list[int] | None = None,
              row_id: str | None = None, questions_per_answer: int | None = None) -> dict:
    """A row of ``group``: every segment (``picked`` None, the whole-group row), or the segments
    at the indices ``picked`` of :meth:`_Group.segments` (a long-form row of K segments)."""
    segments = group.segments()
    chosen = segments if picked is None else [segments[i] for i in picked]
    q_used = sorted({qi for qi, *_ in chosen})  # the questions this row asks (some of their parts)
    labels = [f"Answer {k}" for k in range(1, len(chosen) + 1)]
    answers = [a for _, _, a, _ in chosen]
    meta = dict(
        source=group.dir.relative_to(source).as_posix(),
        task_version=TASK.version,
        image_files=group.image_names,
        question_ids=[group.questions[i].qid for i in q_used],
        question_tasks=[group.questions[i].task for i in q_used],
        answer_types=[t for *_, t in chosen],
        segment_questions=[q_used.index(qi) for qi, *_ in chosen],
        n_images=len(group.images),
        n_segments=len(labels),
        keep_notes=keep_notes,
    )
    if picked is not None:
        meta.update(group=group.dir.name, questions_per_answer=questions_per_answer,
                    group_segments=list(picked), group_n_segments=len(segments))
    return {
        "id": row_id or group.dir.name,
        "task": TASK.name,
        "images": group.images,
        "prompt": chart_prompt(len(group.images), labels, [p for _, p, _, _ in chosen]),
        "segment_labels": labels,
        "segment_references": [[a] for a in answers],
        "reference": format_answer(labels, answers),
        "meta": make_meta(**meta),
    }


def long_form_chunks(n_segments: int, k: int, rng: random.Random) -> list[list[int]]:
    """Split a group's ``n_segments`` segments into examples of exactly ``k`` segments.

    ``n_segments % k`` segments, drawn with ``rng`` (so no question position is dropped more
    often than another), are left out; the rest are cut, in their original order, into
    ``n_segments // k`` consecutive chunks. A group with fewer than ``k`` segments gives no
    example (``[]``): K is exact in every row, never "up to K".

    Args:
        n_segments: the group's number of (sub-)questions. k: segments per example (>= 1).
        rng: the group's own random stream (seeded by split seed and group name).

    Returns:
        Lists of segment indices (each sorted, each of length ``k``), in order.

    Raises:
        ValueError: ``k`` < 1 or ``n_segments`` < 0.
    """
    if k < 1 or n_segments < 0:
        raise ValueError(f"need k >= 1 and n_segments >= 0, got k={k}, n_segments={n_segments}")
    if n_segments < k:
        return []
    dropped = set(rng.sample(range(n_segments), n_segments % k))
    kept = [i for i in range(n_segments) if i not in dropped]
    return [kept[j : j + k] for j in range(0, len(kept), k)]


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
    questions_per_answer: int | None = None,
    stats: dict | None = None,
    strict: bool = False,
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION,
) -> DatasetDict:
    """Build the MultiChartQA DatasetDict (``train``/``test``) and save it atomically to ``out_dir``.

    Args:
        source: the MultiChartQA directory (holding ``data/<group>/``) or the ``data`` directory itself.
        out_dir: where the DatasetDict is written (replaced only once complete).
        seed: split seed (and the seed of the segments a long-form build leaves out).
        test_fraction: fraction of groups held out for ``test`` (0..1).
        limit: keep only the first ``limit`` groups in sorted name order (before splitting); >= 2.
        keep_notes: keep upstream "Note that ..." instructions (answer-format notes are always removed).
        questions_per_answer: K. None (default): one row per group with all its segments. An
            integer >= 1: long-form rows of exactly K segments each (module docstring, "Long form");
            groups with fewer than K segments are skipped and counted.
        stats: if given, filled with counts: ``groups``, ``examples``, ``segments`` (per split and
            in all), and for a long-form build ``groups_skipped`` (fewer than K segments) and
            ``segments_left_out`` (the ``n % K`` remainders).
        strict: the first bad item raises its :class:`~segrl.tasks.build_log.BadItem` instead
            of being skipped (module docstring, "Bad items").
        max_skip_fraction: fail when more than this fraction of the questions is bad (0..1).

    Returns:
        The DatasetDict that was written (rows as in the module docstring, features ``FEATURES``),
        with ``build_log.jsonl`` beside it.

    Raises:
        BadItem: under ``strict``, the first bad item (a missing or malformed group file, a
            group without questions, a missing or ill-typed field, an image list that differs from
            the group's, a missing or unreadable image, a preface that does not match the images,
            parallel sub-questions not numbered 1..n whose count differs from the sub-answers),
            naming the file, the question id and the field.
        TooManySkipped: more than ``max_skip_fraction`` of the questions are bad.
        DataError: a missing source, fewer than 2 groups, a split left without any example
            (every group of it bad, or in long form none with K segments). Nothing is written then.
        ValueError: on a bad option (``test_fraction`` outside [0, 1], ``limit`` < 2,
            ``questions_per_answer`` < 1, ``max_skip_fraction`` outside [0, 1]).
    """
    if not 0.0 <= float(test_fraction) <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    if limit is not None and int(limit) < 2:
        raise ValueError(f"limit must be >= 2 (one train and one test group) or None, got {limit}")
    if questions_per_answer is not None and int(questions_per_answer) < 1:
        raise ValueError(f"questions_per_answer must be >= 1 or None, got {questions_per_answer}")
    log = BuildLog(TASK.name, strict=strict, max_skip_fraction=max_skip_fraction, unit="question")
    src = Path(source).resolve()
    dirs = _group_dirs(src)
    if len(dirs) < 2:
        raise DataError(
            f"{dirs[0].parent}: only one chart group ({dirs[0].name}); need 2 to split train/test"
        )
    if limit is not None:
        dirs = dirs[: int(limit)]
    read = {d.name: _read_group(d, keep_notes, log) for d in dirs}
    log.check()
    groups = {name: g for name, g in read.items() if g is not None}
    # split on every group directory, bad ones included: a skipped group moves no other group
    train, test = split_groups(list(read), seed, test_fraction)  # by group, the same for every K
    K = None if questions_per_answer is None else int(questions_per_answer)
    counts: dict = {"groups": len(groups), "groups_bad": len(read) - len(groups), "groups_skipped": 0,
                    "segments_left_out": 0}
    splits: dict[str, list[dict]] = {}
    for split, all_names in (("train", train), ("test", test)):
        names = [n for n in all_names if n in groups]
        if not names:
            raise DataError(f"{src}: no {split} example: all {len(all_names)} {split} groups are bad "
                            f"({log.first_errors()})")
        rows: list[dict] = []
        for name in names:
            g = groups[name]
            if K is None:
                rows.append(_make_row(g, src, keep_notes))
                continue
            n = len(g.segments())
            chunks = long_form_chunks(n, K, random.Random(f"{seed}:{name}"))
            if not chunks:
                log.exclude(g.dir / GROUP_FILE, None, f"{n} (sub-)questions, fewer than K={K}",
                            item=f"group {name!r}", n=len(g.questions))
            counts["groups_skipped"] += not chunks
            counts["segments_left_out"] += n - K * len(chunks)
            if len(chunks) > 1:  # encode the group's charts once, not once per row (PNG encoding dominates)
                g.images = [png_value(im, compress_level=1) for im in g.images]
            for j, picked in enumerate(chunks, 1):
                rows.append(_make_row(g, src, keep_notes, picked, f"{name}-k{K}-{j}", K))
        if not rows:
            most = max(len(g.segments()) for g in groups.values())
            raise DataError(
                f"{src}: no {split} example at --questions-per-answer {K}: none of its {len(names)} "
                f"{split} groups has {K} (sub-)questions (the most in any group is {most})"
            )
        splits[split] = rows
        counts[f"{split}_examples"] = len(rows)
        counts[f"{split}_segments"] = sum(len(r["segment_labels"]) for r in rows)
    counts["examples"] = counts["train_examples"] + counts["test_examples"]
    counts["segments"] = counts["train_segments"] + counts["test_segments"]
    if K is None:
        del counts["groups_skipped"], counts["segments_left_out"]
    ds = DatasetDict({s: Dataset.from_list(rows, features=FEATURES) for s, rows in splits.items()})
    splits.clear()
    groups.clear()
    save_with_log(ds, out_dir, log, counts=counts, options={
        "seed": seed, "test_fraction": test_fraction, "limit": limit, "keep_notes": keep_notes,
        "questions_per_answer": questions_per_answer})
    if stats is not None:
        stats.update(counts)
    return ds


@dataclass(frozen=True)
class MultichartOptions(BuildOptions):
    """``segrl build-data multichart`` options (:func:`build`); ``size`` keeps the first N groups."""

    builder_names: ClassVar[dict[str, str]] = {"size": "limit"}

    seed: int = field(default=0, metadata={"help": "Split seed."})
    size: int | None = field(default=None, metadata={"help": "Keep only the first N groups (sorted by name).",
                                                      "aliases": ("--limit",)})
    test_fraction: float = field(default=0.2, metadata={"help": "Fraction of chart groups held out for test."})
    keep_notes: bool = field(default=True, metadata={"help": "Keep MultiChartQA's 'Note that ...' instructions in prompts."})
    questions_per_answer: int | None = field(default=None, metadata={
        "help": "K: long-form examples of exactly K (sub-)questions of one chart group; groups with fewer are "
        "skipped and counted. Default: one example per group with all its questions."})


def report(ds, out, options: MultichartOptions, stats: dict) -> list[str]:
    """The long-form counts of a build (``segrl build-data`` prints them)."""
    if options.questions_per_answer is None:
        return []
    return [f"K={options.questions_per_answer}: {stats['groups']} groups, {stats['groups_skipped']} skipped "
            f"(fewer than K questions), {stats['segments_left_out']} questions left out (n mod K)"]


TASK = TaskSpec(
    name="multichart",
    version=1,
    build=build,
    segment_reward="accuracy",
    eval_metrics=("accuracy",),
    description="MultiChartQA: 2-3 charts per group, all its questions answered in one response, "
    "one segment per (sub-)answer.",
    options=MultichartOptions,
    source="../shared/data/multichartqa",
    source_help="MultiChartQA directory (data/<group>/...).",
    report=report,
    fills_stats=True,
)
