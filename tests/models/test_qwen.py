"""Qwen2.5-VL built offline from a config: the 3B/7B shapes are the published models', the tiny one runs."""

from __future__ import annotations

import pytest
import torch

from segrl.bench.scale import lm_matrix_params
from segrl.models.qwen import (
    IMAGE,
    VISION_END,
    VISION_START,
    build_qwen25vl_model,
    build_qwen25vl_processor,
    num_parameters,
    qwen25vl_config,
    train_qwen_tokenizer,
)
from segrl.models.tiny import train_tokenizer

TEXTS = ["Panel 1: a red square on the left", "Answer 2: 17.5", "Panel 3: two blue circles"] * 20


@pytest.fixture(scope="module")
def tok():
    return train_qwen_tokenizer(TEXTS, vocab_size=400)


@pytest.mark.parametrize(
    "size, total, vision, lm_matrix",
    [
        # Qwen2.5-VL-3B-Instruct / -7B-Instruct as published: 3.75 B and 8.29 B parameters.
        ("3b", 3_754_622_976, 668_684_288, 3_085_938_688),  # tied: the one matrix is the output projection
        ("7b", 8_292_166_656, 676_550_144, 7_615_616_512 - 152_064 * 3584),  # untied: input embedding left out
    ],
)
def test_paper_sizes_have_the_published_parameter_counts(tok, size, total, vision, lm_matrix):
    model = build_qwen25vl_model(qwen25vl_config(size, tok), device="meta")
    counts = num_parameters(model)
    assert counts["total"] == total
    assert counts["vision"] == vision
    assert lm_matrix_params(model) == lm_matrix


def test_config_takes_the_tokenizers_marker_ids(tok):
    cfg = qwen25vl_config("tiny", tok)
    assert cfg.image_token_id == tok.convert_tokens_to_ids(IMAGE)
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids(VISION_START)
    assert cfg.vision_end_token_id == tok.convert_tokens_to_ids(VISION_END)
    assert cfg.text_config.vocab_size == len(tok)
    assert cfg.text_config.eos_token_id == tok.eos_token_id
    assert qwen25vl_config("3b", tok).text_config.vocab_size == 151_936


def test_bad_size_and_tokenizer_without_markers_are_rejected(tok):
    with pytest.raises(ValueError, match="unknown Qwen2.5-VL size '13b'"):
        qwen25vl_config("13b", tok)
    with pytest.raises(ValueError, match="vision_start"):
        qwen25vl_config("tiny", train_tokenizer(TEXTS, vocab_size=300))


def test_chat_template_wraps_each_image_in_vision_markers(tok):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert f"{VISION_START}{IMAGE}{VISION_END}Describe." in text
    assert text.endswith("Assistant:\n")


def test_tiny_model_forward_and_generate_on_cpu(tok):
    """The tiny preset's M-RoPE sections, window and merge sizes are consistent: a 56x56 image
    (4x4 patches of 14, merged 2x2 into 4 tokens) goes through forward and generate."""
    model = build_qwen25vl_model(qwen25vl_config("tiny", tok), seed=0).eval()
    ids = lambda t: tok.convert_tokens_to_ids(t)  # noqa: E731
    text = tok("Panel 1:", add_special_tokens=False)["input_ids"]
    input_ids = torch.tensor([[ids(VISION_START), *[ids(IMAGE)] * 4, ids(VISION_END), *text]])
    grid = torch.tensor([[1, 4, 4]])
    pixels = torch.randn(16, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixels, image_grid_thw=grid)
        gen = model.generate(input_ids=input_ids, pixel_values=pixels, image_grid_thw=grid, max_new_tokens=3,
                             do_sample=False)
    assert out.logits.shape == (1, input_ids.shape[1], len(tok))
    assert torch.isfinite(out.logits).all()
    assert gen.shape == (1, input_ids.shape[1] + 3)


def test_processor_without_torchvision_says_why(tok):
    try:
        import torchvision  # noqa: F401
    except Exception:
        with pytest.raises(ImportError, match="needs torchvision"):
            build_qwen25vl_processor(tok)
    else:
        proc = build_qwen25vl_processor(tok)
        assert proc.image_token_id == tok.convert_tokens_to_ids(IMAGE)
