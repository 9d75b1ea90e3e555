"""``segrl validate CONFIG``: dry-run an experiment config on a few examples before spending compute.

Each check is one row of the summary (name, ``ok`` / ``FAIL`` / ``skip``, detail); a check
that needs an earlier one that failed is skipped. The run fails (``report["ok"]`` False, exit
code 1 from the CLI) when any check fails.

1. ``config`` — :func:`segrl.config.load_config` with the ``--set`` overrides: unknown keys and
   wrong types are errors naming the file and key (the ``train`` section is checked against
   ``SegmentGRPOConfig``).
2. ``task`` — ``cfg.task`` is registered in :data:`segrl.tasks.TASKS`.
3. ``dataset`` — the DatasetDict at ``cfg.data.path`` loads and has a ``train`` split and the
   ``eval.split``. When the path does not exist, :data:`BUILD_LIMIT` examples are built from
   ``cfg.data.source`` with the task's builder into a temporary directory (removed afterwards)
   and checked instead; the detail says so (``segrl build-data`` must still run before training).
4. ``schema`` — every row of every split: the :data:`segrl.tasks.base.ROW_FIELDS` columns with
   the :data:`~segrl.tasks.base.FEATURES` types, a unique non-empty ``id``, ``task`` equal to
   ``cfg.task``, a label list the parser accepts, one non-empty reference list per label, one
   image per ``{"type": "image"}`` block, ``meta`` a JSON object whose ``task_version`` (when
   present) is the task's version.
5. ``references parse`` — ``parse_segments(reference, labels)`` finds every label, in order,
   once, and each segment's text is one of that segment's references (stripped).
6. ``reward <name> on references`` — the task's segment reward and its eval metrics (via
   :func:`segrl.rewards.make_segment_reward`, CIDEr-D df from the train split) score every
   reference answer without raising, in range (:data:`REWARD_RANGES`), every segment
   scorable, and at the metric's maximum where it has one (:data:`MAX_ON_REFERENCE`:
   accuracy 1.0); the format reward is 1.0.
7. ``rewards on garbage`` — the same rewards on :func:`garbage` completions (empty, huge,
   label look-alikes, nested tags, numbers such as ``1e309``) for a few rows: no exception,
   every value in range.
8. ``model`` — :func:`segrl.models.load_policy` of ``cfg.model.name_or_path`` and one greedy
   generation (:data:`GENERATION_TOKENS` new tokens) on the first example of ``eval.split``;
   its rewards must be in range.

A check that raises is reported as ``FAIL`` with the exception's type and message (the point
of a dry run is to list every problem, not to stop at the first traceback).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

BUILD_LIMIT = 4
"""Examples (task groups) built from ``cfg.data.source`` when ``cfg.data.path`` does not exist."""
GENERATION_TOKENS = 8
"""New tokens of the one greedy generation of the ``model`` check."""
GARBAGE_ROWS = 4
"""Rows of the train split the garbage completions are scored against."""
MAX_PROBLEMS = 5
"""Problems named in a check's detail (the rest are counted)."""

REWARD_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "bleu1": (0.0, 1.0),
    "bleu2": (0.0, 1.0),
    "bleu3": (0.0, 1.0),
    "bleu4": (0.0, 1.0),
    "cider_d": (0.0, 10.0),  # 10 x a mean of clipped cosines in [0, 1] (derivation in tests/test_fuzz.py)
    "format": (0.0, 1.0),
    "iou": (0.0, 1.0),
}
"""Closed range of every reward's values; a metric not listed is only checked to be finite."""
MAX_ON_REFERENCE: dict[str, float] = {"accuracy": 1.0, "format": 1.0, "iou": 1.0}
"""What a reference answer must score on itself (metrics without a fixed maximum are not listed)."""
_EPS = 1e-9  # float rounding at the top of a range


@dataclass(frozen=True)
class Check:
    """One row of the summary. ``status`` is ``"ok"``, ``"FAIL"`` or ``"skip"``."""

    name: str
    status: str
    detail: str


