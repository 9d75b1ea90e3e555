"""What every run directory records about where its numbers came from (``run.json``).

The record has a fixed schema, :data:`RUN_JSON_SCHEMA` (version :data:`RUN_JSON_VERSION`);
:func:`write_run_json` refuses to write a record that does not follow it and
:func:`validate_run_json` lists what is wrong with one read back. A run may add its own keys
(``algo``, ``model``, ``summary`` ...) next to the required ones. The idea follows lm-eval's
``result_schema.py`` and cleanrl's benchmark records: every number names its commit, config,
seed, task version and data.

A training run also records ``trainer_args``: the resolved trainer arguments it actually ran
with (every field of its TRL/segrl config class after defaults and validation,
:func:`trainer_arguments`), so readers (reports, sweeps, staleness checks) take a value from
the run itself instead of guessing it from the YAML section plus today's code defaults. Read
records with :func:`read_run_json` and values with :func:`trainer_argument`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("segrl", "torch", "transformers", "trl", "accelerate", "datasets", "pycocoevalcap", "bert-score")

RUN_JSON_VERSION = 1
"""The ``schema`` value of records following :data:`RUN_JSON_SCHEMA`."""

_NONE = type(None)

RUN_JSON_SCHEMA: dict[str, Any] = {
    "schema": int,  # RUN_JSON_VERSION
    "kind": str,  # what made the run: "train", "eval", ...
    "git": {
        "commit": (str, _NONE),  # HEAD of the checkout holding segrl when the process started; null outside git
        "dirty": (bool, _NONE),  # tracked files modified then (code_state); null outside a git checkout
    },
    "config": (dict, _NONE),  # the resolved experiment config (segrl.config.config_to_dict); null: none used
    "seed": (int, _NONE),  # the run's seed; null: the run draws no random numbers of its own
    "task": {"name": str, "version": int},  # TaskSpec name and version
    "data": {
        "path": str,  # the dataset directory
        "fingerprint": (str, _NONE),  # dataset_fingerprint(path); null when the path did not exist
    },
    "libraries": dict,  # {distribution: version or null}, LIBRARIES
    "machine": {"platform": str, "python": str, "processor": str},
    "started": str,  # ISO 8601 UTC time, provenance.now()
    "finished": str,  # ISO 8601 UTC time, >= started
}
"""Required keys of ``run.json`` and their types (a tuple: any of them; a dict: a nested record
with its own required keys). ``bool`` is not accepted where ``int`` is asked. Extra keys are
allowed at every level."""

_RESERVED = ("schema", "git", "libraries", "machine")  # filled in by write_run_json itself


def _type_name(tp: Any) -> str:
    types = tp if isinstance(tp, tuple) else (tp,)
    return " or ".join("null" if t is _NONE else t.__name__ for t in types)


def _is(value: Any, tp: Any) -> bool:
    types = tp if isinstance(tp, tuple) else (tp,)
    if isinstance(value, bool) and bool not in types:  # bool is an int subclass: not an int here
        return False
    return isinstance(value, types)


def _check(record: Any, schema: dict[str, Any], where: str, problems: list[str]) -> None:
    if not isinstance(record, dict):
        problems.append(f"{where or 'record'}: expected an object, got {type(record).__name__}")
        return
    for key, tp in schema.items():
        name = f"{where}.{key}" if where else key
        if key not in record:
            problems.append(f"{name}: missing")
        elif isinstance(tp, dict):
            _check(record[key], tp, name, problems)
        elif not _is(record[key], tp):
            got = f"{type(record[key]).__name__} {record[key]!r:.60}"
            problems.append(f"{name}: expected {_type_name(tp)}, got {got}")


def _parse_time(text: Any) -> _dt.datetime | None:
    try:
        t = _dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=_dt.timezone.utc)


def validate_run_json(record: Any) -> list[str]:
    """What is wrong with a ``run.json`` record against :data:`RUN_JSON_SCHEMA` (empty: nothing).

    Args:
        record: the parsed JSON object.

    Returns:
        One message per problem, each starting with the dotted key (``"task.version: missing"``,
        ``"seed: expected int or null, got str '0'"``), plus a wrong ``schema`` version,
        ``started`` / ``finished`` that are not ISO 8601 times, and ``finished`` before ``started``.
    """
    problems: list[str] = []
    _check(record, RUN_JSON_SCHEMA, "", problems)
    if not isinstance(record, dict):
        return problems
    if _is(record.get("schema"), int) and record["schema"] != RUN_JSON_VERSION:
        problems.append(f"schema: version {record['schema']}, expected {RUN_JSON_VERSION}")
    times = {}
    for key in ("started", "finished"):
        if isinstance(record.get(key), str):
            times[key] = _parse_time(record[key])
            if times[key] is None:
                problems.append(f"{key}: not an ISO 8601 time: {record[key]!r:.60}")
    if times.get("started") and times.get("finished") and times["finished"] < times["started"]:
        problems.append(f"finished: {record['finished']} is before started {record['started']}")
    return problems


OUTPUT_DIRS = ("results",)
"""Tracked directories of outputs (tables, plots, notes): changes there do not make a checkout dirty, so a
sweep's runs stay clean after an earlier target of the same checkout wrote its report."""


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding segrl.

    ``dirty``: a tracked file outside :data:`OUTPUT_DIRS` differs from the commit (our choice: ``results/``
    holds what the code writes, not what it runs)."""
    cwd = Path(cwd or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){d}" for d in OUTPUT_DIRS)], cwd=top,
                               capture_output=True, text=True, check=True)
        return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


_CODE_STATE: dict[str, Any] | None = None


def code_state() -> dict[str, Any]:
    """:func:`git_state` of the checkout whose segrl this process runs, read at the first call and kept.

    What a run ran is the code it imported when it started; a commit or an edit of that checkout during a
    long run must not change what its ``run.json`` says (``git`` was read when the record was written, at
    the end, until 2026-12-02). Trainers and evaluators call this when they start; :func:`write_run_json`
    records it.

    Returns:
        ``{"commit": sha or None, "dirty": bool or None}`` (a copy).
    """
    global _CODE_STATE
    if _CODE_STATE is None:
        _CODE_STATE = git_state()
    return dict(_CODE_STATE)


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def dataset_fingerprint(path: str | Path) -> str | None:
    """A saved dataset's fingerprint: the first 16 hex digits of SHA-256 over its files.

    Hashed: every ``.arrow`` and ``.json`` file below ``path`` in sorted order, each as its
    relative path (UTF-8) followed by its bytes (streamed in 1 MiB blocks; the same digest as
    hashing whole files). So one changed byte, a renamed, added or removed data file changes it;
    the directory's location, modification times and other files (``.lock``, notes) do not.

    Returns:
        16 hex characters, or None if ``path`` does not exist.
    """
    p = Path(path)
    if not p.exists():
        return None
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file() and x.suffix in (".arrow", ".json")):
        h.update(str(f.relative_to(p)).encode())
        with f.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_run_json(
    run_dir: str | Path,
    *,
    kind: str,
    task: dict[str, Any],
    data: dict[str, Any],
    started: str,
    finished: str,
    config: dict[str, Any] | None = None,
    seed: int | None = None,
    **extra: Any,
) -> Path:
    """Write ``run_dir/run.json`` following :data:`RUN_JSON_SCHEMA`, atomically.

    Git state, library versions, machine and ``schema`` are filled in here; the caller gives
    the rest, plus any ``extra`` keys of its own (``algo``, ``model``, ``summary`` ...).
    The file is written to a temporary sibling and renamed, so a crash never leaves half a record.

    Args:
        run_dir: the run directory (created if needed).
        kind: what made the run (``"train"``, ``"eval"`` ...).
        task: ``{"name": str, "version": int}``.
        data: ``{"path": str, "fingerprint": str | None, ...}``.
        started, finished: ISO 8601 times (:func:`now`).
        config: the resolved experiment config as a dict; None when the run used none.
        seed: the run's seed; None when it draws no random numbers of its own.

    Returns:
        The path of ``run.json``.

    Raises:
        ValueError: the record does not follow the schema (the message lists every problem), or
            ``extra`` names a key filled in here (``schema``, ``git``, ``libraries``, ``machine``).
    """
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"write_run_json: {clash} are filled in by write_run_json, not by the caller")
    record = {
        "schema": RUN_JSON_VERSION,
        "kind": kind,
        "git": code_state(),
        "config": config,
        "seed": seed,
        "task": task,
        "data": data,
        "libraries": library_versions(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "started": started,
        "finished": finished,
        **extra,
    }
    problems = validate_run_json(record)
    if problems:
        raise ValueError("write_run_json: the record does not follow RUN_JSON_SCHEMA: " + "; ".join(problems))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "run.json"
    tmp = run_dir / f".run.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def trainer_arguments(args: Any) -> dict[str, Any]:
    """The resolved trainer arguments of a run as plain JSON values, for ``run.json``'s ``trainer_args``.

    Args:
        args: the trainer config the run used: a ``transformers.TrainingArguments`` subclass (TRL's
            ``GRPOConfig``, segrl's ``SegmentGRPOConfig`` ...; its ``to_dict()``, which masks tokens),
            or any dataclass.

    Returns:
        ``{field: value}`` with every value JSON-native (enums by value, other objects as ``str``).

    Raises:
        TypeError: ``args`` is neither a ``TrainingArguments`` nor a dataclass.
    """
    import dataclasses

    if hasattr(args, "to_dict"):
        values = args.to_dict()
    elif dataclasses.is_dataclass(args) and not isinstance(args, type):
        values = dataclasses.asdict(args)
    else:
        raise TypeError(f"trainer_arguments: expected TrainingArguments or a dataclass, got {type(args).__name__}")
    return json.loads(json.dumps(values, default=str))


def read_run_json(path: str | Path) -> dict[str, Any]:
    """The record of ``path`` (a run directory or its ``run.json``).

    Raises:
        FileNotFoundError: no ``run.json`` there.
        ValueError: the file is not a JSON object (naming the file).
    """
    p = Path(path)
    if p.is_dir() or p.name != "run.json":
        p = p / "run.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found")
    try:
        record = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {p}: {e}") from e
    if not isinstance(record, dict):
        raise ValueError(f"{p}: expected a JSON object, got {type(record).__name__}")
    return record


_MISSING = object()


def trainer_argument(record: dict[str, Any], name: str, default: Any = _MISSING) -> Any:
    """The value of trainer argument ``name`` a run used: its ``trainer_args`` (resolved, recorded
    since the trainer wrote them), else its ``config.train`` section (what the YAML / ``--set`` gave).

    Raises:
        KeyError: neither has ``name`` and no ``default`` is given; the message says the run
            predates ``trainer_args`` (re-run it, or set the value explicitly in its config).
    """
    resolved = record.get("trainer_args")
    if isinstance(resolved, dict) and name in resolved:
        return resolved[name]
    train = (record.get("config") or {}).get("train") or {}
    if name in train:
        return train[name]
    if default is not _MISSING:
        return default
    where = "has no trainer_args (written before they were recorded)" if not isinstance(resolved, dict) \
        else "records no such trainer argument"
    raise KeyError(f"run.json {where} and its config.train does not set {name!r}")
