"""Generation on a dataset split (greedy, or sampled as a paper evaluates), formatted exactly as TRL
formats prompts in training."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from trl.data_utils import apply_chat_template, prepare_multimodal_messages


def prompt_texts(rows: Sequence[dict], processor) -> list[str]:
    """Chat-templated prompt strings (with image placeholders), as ``GRPOTrainer`` renders them."""
    out = []
    for row in rows:
        messages = prepare_multimodal_messages(row["prompt"], images=row.get("images") or None)
        out.append(apply_chat_template({"prompt": messages}, processor)["prompt"])
    return out


@dataclass(frozen=True)
class Sampling:
    """Sampled evaluation settings (``eval.temperature`` / ``eval.top_p`` / ``eval.num_samples`` in a preset).

    Attributes:
        temperature: softmax temperature (> 0), e.g. 0.6 (SAPO, arXiv 2605.01327, Table 7).
        top_p: nucleus mass in (0, 1], e.g. 0.95 (SAPO Table 7).
        num_samples: completions per prompt (>= 1); metrics are averaged over them.
        seed: seeds torch's RNG before the first sampled batch, so a sampled evaluation is repeatable.

    Raises:
        ValueError: a value out of range.
    """

    temperature: float
    top_p: float = 1.0
    num_samples: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"sampling temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling top_p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1:
            raise ValueError(f"sampling num_samples must be >= 1, got {self.num_samples}")


@torch.no_grad()
def generate(model, processor, rows: Sequence[dict], *, max_new_tokens: int = 96,
             sampling: Sampling | None = None) -> list[str]:
    """Completions for ``rows`` (one batch): greedy, or sampled with ``sampling``.

    Args:
        model: a ``PreTrainedModel`` for image-text-to-text.
        processor: its processor (left padding is set here for batched generation).
        rows: dataset rows with ``prompt`` and ``images``.
        max_new_tokens: generation budget in tokens.
        sampling: None for greedy decoding; else ``do_sample=True`` with its ``temperature`` and
            ``top_p`` (``top_k=0``: no top-k cut, as vLLM samples) and ``num_return_sequences=num_samples``
            passed to ``model.generate``.

    Returns:
        The decoded completions (special tokens removed): one per row, or ``num_samples`` per row
        (row-major: row 0's samples first) when sampling.
    """
    tok = getattr(processor, "tokenizer", processor)
    tok.padding_side = "left"
    texts = prompt_texts(rows, processor)
    images = [row.get("images") or None for row in rows]
    kwargs = {"text": texts, "padding": True, "return_tensors": "pt"}
    if any(images):
        kwargs["images"] = images
    inputs = processor(**kwargs).to(model.device)
    decoding = {"do_sample": False}
    if sampling is not None:
        decoding = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p,
                    "top_k": 0, "num_return_sequences": sampling.num_samples}
    out = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
        **decoding,
    )
    new = out[:, inputs["input_ids"].shape[1]:]
    return tok.batch_decode(new, skip_special_tokens=True)


def batched(rows, size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
