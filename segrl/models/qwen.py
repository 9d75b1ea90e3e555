"""Qwen2.5-VL policies built offline from a config: the papers' architecture at any size, random weights.

Two uses, neither downloads anything:

* :func:`build_qwen25vl_model` at ``size="3b"`` or ``"7b"`` gives a randomly initialised model
  of exactly Qwen2.5-VL-3B/7B-Instruct's shape (the hub ``config.json`` values in
  :data:`QWEN25VL_SIZES`), for throughput and memory benchmarks at paper scale without the
  weights (``segrl bench scale``);
* ``size="tiny"`` is a small Qwen2.5-VL for the same offline pipeline as the tiny LLaVA of
  :mod:`segrl.models.tiny`, where torchvision imports.

The processor is Qwen2.5-VL's own (``Qwen2_5_VLProcessor``: dynamic-resolution patches,
2×2 merge, M-RoPE), with the locally trained byte-level BPE of :mod:`segrl.models.tiny` plus
Qwen's vision markers. transformers 5 makes ``Qwen2_5_VLProcessor`` require a video
processor, and that one needs torchvision, which has no CPU build on this project's machines
(``../shared/VERIFIED.md``): :func:`build_qwen25vl_processor` raises a clear ``ImportError``
there, and the model alone (:func:`build_qwen25vl_model`) works anywhere.

The tokenizer is small (the task text's BPE), while the 3B/7B presets keep the real vocabulary
(151,936 / 152,064 rows) so that parameter count, memory and FLOPs are the real model's; a
random model then mostly samples ids the small tokenizer does not have, which decode to
nothing. That is fine for timing; it is not a model to evaluate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from segrl.models.tiny import CHAT_TEMPLATE, IMAGE, train_tokenizer

VISION_START, VISION_END, VIDEO = "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"
"""Qwen2.5-VL's vision markers; the image placeholder is :data:`segrl.models.tiny.IMAGE`."""

QWEN_CHAT_TEMPLATE = CHAT_TEMPLATE.replace(f"'{IMAGE}'", f"'{VISION_START}{IMAGE}{VISION_END}'")
"""The tiny chat format, with each image wrapped in Qwen's vision start/end markers."""

_VISION_675M = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                   fullatt_block_indexes=[7, 15, 23, 31], window_size=112, tokens_per_second=2)
"""The vision transformer shared by Qwen2.5-VL-3B and -7B (their config.json); only its output width differs."""

QWEN25VL_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    # Qwen/Qwen2.5-VL-3B-Instruct config.json
    "3b": {
        "text": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                     num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rms_norm_eps=1e-6,
                     rope_theta=1_000_000.0, mrope_section=[16, 24, 24], max_position_embeddings=128000),
        "vision": {**_VISION_675M, "out_hidden_size": 2048},
    },
    # Qwen/Qwen2.5-VL-7B-Instruct config.json
    "7b": {
        "text": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                     num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False, rms_norm_eps=1e-6,
                     rope_theta=1_000_000.0, mrope_section=[16, 24, 24], max_position_embeddings=128000),
        "vision": {**_VISION_675M, "out_hidden_size": 3584},
    },
    # Offline tiny: head_dim 16, so mrope_section sums to 8 (VERIFIED.md); vocab = the tokenizer's.
    "tiny": {
        "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=None, tie_word_embeddings=False, rms_norm_eps=1e-6,
                     rope_theta=1_000_000.0, mrope_section=[2, 3, 3], max_position_embeddings=4096),
        "vision": dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                       fullatt_block_indexes=[1], window_size=56, tokens_per_second=2),
    },
}
"""Architecture presets by size name. ``vocab_size=None`` means "the tokenizer's size"."""


