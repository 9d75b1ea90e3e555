"""Greedy generation on a dataset split, formatted exactly as TRL formats prompts in training."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from trl.data_utils import apply_chat_template, prepare_multimodal_messages


def prompt_texts(rows: Sequence[dict], processor) -> list[str]:
    """Chat-templated prompt strings (with image placeholders), as ``GRPOTrainer`` renders them."""
    out = []
    for row in rows:
        messages = prepare_multimodal_messages(row["prompt"], images=row.get("images") or None)
        out.append(apply_chat_template({"prompt": messages}, processor)["prompt"])
    return out


@torch.no_grad()
def generate(model, processor, rows: Sequence[dict], *, max_new_tokens: int = 96) -> list[str]:
    """Greedy completions for ``rows`` (one batch).

    Args:
        model: a ``PreTrainedModel`` for image-text-to-text.
        processor: its processor (left padding is set here for batched generation).
        rows: dataset rows with ``prompt`` and ``images``.
        max_new_tokens: generation budget in tokens.

    Returns:
        One decoded completion per row (special tokens removed).
    """
    tok = getattr(processor, "tokenizer", processor)
    tok.padding_side = "left"
    texts = prompt_texts(rows, processor)
    images = [row.get("images") or None for row in rows]
    kwargs = {"text": texts, "padding": True, "return_tensors": "pt"}
    if any(images):
        kwargs["images"] = images
    inputs = processor(**kwargs).to(model.device)
    out = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
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