def garbage(labels: Sequence[str], reference: str) -> list[str]:
    """Completions a policy may write that no reward may crash on, for a row with ``labels``.

    Returns:
        17 strings: empty and blank, unicode noise, a 200,000-character string, label
        look-alikes (``answer  1 :``, ``Answer 10:``, fullwidth digits, zero-width joiners),
        nested tags, JSON, unusual numbers, and the reference shuffled / duplicated / cut.
    """
    first = labels[0]
    lines = reference.splitlines()
    return [
        "",
        " \n\t\n",
        "\u200f\u200d\ufeff\x00\x85\u2028",
        "\U0001f600 \u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea",
        f"{first}: " + "x " * 100_000,
        "answer" + " " * 5_000 + "x",
        f"{first.lower()}  :",
        f"**{first}:** (a) Answer 10: Answer \uff11: Answer \u0661:",
        "".join(f"{lab[:2]}\u200d{lab[2:]}: 1\n" for lab in labels),
        f"<answer><think>{first}: 1e309</think></answer>",
        json.dumps({lab: [1e308, None, "nan"] for lab in labels}),
        "\n".join(f"{lab}: {num}" for lab, num in zip(labels, _ODD_NUMBERS * len(labels))),
        "\n".join(reversed(lines)),
        reference + "\n" + reference,
        reference[: len(reference) // 2],
        "\n".join(f"{lab}:" for lab in labels),
        "\n".join(f"{lab}: (A) or (B) option C" for lab in labels),
    ]


_ODD_NUMBERS = ["nan", "-0", "1e309", "10^-400", "1,2,3", "\u0663", "inf", "1e-400", "\uff11\uff12"]


def _problems(items: list[str]) -> str:
    """The first :data:`MAX_PROBLEMS` problems, then how many more."""
    shown = "; ".join(items[:MAX_PROBLEMS])
    return shown + (f"; ... and {len(items) - MAX_PROBLEMS} more" if len(items) > MAX_PROBLEMS else "")


def _out_of_range(name: str, value: float) -> bool:
    """Whether ``value`` is not finite or outside :data:`REWARD_RANGES` [name]."""
    if not math.isfinite(value):
        return True
    lo, hi = REWARD_RANGES.get(name, (-math.inf, math.inf))
    return not lo - _EPS <= value <= hi + _EPS


def _range_text(name: str) -> str:
    """``"[0, 10]"``: :data:`REWARD_RANGES` [name] as text (``"(finite)"`` for an unlisted metric)."""
    lo, hi = REWARD_RANGES.get(name, (None, None))
    return f"[{lo:g}, {hi:g}]" if lo is not None else "(finite)"


def _text_rows(split) -> list[dict]:
    """The rows of ``split`` without the ``images`` column (nothing is decoded)."""
    return split.select_columns([c for c in split.column_names if c != "images"]).to_list()


def _image_counts(split) -> list[int]:
    """Images per row, read from the arrow column (no image is decoded)."""
    import pyarrow.compute as pc

    column = split.with_format("arrow")[:]["images"]
    return [int(n) if n is not None else 0 for n in pc.list_value_length(column).to_pylist()]


# ------------------------------------------------------------------------------------ checks


def check_config(cfg_path: str | Path, overrides: Sequence[str]):
    """``(ExperimentConfig, detail)``.

    Raises:
        segrl.config.ConfigError: unknown key or wrong type (naming the file and key).
        FileNotFoundError: no file at ``cfg_path``.
    """
    from segrl.config import load_config

    cfg = load_config(cfg_path, list(overrides))
    return cfg, f"{cfg_path}: task {cfg.task}, model {cfg.model.name_or_path}, data {cfg.data.path}"


def build_options(task, cfg):
    """The task's typed build options for a dry run: ``seed`` / ``test_fraction`` from ``cfg.data``
    (where the task uses them) and a size of :data:`BUILD_LIMIT` examples (or ``data.limit`` if smaller).

    Returns:
        A ``task.options`` instance (:class:`segrl.tasks.base.BuildOptions`).
    """
    size = max(2, min(cfg.data.limit or BUILD_LIMIT, BUILD_LIMIT))  # >= 2: one train and one test example
    shared = {"seed": cfg.data.seed, "test_fraction": cfg.data.test_fraction, "size": size}
    return task.options(**{k: v for k, v in shared.items() if k not in task.options.unused})


def check_dataset(cfg, task, stack: ExitStack):
    """``(DatasetDict, detail)``; builds into a temporary directory (removed when ``stack`` closes)
    when ``cfg.data.path`` does not exist.

    Raises:
        ValueError: the directory holds a single Dataset, or lacks the ``train`` / ``eval.split`` split.
        segrl.tasks.DataError: building from ``cfg.data.source`` failed (the message names the file).
    """
    from datasets import DatasetDict, load_from_disk

    path = Path(cfg.data.path)
    built = ""
    if not path.exists():
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="segrl-validate-")))
        options = build_options(task, cfg)
        task.build_with(cfg.data.source, tmp / "data", options)
        built = (f"not found at {path}: built {options.size} examples from {cfg.data.source} into a temporary "
                 f"directory (run `segrl build-data {task.name}` before training); ")
        path = tmp / "data"
    ds = load_from_disk(str(path))
    if not isinstance(ds, DatasetDict):
        raise ValueError(f"{path}: a single Dataset; expected a DatasetDict with train/test splits")
    missing = [s for s in ("train", cfg.eval.split) if s not in ds]
    if missing:
        raise ValueError(f"{path}: split(s) {missing} missing; has {list(ds)}")
    sizes = ", ".join(f"{name} {len(split)}" for name, split in ds.items())
    return ds, built + f"{path} ({sizes} rows)"


