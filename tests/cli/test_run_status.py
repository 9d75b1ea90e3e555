"""Sweeps never reuse a stale run: ``segrl run-status`` against a run's run.json."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from segrl.cli import app
from segrl.provenance import now, write_run_json
from segrl.runstatus import EXIT_MATCH, EXIT_STALE, EXIT_TRAIN, request


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_dict.json").write_text('{"splits": ["train", "test"]}')
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"task": "multichart", "data": {"path": str(data)},
                                      "train": {"max_steps": 3, "learning_rate": 1e-3}}))
    run = tmp_path / "run"
    args = ["--config", str(config), "--algo", "grpo", "--seed", "1", "--model", "models/x", "--output-dir", str(run)]
    return config, data, run, args


def finish(run, config, overrides, model):
    """Write the run.json `segrl train` writes at the end of a run of this request."""
    req = request(config, overrides, model)
    write_run_json(run, kind="train", task=req["task"], data=req["data"], started=now(), finished=now(),
                   config=req["config"], seed=1, algo="grpo", model=model)


def status(args):
    result = CliRunner().invoke(app, ["run-status", *args])
    return result.exit_code, result.output


def test_absent_match_and_stale(setup):
    config, data, run, args = setup
    assert status(args)[0] == EXIT_TRAIN
    finish(run, config, ["train.algo=grpo", f"output_dir={run}", "train.seed=1"], "models/x")
    code, out = status(args)
    assert code == EXIT_MATCH and "matches" in out

    code, out = status([*args, "--set", "train.learning_rate=0.0005"])
    assert code == EXIT_STALE and "train.learning_rate: run has 0.001, requested 0.0005" in out
    code, out = status([*args[:-4], "--model", "models/y", *args[-2:]])
    assert code == EXIT_STALE and 'model: run has "models/x", requested "models/y"' in out
    (data / "dataset_dict.json").write_text('{"splits": ["train"]}')  # the data changed under the run
    code, out = status(args)
    assert code == EXIT_STALE and "data fingerprint" in out


def test_task_version_and_bad_record_are_stale(setup):
    config, data, run, args = setup
    finish(run, config, ["train.algo=grpo", f"output_dir={run}", "train.seed=1"], "models/x")
    record = json.loads((run / "run.json").read_text())
    record["task"]["version"] += 1
    (run / "run.json").write_text(json.dumps(record))
    code, out = status(args)
    assert code == EXIT_STALE and "task version: run has" in out
    del record["data"]
    (run / "run.json").write_text(json.dumps(record))
    assert "data: missing" in status(args)[1]


def test_rerun_stale_moves_the_run_aside(setup, tmp_path, monkeypatch):
    config, data, run, args = setup
    monkeypatch.chdir(tmp_path)
    finish(run, config, ["train.algo=grpo", f"output_dir={run}", "train.seed=9"], "models/x")
    (run / "eval").mkdir()
    code, out = status([*args, "--rerun-stale"])
    assert code == EXIT_TRAIN and "train.seed: run has 9, requested 1" in out
    (moved,) = (tmp_path / "stale-runs").glob("run-*")  # outside the run tree that segrl report reads
    assert not run.exists() and (moved / "run.json").exists() and (moved / "eval").is_dir()
    assert f"moved to stale-runs/{moved.name}" in out
