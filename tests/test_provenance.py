"""Provenance: the run.json schema, dataset fingerprints, and ``segrl report`` refusing mixed runs."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict
from rich.console import Console

from segrl.eval.report import collect, show
from segrl.provenance import (
    RUN_JSON_SCHEMA,
    RUN_JSON_VERSION,
    dataset_fingerprint,
    now,
    read_run_json,
    trainer_argument,
    trainer_arguments,
    validate_run_json,
    write_run_json,
)
from segrl.tasks.base import save_dataset_atomic

# ------------------------------------------------------------------------------ run.json schema

REQUIRED = {
    "schema", "kind", "git", "config", "seed", "task", "data", "libraries", "machine", "started", "finished",
}


def good_fields(**over):
    fields = {"kind": "train", "task": {"name": "multichart", "version": 1}, "config": {"task": "multichart"},
              "seed": 3, "data": {"path": "data/multichart", "fingerprint": "0123456789abcdef"},
              "started": "2025-01-02T03:04:05+00:00", "finished": "2025-01-02T04:00:00+00:00"}
    fields.update(over)
    return fields


def test_schema_constant_has_the_required_keys():
    assert set(RUN_JSON_SCHEMA) == REQUIRED
    assert set(RUN_JSON_SCHEMA["git"]) == {"commit", "dirty"}
    assert set(RUN_JSON_SCHEMA["task"]) == {"name", "version"}
    assert set(RUN_JSON_SCHEMA["data"]) == {"path", "fingerprint"}


def test_write_run_json_output_passes_the_schema(tmp_path):
    path = write_run_json(tmp_path / "run", **good_fields(), algo="sd_grpo", summary={"steps": 2})
    record = json.loads(path.read_text())
    assert validate_run_json(record) == []
    assert REQUIRED <= set(record) and record["schema"] == RUN_JSON_VERSION
    assert (record["algo"], record["seed"]) == ("sd_grpo", 3)
    assert record["task"] == {"name": "multichart", "version": 1}
    assert re.fullmatch(r"[0-9a-f]{40}", record["git"]["commit"])  # this checkout's HEAD
    assert isinstance(record["git"]["dirty"], bool)
    assert record["libraries"]["torch"] and record["libraries"]["datasets"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.json"]  # no temporary file left


def test_eval_style_record_without_config_or_seed_is_valid(tmp_path):
    """``segrl eval`` passes neither yet: both are then recorded as null, which the schema allows."""
    fields = good_fields(kind="eval", data={"path": "d", "split": "test", "fingerprint": None})
    del fields["config"], fields["seed"]
    record = json.loads(write_run_json(tmp_path, **fields, model="runs/sd").read_text())
    assert record["config"] is None and record["seed"] is None and validate_run_json(record) == []


def valid_record():
    return {"schema": RUN_JSON_VERSION, "git": {"commit": "a" * 40, "dirty": False},
            "libraries": {"torch": "2"},
            "machine": {"platform": "Linux", "python": "3.11.7", "processor": "x86_64"}, **good_fields()}


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda r: r.pop("seed"), ["seed: missing"]),
        (lambda r: r["task"].pop("version"), ["task.version: missing"]),
        (lambda r: r.update(seed="0"), ["seed: expected int or null, got str '0'"]),
        (lambda r: r.update(seed=True), ["seed: expected int or null, got bool True"]),
        (lambda r: r["git"].update(dirty="yes"), ["git.dirty: expected bool or null, got str 'yes'"]),
        (lambda r: r["task"].update(version="1"), ["task.version: expected int, got str '1'"]),
        (lambda r: r.update(data=None), ["data: expected an object, got NoneType"]),
        (lambda r: r.update(config=[1]), ["config: expected dict or null, got list [1]"]),
        (lambda r: r.update(schema=0), ["schema: version 0, expected 1"]),
        (lambda r: r.update(started="yesterday"), ["started: not an ISO 8601 time: 'yesterday'"]),
        (lambda r: r.update(finished="2025-01-01T00:00:00+00:00"),
         ["finished: 2025-01-01T00:00:00+00:00 is before started 2025-01-02T03:04:05+00:00"]),
        (lambda r: (r.pop("machine"), r.pop("kind")), ["kind: missing", "machine: missing"]),
    ],
)
def test_validate_run_json_lists_missing_and_ill_typed_keys(mutate, expected):
    record = valid_record()
    assert validate_run_json(record) == []
    record = copy.deepcopy(record)
    mutate(record)
    assert validate_run_json(record) == expected


def test_validate_run_json_on_a_non_object():
    assert validate_run_json([]) == ["record: expected an object, got list"]


def test_write_run_json_refuses_a_bad_record_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"task\.version: missing"):
        write_run_json(tmp_path / "a", **good_fields(task={"name": "multichart"}))
    with pytest.raises(ValueError, match=r"\['git'\] are filled in by write_run_json"):
        write_run_json(tmp_path / "b", **good_fields(), git={"commit": "x"})
    assert not (tmp_path / "a" / "run.json").exists() and not (tmp_path / "b").exists()


def test_now_is_valid_for_the_schema(tmp_path):
    t = now()
    record = json.loads(write_run_json(tmp_path, **good_fields(started=t, finished=now())).read_text())
    assert record["started"] == t and validate_run_json(record) == []


# ------------------------------------------------------------------------------ fingerprint


@pytest.fixture()
def saved(tmp_path) -> Path:
    rows = [{"id": f"r{i}", "value": i * 1.5, "text": "x" * i} for i in range(50)]
    ds = DatasetDict({"train": Dataset.from_list(rows[:40]), "test": Dataset.from_list(rows[40:])})
    return save_dataset_atomic(ds, tmp_path / "data")


def reference_fingerprint(path: Path) -> str:
    """The documented rule as a plain loop: sorted .arrow/.json files, relative name then bytes."""
    h = hashlib.sha256()
    for f in sorted(x for x in path.rglob("*") if x.is_file() and x.suffix in (".arrow", ".json")):
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()[:16]


def test_fingerprint_is_stable(saved, tmp_path):
    fp = dataset_fingerprint(saved)
    assert re.fullmatch(r"[0-9a-f]{16}", fp) and fp == reference_fingerprint(saved)
    assert dataset_fingerprint(saved) == fp and dataset_fingerprint(str(saved)) == fp
    copy_dir = Path(shutil.copytree(saved, tmp_path / "elsewhere"))
    assert dataset_fingerprint(copy_dir) == fp  # location does not matter
    for f in saved.rglob("*"):
        os.utime(f, (0, 0))  # nor modification times
    (saved / "notes.txt").write_text("not data")  # nor files that are not arrow/json
    assert dataset_fingerprint(saved) == fp
    assert dataset_fingerprint(tmp_path / "missing") is None


def test_fingerprint_changes_with_one_byte_of_an_arrow_file(saved):
    fp = dataset_fingerprint(saved)
    arrows = sorted(saved.rglob("*.arrow"))
    assert len(arrows) == 2
    for arrow in arrows:
        raw = bytearray(arrow.read_bytes())
        for pos in (0, len(raw) // 2, len(raw) - 1):
            raw[pos] ^= 0x01
            arrow.write_bytes(bytes(raw))
            changed = dataset_fingerprint(saved)
            assert changed != fp and changed == reference_fingerprint(saved)
            raw[pos] ^= 0x01
            arrow.write_bytes(bytes(raw))
            assert dataset_fingerprint(saved) == fp  # restored byte, same fingerprint


def test_fingerprint_changes_when_a_data_file_is_renamed_or_removed(saved):
    fp = dataset_fingerprint(saved)
    arrow = next(saved.rglob("*.arrow"))
    arrow.rename(arrow.with_name("renamed.arrow"))
    renamed = dataset_fingerprint(saved)
    assert renamed != fp
    (arrow.with_name("renamed.arrow")).unlink()
    assert dataset_fingerprint(saved) not in (fp, renamed)


# ------------------------------------------------------------------------------ report


def eval_run(root: Path, name: str, *, version=1, fingerprint="aaaa000011112222", commit="c0ffee1234567890",
             dirty=False, accuracy=0.5, model=None, run_json=True) -> Path:
    """A hand-written eval run directory (``metrics.json`` + ``run.json``) under ``root/name/eval``."""
    d = root / name / "eval"
    d.mkdir(parents=True)
    metrics = {"task": "multichart", "task_version": version, "model": str(model or root / name),
               "split": "test",
               "n_examples": 30, "n_segments": 120, "metrics": {"accuracy": accuracy, "format": 0.9}}
    (d / "metrics.json").write_text(json.dumps(metrics))
    if run_json:
        record = {"schema": 1, "kind": "eval", "git": {"commit": commit, "dirty": dirty},
                  "task": {"name": "multichart", "version": version},
                  "data": {"path": "data/multichart", "fingerprint": fingerprint}}
        (d / "run.json").write_text(json.dumps(record))
    return d


def test_collect_one_row_per_run_with_commit(tmp_path):
    eval_run(tmp_path, "sd", accuracy=0.625, commit="abcdef0123456789", dirty=True)
    eval_run(tmp_path, "base", accuracy=0.25)
    (tmp_path / "sd" / "run.json").write_text(json.dumps({"algo": "sd_grpo"}))  # the trained model's record
    df = collect([tmp_path])
    assert list(df["run"]) == ["base", "sd"]  # (init) first
    assert list(df["algo"]) == ["(init)", "sd_grpo"]
    assert list(df["accuracy"]) == [0.25, 0.625]
    assert list(df["commit"]) == ["c0ffee12", "abcdef01+dirty"]
    assert list(df["task"]) == ["multichart v1"] * 2 and list(df["data"]) == ["aaaa000011112222"] * 2
    console = Console(record=True, width=200)
    show(df, "t", console)
    text = console.export_text()
    assert "abcdef01+dirty" in text and "c0ffee12" in text  # the commit is printed with each row


@pytest.mark.parametrize(
    "other,col",
    [({"version": 2}, "task"), ({"fingerprint": "bbbb000011112222"}, "data"), ({"run_json": False}, "data")],
)
def test_collect_refuses_mixed_runs_unless_allowed(tmp_path, other, col):
    eval_run(tmp_path, "a")
    eval_run(tmp_path, "b", **other)
    with pytest.raises(ValueError, match=f"runs differ in {col}") as err:
        collect([tmp_path])
    assert "'a'" in str(err.value) and "'b'" in str(err.value) and "--allow-mixed" in str(err.value)
    df = collect([tmp_path], allow_mixed=True)
    assert list(df["run"]) == ["a", "b"] and df[col].nunique(dropna=False) == 2
    if "run_json" in other:
        assert list(df["commit"]) == ["c0ffee12", "?"]  # no run.json: commit unknown


def test_collect_missing_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no eval run"):
        collect([tmp_path / "nothing"])


# ------------------------------------------------------------------------------ resolved trainer arguments


def test_trainer_arguments_are_the_resolved_config(tmp_path):
    from segrl.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "docci_cpu.yaml",
                      ["train.algo=blend", f"output_dir={tmp_path}"])
    assert "alpha" not in cfg.train  # the YAML leaves alpha to the code default
    args = cfg.grpo_config()
    resolved = trainer_arguments(args)
    assert resolved["alpha"] == args.alpha and resolved["learning_rate"] == 2e-4 and resolved["algo"] == "blend"
    assert resolved["report_to"] == ["tensorboard"] and json.loads(json.dumps(resolved)) == resolved
    write_run_json(tmp_path / "run", **good_fields(), trainer_args=resolved)
    back = read_run_json(tmp_path / "run")
    assert back["trainer_args"] == resolved and trainer_argument(back, "alpha") == args.alpha
    assert read_run_json(tmp_path / "run" / "run.json") == back


def test_trainer_argument_falls_back_to_the_config_then_refuses(tmp_path):
    assert trainer_argument({"trainer_args": {"alpha": 0.25}, "config": {"train": {"alpha": 0.9}}}, "alpha") == 0.25
    assert trainer_argument({"config": {"train": {"alpha": 0.9}}}, "alpha") == 0.9
    assert trainer_argument({"config": None}, "alpha", default=None) is None
    with pytest.raises(KeyError, match="has no trainer_args .* does not set 'alpha'"):
        trainer_argument({"config": {"train": {}}}, "alpha")
    with pytest.raises(KeyError, match="records no such trainer argument"):
        trainer_argument({"trainer_args": {}}, "alpha")
    with pytest.raises(TypeError, match="expected TrainingArguments or a dataclass"):
        trainer_arguments({"alpha": 1})
    with pytest.raises(FileNotFoundError):
        read_run_json(tmp_path)
    (tmp_path / "run.json").write_text("[1]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        read_run_json(tmp_path)


def test_a_changed_result_file_does_not_make_the_checkout_dirty_but_a_changed_source_does(tmp_path):
    import subprocess

    from segrl.provenance import git_state

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "results" / "table.md").write_text("new\n")  # a report rewritten by an earlier target
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path)["dirty"] is True


def test_run_json_records_the_code_as_it_was_when_the_process_started(tmp_path, monkeypatch):
    """A commit or an edit of the checkout during a long run does not change what its run.json says ran."""
    import segrl.provenance as prov

    states = iter([{"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True}])
    monkeypatch.setattr(prov, "_CODE_STATE", None)
    monkeypatch.setattr(prov, "git_state", lambda cwd=None: next(states))
    assert prov.code_state() == {"commit": "a" * 40, "dirty": False}  # the run starts: pinned
    path = prov.write_run_json(tmp_path, kind="train", task={"name": "t", "version": 1},
                               data={"path": "d", "fingerprint": None}, started=prov.now(), finished=prov.now())
    assert json.loads(path.read_text())["git"] == {"commit": "a" * 40, "dirty": False}