def check_schema(ds, cfg, task) -> list[str]:
    """Problems with the row schema (empty when none), each naming the split and row id."""
    from segrl.segments import parse_segments
    from segrl.tasks.base import FEATURES, ROW_FIELDS

    problems: list[str] = []
    for split_name, split in ds.items():
        missing = [f for f in ROW_FIELDS if f not in split.features]
        if missing:
            problems.append(f"{split_name}: missing column(s) {missing}")
            continue
        for f in ROW_FIELDS:
            if split.features[f] != FEATURES[f]:
                problems.append(
                    f"{split_name}: column {f!r} has type {split.features[f]}, expected {FEATURES[f]}"
                )
        seen: set[str] = set()
        for row, n_images in zip(_text_rows(split), _image_counts(split)):
            rid = row["id"]
            where = f"{split_name} row {rid!r}"
            if not rid:
                problems.append(f"{where}: empty id")
            elif rid in seen:
                problems.append(f"{where}: duplicate id")
            seen.add(rid)
            if row["task"] != cfg.task:
                problems.append(f"{where}: task {row['task']!r}, config says {cfg.task!r}")
            labels, refs = row["segment_labels"] or [], row["segment_references"] or []
            try:
                parse_segments("", labels)
            except ValueError as e:
                problems.append(f"{where}: {e}")
            if len(labels) != len(refs):
                problems.append(f"{where}: {len(labels)} segment_labels but {len(refs)} segment_references")
            empty = [labels[k] if k < len(labels) else k for k, r in enumerate(refs)
                     if not any(x and x.strip() for x in r or [])]
            if empty:
                problems.append(f"{where}: no reference for {empty}")
            blocks = sum(
                b.get("type") == "image" for m in row["prompt"] or [] for b in m.get("content") or []
            )
            if blocks != n_images:
                problems.append(f"{where}: {blocks} image block(s) in the prompt but {n_images} image(s)")
            try:
                meta = json.loads(row["meta"])
            except (TypeError, json.JSONDecodeError) as e:
                problems.append(f"{where}: meta is not JSON ({e})")
                continue
            if not isinstance(meta, dict):
                problems.append(f"{where}: meta is not a JSON object")
            elif "task_version" in meta and meta["task_version"] != task.version:
                problems.append(f"{where}: built by {task.name} v{meta['task_version']}, "
                                f"the task is v{task.version} (rebuild the data)")
    return problems


def check_references_parse(ds) -> list[str]:
    """Rows whose ``reference`` does not parse back to their own segment references."""
    from segrl.segments import parse_segments

    problems: list[str] = []
    for split_name, split in ds.items():
        for row in _text_rows(split):
            labels, refs = row["segment_labels"], row["segment_references"]
            where = f"{split_name} row {row['id']!r}"
            try:
                p = parse_segments(row["reference"] or "", labels)
            except ValueError as e:
                problems.append(f"{where}: {e}")
                continue
            if not (p.ordered and p.duplicates == 0 and p.unexpected == 0):
                problems.append(f"{where}: reference labels out of order, repeated or unexpected "
                                f"(duplicates {p.duplicates}, unexpected {p.unexpected})")
            for k, seg in enumerate(p.segments):
                allowed = [r.strip() for r in (refs[k] if k < len(refs) else []) if r is not None]
                if seg.text is None:
                    problems.append(f"{where}: {seg.label!r} missing from the reference")
                elif seg.text not in allowed:
                    problems.append(f"{where}: {seg.label!r} parses to {seg.text[:60]!r}, "
                                    f"not one of its references {[a[:60] for a in allowed]}")
    return problems


