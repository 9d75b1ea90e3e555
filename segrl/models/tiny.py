"""The embedded offline policy: a tiny LLaVA (CLIP vision tower + Llama LM) built from scratch.

Nothing is downloaded. The tokenizer is a byte-level BPE trained on the task text (so every
string round-trips exactly through encode/decode, and ``return_offsets_mapping`` works); the
weights are random (seeded). A random model earns no reward: warm-start it with
:func:`segrl.trainers.sft.warm_start` before RL.

Sight. The random vision tower is not a pretrained encoder: trained end to end on answers
alone (the old warm start), the policy stayed blind wherever the visual signal is small: a
docci-sized object (a third of a 56-px image) gave image-swap TV 0.0000 and chance accuracy,
the demo's MultiChartQA SFT model 0.0007. :func:`segrl.trainers.sft.warm_start` therefore
runs :func:`segrl.trainers.sft.align_vision` first (the tower and projector learn to predict
the words of each image's segment, the LM untouched), the LLaVA recipe of aligning the
visual features before instruction tuning. The architecture here is unchanged by that stage
(the alignment head is not saved), so RL steps cost the same. ``segrl check-sight`` is the
gate (:mod:`segrl.sight`).

Chat format (what :data:`CHAT_TEMPLATE` renders; ``<s>``/``</s>`` are BOS/EOS)::

    <s>User:
    <image><image>Which colours are shown? ...
    Assistant:
    Answer 1: red
    Answer 2: blue</s>

* a message is ``Role:\\n`` + content; user/system/tool messages end with ``\\n``, assistant
  messages end with EOS (so a prompt–completion pair's completion is ``answer</s>``);
* ``{"type": "image"}`` blocks render as one ``<image>`` each, text blocks as their text,
  string content as is; the processor expands each ``<image>`` to
  ``(image_size // 14) ** 2`` image tokens (CLS dropped: ``vision_feature_select_strategy="default"``);
* ``add_generation_prompt`` appends ``Assistant:\\n``; BOS comes from the template only (the
  tokenizer adds no special tokens itself, so ``add_special_tokens`` makes no difference).

Images of any size are resized (no crop, aspect not kept) to ``image_size × image_size``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

PATCH_SIZE = 14
PAD, BOS, EOS, IMAGE = "<pad>", "<s>", "</s>", "<image>"
SPECIAL_TOKENS = (PAD, BOS, EOS, IMAGE)
"""Given to the BPE trainer first, so their ids are 0, 1, 2, 3."""

ROLE_HEADERS = ("User:\n", "Assistant:\n", "System:\n", "Tool:\n")

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- message['role'] | capitalize + ':\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for block in message['content'] -%}"
    "{%- if block['type'] == 'image' -%}{{- '" + IMAGE + "' -}}"
    "{%- elif block['type'] == 'text' -%}{{- block['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{{- eos_token -}}{%- else -%}{{- '\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:\\n' -}}{%- endif -%}"
)


def image_tokens_per_image(image_size: int) -> int:
    """Image tokens one image expands to: ``(image_size // 14) ** 2`` (16 at 56, 64 at 112)."""
    return (image_size // PATCH_SIZE) ** 2


def _message_texts(messages) -> Iterator[str]:
    for message in messages or []:
        content = message.get("content")
        if isinstance(content, str):
            yield content
        else:
            for block in content or []:
                if block.get("type") == "text" and block.get("text"):
                    yield block["text"]


def texts_from_dataset(dataset_dict) -> Iterator[str]:
    """Every prompt text block and reference of every split, to train the tokenizer on.

    Args:
        dataset_dict: a ``DatasetDict`` (or a single ``Dataset``) in the row schema of
            :mod:`segrl.tasks.base`; only ``prompt`` and ``reference`` are read (images are
            not decoded).

    Yields:
        Strings, split by split, row by row: the prompt's text blocks, then the reference.
    """
    splits = dataset_dict.values() if hasattr(dataset_dict, "values") else [dataset_dict]
    for split in splits:
        cols = [c for c in ("prompt", "reference") if c in split.column_names]
        for row in split.select_columns(cols):
            yield from _message_texts(row.get("prompt"))
            if row.get("reference"):
                yield row["reference"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts`` (plus the chat headers).

    Special tokens ``<pad>`` (0), ``<s>`` (1), ``</s>`` (2), ``<image>`` (3); ``image_token``
    is registered as a named extra special token (``tokenizer.image_token``), and
    :data:`CHAT_TEMPLATE` is set. The vocabulary may be smaller than ``vocab_size`` on a
    small corpus (training stops when no pair repeats).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def corpus() -> Iterator[str]:
        yield from ROLE_HEADERS
        for t in texts:
            if t:
                yield t

    bpe.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE},
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        padding_side="left",
        model_max_length=4096,
    )


def build_tiny_vlm(
    texts: Iterable[str],
    out_dir: str | Path,
    *,
    image_size: int = 56,
    vocab_size: int = 2000,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Build, save and return the directory of a tiny offline LLaVA for ``texts``.

    The model: ``LlavaForConditionalGeneration`` with a CLIP vision tower (hidden 32,
    2 layers, 2 heads, patch 14, input ``image_size``; features of its last layer, CLS
    dropped) and a Llama LM (``hidden_size``, ``num_layers`` layers, 4 heads, MLP
    ``2 × hidden_size``, untied embeddings, vocabulary = the trained tokenizer's).
    About 0.4 M parameters with the defaults and a full 2,000-token vocabulary.

    Args:
        texts: text to train the BPE tokenizer on (e.g. :func:`texts_from_dataset`).
        out_dir: where to save (replaced atomically if it exists).
        image_size: vision input side in pixels; a multiple of 14.
        vocab_size: BPE vocabulary budget (special tokens included).
        hidden_size: LM hidden size; a multiple of 4 (the head count).
        num_layers: LM layers.
        seed: ``torch.manual_seed`` before initialisation (the global RNG is restored after).

    Returns:
        ``out_dir`` resolved. It holds the model, the processor (tokenizer, image processor,
        chat template) and ``segrl_tiny.json`` (these arguments plus derived sizes), and
        reloads with ``AutoModelForImageTextToText`` / ``AutoProcessor`` (or
        :func:`segrl.models.loading.load_policy`) with no network and no torchvision.

    Raises:
        ValueError: ``image_size`` not a positive multiple of 14, ``hidden_size`` not a
            multiple of 4, or non-positive sizes.
    """
    import torch
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from segrl.models.loading import save_policy_atomic

    if image_size <= 0 or image_size % PATCH_SIZE:
        raise ValueError(f"image_size must be a positive multiple of {PATCH_SIZE}, got {image_size}")
    if hidden_size <= 0 or hidden_size % 4:
        raise ValueError(
            f"hidden_size must be a positive multiple of 4 (4 attention heads), got {hidden_size}"
        )
    if num_layers <= 0 or vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"num_layers must be > 0 and vocab_size > {len(SPECIAL_TOKENS)}")

    tokenizer = train_tokenizer(texts, vocab_size)
    ids = {
        name: tokenizer.convert_tokens_to_ids(tok)
        for name, tok in zip(("pad", "bos", "eos", "image"), SPECIAL_TOKENS)
    }
    n_image_tokens = image_tokens_per_image(image_size)

    image_processor = CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_center_crop=False,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        pad_token_id=ids["pad"],
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=ids["image"],
        image_seq_length=n_image_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"]
    )

    meta = {
        "image_size": image_size,
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "seed": seed,
        "actual_vocab_size": len(tokenizer),
        "image_tokens_per_image": n_image_tokens,
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    return save_policy_atomic(model, processor, out_dir, extra_json={"segrl_tiny.json": meta})
