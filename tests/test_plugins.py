"""Adding a task and an algorithm from one test module (tests/plugins/toy.py): build, validate, train."""

import json

import torch
import yaml
from datasets import load_from_disk
from typer.testing import CliRunner

from tests.plugins import toy


def test_a_toy_task_and_a_toy_algorithm_build_and_train(tmp_path, monkeypatch, colour_warm_model):
    toy.register(monkeypatch)
    import typer

    from segrl.cli import build_data
    from segrl.config import load_config
    from segrl.trainers.train import main

    app = typer.Typer()
    app.add_typer(build_data.build_app(), name="build-data")  # generated from the registry: the toy task is in it
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["build-data", "toy_colours", "--out", str(data), "--size", "10",
                                      "--images-per-row", "2", "--test-fraction", "0.2"])
    assert result.exit_code == 0, result.output
    assert "train: 8 examples, 16 segments" in result.output
    ds = load_from_disk(str(data))
    assert len(ds["test"]) == 2 and all(len(r) == 2 for r in ds["train"]["segment_labels"])

    path, _ = colour_warm_model
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({
        "task": "toy_colours", "output_dir": str(tmp_path / "run"), "data": {"path": str(data)},
        "train": {"algo": "toy_sign", "num_generations": 4, "per_device_train_batch_size": 8, "max_steps": 1,
                  "max_completion_length": 12, "logging_steps": 1, "save_strategy": "no", "beta": 0.0,
                  "temperature": 1.0, "seed": 0},
    }))
    toy.RecordingTrainer.seen = []
    summary = main(load_config(config), model=str(path), resume="off")
    assert summary["steps"] == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["algo"] == "toy_sign"
    (holistic, adv, mask), = toy.RecordingTrainer.seen
    groups = holistic.reshape(-1, 4)
    expected = torch.sign(groups - groups.mean(1, keepdim=True)).reshape(-1)  # the toy estimator, by hand
    assert expected.abs().sum() > 0  # some rollout beat its group
    for i in range(adv.shape[0]):
        assert set(adv[i, mask[i].bool()].tolist()) == {expected[i].item()}