def reward_functions(ds, task) -> dict[str, Callable]:
    """The task's segment reward and eval metrics by name (CIDEr-D df from the train split)."""
    from segrl.rewards import make_segment_reward

    corpus = [refs for row in ds["train"]["segment_references"] for refs in row]
    names = dict.fromkeys([task.segment_reward, *task.eval_metrics])
    return {name: make_segment_reward(name, reference_corpus=corpus) for name in names}


def score_all(completions, labels, refs, metrics: dict[str, Callable]) -> dict[str, list[list[float | None]]]:
    """Per reward name, per completion, its per-segment scores (None: reference not scorable).

    ``format`` is included as a one-element list per completion.

    Raises:
        segrl.rewards.scorer.RewardError: a metric raised or returned a malformed result.
    """
    from segrl.rewards import format_reward
    from segrl.rewards.scorer import score_segments

    out: dict[str, list[list[float | None]]] = {}
    for name, fn in metrics.items():
        s = score_segments(completions, labels, refs, fn)
        out[name] = [[float(s.rewards[i, k]) if s.mask[i, k] else None for k in range(len(labels[i]))]
                     for i in range(len(completions))]
    out["format"] = [[f] for f in format_reward(completions, labels)]
    return out


def check_rewards_on_references(ds, metrics) -> dict[str, list[str]]:
    """Per reward name, its problems on the reference answers of every split."""
    problems: dict[str, list[str]] = {name: [] for name in [*metrics, "format"]}
    for split_name, split in ds.items():
        rows = _text_rows(split)
        scores = score_all([r["reference"] for r in rows], [r["segment_labels"] for r in rows],
                           [r["segment_references"] for r in rows], metrics)
        for name, per_row in scores.items():
            best = MAX_ON_REFERENCE.get(name)
            for row, values in zip(rows, per_row):
                where = f"{split_name} row {row['id']!r}"
                for k, v in enumerate(values):
                    label = row["segment_labels"][k] if name != "format" else "answer"
                    if v is None:
                        problems[name].append(f"{where}: {label!r} reference cannot be scored")
                    elif _out_of_range(name, v):
                        problems[name].append(f"{where}: {label!r} scores {v}, outside {_range_text(name)}")
                    elif best is not None and abs(v - best) > _EPS:
                        problems[name].append(f"{where}: {label!r} reference scores {v:g}, not {best:g}")
    return problems


def check_rewards_on_garbage(ds, metrics) -> tuple[list[str], int]:
    """Problems when scoring :func:`garbage` completions on the first train rows, and how many were scored."""
    rows = _text_rows(ds["train"].select(range(min(GARBAGE_ROWS, len(ds["train"])))))
    problems: list[str] = []
    n = 0
    for row in rows:
        comps = garbage(row["segment_labels"], row["reference"])
        n += len(comps)
        n_comps = len(comps)
        labels, refs = [row["segment_labels"]] * n_comps, [row["segment_references"]] * n_comps
        scores = score_all(comps, labels, refs, metrics)
        for name, per_comp in scores.items():
            for i, values in enumerate(per_comp):
                bad = [v for v in values if v is not None and _out_of_range(name, v)]
                if bad:
                    problems.append(f"train row {row['id']!r}, garbage #{i}: {name} = {bad}")
    return problems, n


def check_model(cfg, ds, metrics) -> str:
    """Load the policy and generate :data:`GENERATION_TOKENS` tokens greedily on one example.

    Raises:
        ValueError: the generation's rewards are out of range. Loading errors propagate
            (``FileNotFoundError`` naming a missing local model, ...).
    """
    import torch

    from segrl.eval.generate import generate
    from segrl.models import load_policy
    from segrl.tasks.base import downscale_images

    t0 = time.time()
    policy, processor = load_policy(cfg.model.name_or_path, dtype=cfg.model.dtype)
    policy.eval()
    split = ds[cfg.eval.split] if len(ds[cfg.eval.split]) else ds["train"]
    row = downscale_images(split.select(range(1)), cfg.data.max_image_side)[0]
    torch.manual_seed(0)
    (completion,) = generate(policy, processor, [row], max_new_tokens=GENERATION_TOKENS)
    scores = score_all([completion], [row["segment_labels"]], [row["segment_references"]], metrics)
    bad = {name: v[0] for name, v in scores.items()
           if any(x is not None and _out_of_range(name, x) for x in v[0])}
    if bad:
        raise ValueError(f"rewards of the generation out of range: {bad}")
    n_params = sum(p.numel() for p in policy.parameters())
    return (f"{cfg.model.name_or_path} ({n_params / 1e6:.2f} M parameters) generated {completion[:60]!r} "
            f"on row {row['id']!r} in {time.time() - t0:.1f}s")


