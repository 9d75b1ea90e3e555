"""User errors in one line: every subcommand turns a missing file, bad path, unknown name or bad value
into one line naming it, exit code 2; the traceback only with --debug or SEGRL_DEBUG=1."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from segrl.cli import app

REPO = Path(__file__).resolve().parents[2]
ALGORITHMS = ("blend", "dr_grpo", "drseg", "grpo", "sapo", "sd_dr_grpo", "sd_grpo", "sd_srpo", "srpo",
              "vision_reasoner")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"task": "multichart", "output_dir": str(tmp_path / "run"),
                                    "data": {"path": str(tmp_path / "no-data")}, "train": {"max_steps": 1}}))
    return path


def cases(tmp, config):
    missing = tmp / "missing.yaml"
    return [
        # (argv, what the line must name)
        (["train", "--config", missing], str(missing)),
        (["train", "--config", config, "--algo", "nosuch"], "nosuch"),
        (["train", "--config", config, "--set", "train.learning_rate=abc"], "train.learning_rate"),
        (["train", "--config", config, "--set", "train.nosuch_key=1"], "nosuch_key"),
        (["train", "--config", config, "--model", tmp / "no-model"], "no-model"),
        (["train", "--config", config], "no-data"),
        (["train"], "--config"),
        (["warm-start", "--config", missing, "--model", "m", "--out", tmp / "w"], str(missing)),
        (["warm-start", "--config", config, "--model", tmp / "no-model", "--out", tmp / "w"], "no-model"),
        (["eval", "multichart", "--model", tmp / "no-model", "--data", tmp, "--out", tmp / "e"], "no-model"),
        (["eval", "nosuch", "--model", "hub/id", "--data", tmp, "--out", tmp / "e"], "nosuch"),
        (["eval", "multichart", "--model", "hub/id", "--data", tmp / "no-data", "--out", tmp / "e"], "no-data"),
        (["build-data", "multichart", "--source", tmp / "no-source", "--out", tmp / "b"], "no-source"),
        (["build-data", "docci", "--panels", "0", "--out", tmp / "b"], "panels"),
        (["build-data", "nosuch"], "nosuch"),
        (["make-tiny-model", "--data", tmp / "no-data", "--out", tmp / "m"], "no-data"),
        (["report", tmp / "no-runs", "--out", tmp / "r"], "no-runs"),
        (["validate", missing], "missing.yaml"),
        (["analyze", "credit", "--ks", "abc"], "--ks"),
        (["bench", "step", "--source", tmp / "no-source", "--out-dir", tmp / "bs"], "no-source"),
        (["judge", "pairwise", tmp / "no-a", tmp / "no-b", "--out", tmp / "j", "--url", "http://127.0.0.1:9/v1",
          "--model", "x"], "no-a"),
        (["run-status", "--config", missing, "--output-dir", tmp / "r"], str(missing)),
        (["nosuch"], "nosuch"),
    ]


def test_each_subcommand_gives_one_line_and_exit_2(tmp_path, config, monkeypatch):
    monkeypatch.delenv("SEGRL_DEBUG", raising=False)
    for argv, named in cases(tmp_path, config):
        result = CliRunner().invoke(app, [str(a) for a in argv])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2, (argv, result.output, result.exception)
        assert len(lines) == 1 and named in lines[0], (argv, result.output)
        assert "Traceback" not in result.output


def test_unknown_algo_lists_every_algorithm(config):
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--algo", "nosuch"])
    line = result.output.strip()
    assert result.exit_code == 2 and "unknown algorithm 'nosuch'" in line
    assert all(name in line for name in ALGORITHMS), line


def test_debug_keeps_the_traceback(tmp_path, monkeypatch):
    missing = str(tmp_path / "missing.yaml")
    result = CliRunner().invoke(app, ["train", "--config", missing, "--debug"])
    assert isinstance(result.exception, FileNotFoundError)  # raised through, typer prints its traceback
    monkeypatch.setenv("SEGRL_DEBUG", "1")
    result = CliRunner().invoke(app, ["train", "--config", missing])
    assert isinstance(result.exception, FileNotFoundError)


def test_real_process_prints_one_line_on_stderr(tmp_path):
    missing = tmp_path / "missing.yaml"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SEGRL_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "segrl.cli", "train", "--config", str(missing)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"segrl train: config file not found: {missing} (for the traceback: --debug or SEGRL_DEBUG=1)"]
