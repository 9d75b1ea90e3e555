"""The whole pipeline through the CLI on the real MultiChartQA sample (a few groups, a few steps)."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from segrl.cli import app
from tests.conftest import require

MULTICHART = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multichartqa"


@pytest.fixture(autouse=True)
def real_data():
    require(MULTICHART.is_dir(), f"the real MultiChartQA sample at {MULTICHART}")


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_build_tiny_sft_train_eval_report(tmp_path):
    data, tiny, sft, run_dir = tmp_path / "data", tmp_path / "tiny", tmp_path / "sft", tmp_path / "run"
    out = run("build-data", "multichart", "--source", MULTICHART, "--out", data, "--limit", "6")
    assert "train: 5 examples" in out and "test: 1 examples" in out
    run("make-tiny-model", "--data", data, "--out", tiny, "--vocab-size", "600")
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({
        "task": "multichart",
        "output_dir": str(run_dir),
        "data": {"path": str(data), "max_image_side": 112},
        "sft": {"max_steps": 2, "per_device_train_batch_size": 2},
        "train": {"algo": "sd_grpo", "num_generations": 2, "per_device_train_batch_size": 4, "max_steps": 2,
                  "max_completion_length": 8, "logging_steps": 1, "save_strategy": "no", "beta": 0.0},
    }))
    run("warm-start", "--config", config, "--model", tiny, "--out", sft)
    run("train", "--config", config, "--model", sft)
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert sum("reward" in r for r in log) == 2 and any("segments/K_mean" in r for r in log)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["algo"] == "sd_grpo" and record["task"] == {"name": "multichart", "version": 1}
    assert len(record["data"]["fingerprint"]) == 16 and record["git"]["commit"]

    run("eval", "multichart", "--model", run_dir, "--data", data, "--max-new-tokens", "8", "--max-image-side", "112")
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["n_examples"] == 1 and 0.0 <= metrics["metrics"]["accuracy"] <= 1.0
    assert len((run_dir / "eval" / "predictions.jsonl").read_text().splitlines()) == 1

    out = run("report", run_dir, "--out", tmp_path / "report")
    table = (tmp_path / "report" / "table.md").read_text()
    assert "| sd_grpo |" in table and "Made by: `segrl report" in table and "segrl report" in out


def test_train_rejects_unknown_config_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  num_generatons: 4\n")
    result = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "num_generatons" in result.output and str(config) in result.output