# ------------------------------------------------------------------------------------ driver


def main(cfg_path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run every check (module docstring) on the config at ``cfg_path`` with ``section.key=value`` overrides.

    Returns:
        ``{"config": str, "ok": bool, "checks": [{"name", "status", "detail"}, ...]}``;
        ``ok`` is False when any check has status ``"FAIL"``. Never raises for a bad config,
        dataset, reward or model: those are failed checks.
    """
    checks: list[Check] = []

    def run(name: str, fn: Callable[[], Any], needs: bool = True) -> Any:
        if not needs:
            checks.append(Check(name, "skip", "needs an earlier check that failed"))
            return None
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - reported as a failed check, with type and message
            checks.append(Check(name, "FAIL", f"{type(e).__name__}: {e}"))
            return None
        return result

    def record(name: str, problems: list[str], ok_detail: str) -> None:
        checks.append(Check(name, "FAIL", _problems(problems)) if problems else Check(name, "ok", ok_detail))

    with ExitStack() as stack:
        loaded = run("config", lambda: check_config(cfg_path, overrides))
        cfg = loaded[0] if loaded else None
        if loaded:
            checks.append(Check("config", "ok", loaded[1]))

        def get_task():
            from segrl.tasks import TASKS

            return TASKS.get(cfg.task)

        task = run("task", get_task, cfg is not None)
        if task is not None:
            checks.append(
                Check("task", "ok", f"{task.name} v{task.version}, segment reward {task.segment_reward}")
            )

        got = run("dataset", lambda: check_dataset(cfg, task, stack), task is not None)
        ds = got[0] if got else None
        if got:
            checks.append(Check("dataset", "ok", got[1]))

        have_data = ds is not None
        schema = run("schema", lambda: check_schema(ds, cfg, task), have_data)
        if schema is not None:
            n_rows = sum(len(s) for s in ds.values())
            record("schema", schema, f"{n_rows} rows: fields, types, ids, labels, references, images, meta")
        parsed = run("references parse", lambda: check_references_parse(ds), have_data)
        if parsed is not None:
            record("references parse", parsed, "every reference parses back to its segment references")

        metrics = run("rewards", lambda: reward_functions(ds, task), have_data)  # a row only if it fails
        on_refs = run("rewards on references", lambda: check_rewards_on_references(ds, metrics),
                      metrics is not None)
        if on_refs is not None:
            for name, problems in on_refs.items():
                best = MAX_ON_REFERENCE.get(name)
                want = f"= {best:g}" if best is not None else f"in {_range_text(name)}"
                record(f"reward {name} on references", problems, f"every reference segment scores {want}")
        on_garbage = run("rewards on garbage", lambda: check_rewards_on_garbage(ds, metrics),
                         metrics is not None)
        if on_garbage is not None:
            problems, n = on_garbage
            record("rewards on garbage", problems,
                   f"{n} garbage completions x {len(metrics) + 1} rewards: no error, all in range")

        detail = run("model", lambda: check_model(cfg, ds, metrics), metrics is not None)
        if detail is not None:
            checks.append(Check("model", "ok", detail))

    return {
        "config": str(cfg_path),
        "ok": not any(c.status == "FAIL" for c in checks),
        "checks": [asdict(c) for c in checks],
    }


def render(report: dict[str, Any]) -> Table:
    """A rich table of ``report["checks"]`` (name, status in colour, detail)."""
    verdict = "[green]ok[/]" if report["ok"] else "[red]FAIL[/]"
    table = Table(title=f"segrl validate {escape(report['config'])}: {verdict}")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    colours = {"ok": "green", "FAIL": "bold red", "skip": "yellow"}
    for c in report["checks"]:
        table.add_row(escape(c["name"]), f"[{colours[c['status']]}]{c['status']}[/]", escape(c["detail"]))
    return table
