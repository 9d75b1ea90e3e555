"""Shared fixtures: a small colour-naming VLM task, the tiny offline LLaVA, and its SFT warm start.

The colour task is the smallest one a tiny model can learn in seconds: 1–2 solid-colour
images per prompt, one segment (``Answer k: <colour>``) per image. It follows the row
schema of every segrl task, so the trainer, eval and SFT tests run the real code paths.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from PIL import Image

from segrl.tasks.base import FEATURES, format_instruction

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (240, 230, 20)}
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require(condition: bool, what: str) -> None:
    """Fail (never skip) when something CI always has is missing: ``../shared/data``, Java, a pinned
    dependency. A test that skips where CI has what it needs cannot catch anything there."""
    if not condition:
        pytest.fail(f"{what} is missing; CI has it (see README: Set up)", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread; two spinning OpenMP threads on a busy 2-core
    machine were measured 10-100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def colour_rows(n=16, seed=0, n_images=None, size_range=(40, 300)) -> Dataset:
    """``n`` rows of the colour task; row i has ``n_images`` (default 1 + i % 2) images."""
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


@pytest.fixture(scope="session")
def colour_data() -> Dataset:
    return colour_rows()


@pytest.fixture(scope="session")
def colour_tiny_model(tmp_path_factory, colour_data) -> Path:
    from segrl.models import build_tiny_vlm, texts_from_dataset

    return build_tiny_vlm(list(texts_from_dataset(colour_data)), tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="session")
def colour_warm_model(tmp_path_factory, colour_tiny_model, colour_data):
    """(path, result) of a 60-step SFT warm start on the colour task."""
    from segrl.trainers.sft import warm_start

    out = tmp_path_factory.mktemp("sft") / "tiny-sft"
    return out, warm_start(str(colour_tiny_model), colour_data, out, max_steps=60, learning_rate=3e-3,
                           logging_steps=5)


@pytest.fixture
def colour_split(tmp_path, colour_data) -> Path:
    """The colour task as a saved DatasetDict for `segrl.trainers.train.main` (12 train, 4 test rows; meta names
    the multichart task): its directory."""
    import json

    from datasets import DatasetDict

    data = tmp_path / "data"
    rows = colour_data.map(lambda r: {"meta": json.dumps({"task": "multichart"})})
    DatasetDict({"train": rows.select(range(12)), "test": rows.select(range(12, 16))}).save_to_disk(str(data))
    return data
