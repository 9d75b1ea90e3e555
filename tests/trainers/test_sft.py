"""SFT warm start (TRL SFTTrainer) on the tiny LLaVA: the loss falls and the answer format is learned."""

import json

import pytest
from PIL import Image
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from segrl.eval.generate import generate
from segrl.models import load_policy
from segrl.trainers.sft import to_prompt_completion, warm_start


@pytest.fixture(scope="module")
def data(colour_data):
    return colour_data


@pytest.fixture(scope="module")
def tiny(colour_tiny_model):
    return colour_tiny_model


@pytest.fixture(scope="module")
def warm(colour_warm_model):
    return colour_warm_model


def test_prompt_completion_rows(data):
    pc = to_prompt_completion(data)
    assert sorted(pc.column_names) == ["completion", "images", "prompt"]
    row = pc[1]
    assert len(row["images"]) == 2 and isinstance(row["images"][0], Image.Image)
    assert row["completion"] == [
        {"role": "assistant", "content": [{"type": "text", "text": data[1]["reference"]}]}
    ]
    with pytest.raises(KeyError, match="reference"):
        to_prompt_completion(data.remove_columns("reference"))


def test_collator_masks_prompt_and_keeps_eos(tiny, data):
    _, proc = load_policy(str(tiny))
    collator = DataCollatorForVisionLanguageModeling(proc, completion_only_loss=True)
    batch = collator([dict(r) for r in to_prompt_completion(data).select(range(4))])
    assert batch["pixel_values"].shape == (6, 3, 56, 56)  # 1 + 2 + 1 + 2 images
    for i in range(4):
        target = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert proc.tokenizer.decode(target) == data[i]["reference"] + "</s>"
        assert 3 not in target  # no image token is ever a target


def test_warm_start_lowers_loss_and_learns_format(warm, data):
    out, result = warm
    assert result["steps"] == 60 and len(result["loss_history"]) == 12
    assert result["loss_last"] < 0.5 * result["loss_first"], result["loss_history"]
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    assert json.loads((out / "segrl_sft.json").read_text())["max_steps"] == 60
    model, proc = load_policy(str(out))
    model.eval()
    completions = generate(model, proc, [data[i] for i in range(len(data))], max_new_tokens=12)
    starts = sum(c.startswith("Answer 1:") for c in completions)
    assert starts >= 0.75 * len(data), completions


def test_missing_model_path(tmp_path, data):
    with pytest.raises(FileNotFoundError):
        warm_start(str(tmp_path / "absent"), data, tmp_path / "out", max_steps=1)


def test_every_warm_start_caller_gets_the_config_alignment_settings(monkeypatch, tmp_path):
    """`segrl warm-start` and SRPO's structured warm start pass the same sft section through, alignment included
    (SRPO's used to drop align_steps / align_learning_rate / align_batch_size / freeze_vision)."""
    import inspect
    from pathlib import Path

    from segrl.config import load_config
    from segrl.trainers import sft, srpo

    preset = Path(__file__).resolve().parents[2] / "configs" / "probe_cpu.yaml"
    cfg = load_config(preset, ["sft.align_steps=7", "sft.align_learning_rate=0.02", "sft.align_batch_size=5",
                               "sft.freeze_vision=false", "sft.max_steps=3"])
    opts = sft.warm_start_options(cfg.sft)
    assert opts == {"max_steps": 3, "learning_rate": 3e-3, "per_device_train_batch_size": 8, "seed": 0,
                    "align_steps": 7, "align_learning_rate": 0.02, "align_batch_size": 5, "freeze_vision": False}
    assert set(opts) <= set(inspect.signature(sft.warm_start).parameters)

    seen = {}
    monkeypatch.setattr(sft, "warm_start", lambda model, data, out, **kw: seen.update(kw) or {"ok": True})
    monkeypatch.setattr(srpo, "srpo_sft_dataset", lambda train, **kw: train)
    import datasets

    monkeypatch.setattr(datasets, "load_from_disk", lambda path: {"train": "rows"})
    monkeypatch.setattr("segrl.tasks.base.downscale_images", lambda rows, side: rows)
    cfg.data.path = str(tmp_path)  # exists
    assert srpo.structured_warm_start(cfg, model="m", out=str(tmp_path / "o")) == {"ok": True}
    assert seen == opts
