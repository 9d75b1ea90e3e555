"""SFT warm start (TRL SFTTrainer) on the tiny LLaVA: the loss falls and the answer format is learned."""

import json
import random

import pytest
import torch
from datasets import Dataset
from PIL import Image
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from segrl.eval.generate import generate
from segrl.models import build_tiny_vlm, load_policy, texts_from_dataset
from segrl.tasks.base import FEATURES, format_instruction
from segrl.trainers.sft import to_prompt_completion, warm_start

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (240, 230, 20)}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread.

    Two spinning OpenMP threads on a shared 2-core machine were measured up to 100x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def colour_rows(n=16, seed=0, n_images=None, size_range=(40, 300)):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = n_images or 1 + i % 2
        names = [rng.choice(sorted(COLOURS)) for _ in range(k)]
        labels = [f"Answer {j + 1}" for j in range(k)]
        images = [
            Image.new("RGB", (rng.randint(*size_range), rng.randint(*size_range)), COLOURS[c]) for c in names
        ]
        text = f"What is the colour of each image? {format_instruction(labels)}"
        rows.append(
            {
                "id": f"c{i}",
                "task": "colours",
                "images": images,
                "prompt": [
                    {
                        "role": "user",
                        "content": [*[{"type": "image", "text": None}] * k, {"type": "text", "text": text}],
                    }
                ],
                "segment_labels": labels,
                "segment_references": [[c] for c in names],
                "reference": "\n".join(f"{lab}: {c}" for lab, c in zip(labels, names)),
                "meta": "{}",
            }
        )
    return Dataset.from_list(rows, features=FEATURES)


def texts(ds):
    return list(texts_from_dataset(ds))


@pytest.fixture(scope="module")
def data():
    return colour_rows()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data):
    return build_tiny_vlm(texts(data), tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def warm(tmp_path_factory, tiny, data):
    out = tmp_path_factory.mktemp("sft") / "tiny-sft"
    return out, warm_start(str(tiny), data, out, max_steps=60, learning_rate=3e-3, logging_steps=5)


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


@pytest.mark.parametrize("image_size", [56, 112])
def test_sft_speed(tmp_path, capsys, image_size):
    """Measured, not asserted: SFT steps/s, batch of 8 rows with 3 chart-sized images each."""
    ds = colour_rows(8, seed=1, n_images=3, size_range=(600, 800))
    path = build_tiny_vlm(texts(ds), tmp_path / "tiny", image_size=image_size)
    result = warm_start(str(path), ds, tmp_path / "sft", max_steps=12, logging_steps=4)
    assert result["steps"] == 12
    with capsys.disabled():
        print(
            f"\n[sft speed] image_size={image_size} batch=8x3 images, 1 thread: "
            f"{result['steps_per_s']:.2f} steps/s ({result['wall_time_s']:.2f} s for 12 steps)"
        )