def train_qwen_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """The tiny byte-level BPE (:func:`segrl.models.tiny.train_tokenizer`) plus Qwen's vision markers.

    Returns:
        A ``PreTrainedTokenizerFast`` whose ``image_token`` is ``<image>`` (what the processor
        expands to one token per merged patch), with ``<|vision_start|>``, ``<|vision_end|>`` and
        ``<|video_pad|>`` added as special tokens and :data:`QWEN_CHAT_TEMPLATE` as chat template.
    """
    tok = train_tokenizer(texts, vocab_size)
    tok.add_special_tokens({"additional_special_tokens": [VISION_START, VISION_END, VIDEO]})
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def qwen25vl_config(size: str, tokenizer, **overrides):
    """A ``Qwen2_5_VLConfig`` of preset ``size`` whose special-token ids are ``tokenizer``'s.

    Args:
        size: a key of :data:`QWEN25VL_SIZES` (``"tiny"``, ``"3b"``, ``"7b"``).
        tokenizer: from :func:`train_qwen_tokenizer` (any tokenizer that has the four markers).
        overrides: text-config fields to change (e.g. ``num_hidden_layers=2`` for a test).

    Raises:
        ValueError: unknown ``size``, or a tokenizer without Qwen's vision markers.
    """
    from transformers import Qwen2_5_VLConfig

    if size not in QWEN25VL_SIZES:
        raise ValueError(f"unknown Qwen2.5-VL size {size!r}; expected one of {sorted(QWEN25VL_SIZES)}")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (IMAGE, VISION_START, VISION_END, VIDEO)}
    unk = getattr(tokenizer, "unk_token_id", None)
    missing = [t for t, i in ids.items() if i is None or i == unk]
    if missing:
        raise ValueError(f"tokenizer lacks Qwen's vision tokens {missing}; build it with train_qwen_tokenizer")
    text = {**QWEN25VL_SIZES[size]["text"], **overrides}
    vocab = text.pop("vocab_size") or len(tokenizer)
    rope = {"rope_type": "default", "rope_theta": text.pop("rope_theta"), "mrope_section": text.pop("mrope_section")}
    return Qwen2_5_VLConfig(
        text_config=dict(**text, vocab_size=max(vocab, len(tokenizer)), rope_parameters=rope,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(QWEN25VL_SIZES[size]["vision"]),
        image_token_id=ids[IMAGE], video_token_id=ids[VIDEO],
        vision_start_token_id=ids[VISION_START], vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=text["tie_word_embeddings"],
    )


def build_qwen25vl_model(config, *, dtype=None, device=None, seed: int = 0):
    """A randomly initialised ``Qwen2_5_VLForConditionalGeneration`` of ``config``.

    Args:
        config: from :func:`qwen25vl_config`.
        dtype: parameter dtype (e.g. ``torch.bfloat16``); ``None`` = float32.
        device: where to allocate (``"cuda"``, ``"meta"`` to count parameters without memory);
            ``None`` = CPU.
        seed: ``torch.manual_seed`` before initialisation (the global RNG is restored after).

    Returns:
        The model, with a ``generation_config`` whose bos/eos/pad ids are the config's.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    text = config.text_config
    with torch.random.fork_rng(devices=[]), torch.device(device or "cpu"):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype or torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id
    )
    return model


def build_qwen25vl_processor(tokenizer, *, min_pixels: int = 56 * 56, max_pixels: int = 448 * 448):
    """``Qwen2_5_VLProcessor`` around ``tokenizer``, with Qwen's image (and video) processors.

    Args:
        tokenizer: from :func:`train_qwen_tokenizer`.
        min_pixels, max_pixels: the image processor's dynamic-resolution bounds (pixels); an
            image is resized to a multiple of 28 (patch 14 × merge 2) within them.

    Raises:
        ImportError: torchvision does not import (transformers 5's Qwen2.5-VL processor needs
            its video processor, which needs torchvision); the message says so.
    """
    try:
        import torchvision  # noqa: F401
        from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    except Exception as e:  # torchvision's CPU build fails at import with a RuntimeError
        raise ImportError(
            "Qwen2.5-VL's processor needs torchvision (transformers 5 requires its video processor), "
            f"which does not import here ({type(e).__name__}: {e}); use the tiny LLaVA "
            "(segrl make-tiny-model) on this machine"
        ) from e
    pixels = {"min_pixels": min_pixels, "max_pixels": max_pixels}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(), chat_template=tokenizer.chat_template,
    )


def num_parameters(model) -> dict[str, int]:
    """Parameter counts of a Qwen2.5-VL model: ``total``, ``vision``, ``language`` (incl. embeddings), ``embedding``.

    Tied input/output embeddings count once (as ``model.parameters()`` does).
    """
    vision = sum(p.numel() for p in model.model.visual.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "vision": vision, "language": total - vision, "embedding": embedding}
