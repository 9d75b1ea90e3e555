"""Load a policy (model + processor) from a local directory or a hub id, and save one atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Accepted ``dtype`` strings of :func:`load_policy` (``None`` = ``"auto"``: the checkpoint's dtype)."""


def _looks_local(name_or_path: str) -> bool:
    """Whether ``name_or_path`` means a local path rather than a hub id ``owner/name``.

    Local when it starts with ``.``, ``/`` or ``~``, exists, has more than one ``/`` (a hub id
    has at most one), or some ancestor directory of it exists here (``models/tiny`` when
    ``models/`` exists).
    """
    if name_or_path.startswith((".", "/", "~")) or os.sep != "/" and os.sep in name_or_path:
        return True
    p = Path(name_or_path)
    if p.exists() or name_or_path.count("/") > 1:
        return True
    return any(parent.exists() for parent in p.parents if str(parent) not in ("", "."))


def resolve_local(name_or_path: str) -> str:
    """``name_or_path`` unchanged for a hub id, or the expanded local directory.

    Raises:
        FileNotFoundError: a local path (see :func:`_looks_local`) that does not exist, or a
            directory without ``config.json`` (not a saved model); the message names it.
    """
    if not _looks_local(name_or_path):
        return name_or_path
    p = Path(name_or_path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"model path not found: {name_or_path} (build one with `segrl make-tiny-model`, or pass a hub id)"
        )
    if not (p / "config.json").is_file() and not (p / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(f"not a saved model (no config.json or {ADAPTER_CONFIG}): {name_or_path}")
    return str(p.resolve())


ADAPTER_CONFIG = "adapter_config.json"
"""A directory holding this file (and no ``config.json``) is a saved PEFT adapter: :func:`load_policy`
loads its base model (``base_model_name_or_path``) and puts the adapter on it."""


def _adapter_base(adapter_dir: Path) -> str:
    """The base model of a saved adapter: its ``base_model_name_or_path``, resolved if local.

    Raises:
        FileNotFoundError: the adapter names no base, or a local base that does not exist.
    """
    meta = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
    base = meta.get("base_model_name_or_path")
    if not base:
        raise FileNotFoundError(f"{adapter_dir / ADAPTER_CONFIG} names no base_model_name_or_path")
    try:
        return resolve_local(base)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"the base model of adapter {adapter_dir} is missing: {e}") from None


def load_policy(name_or_path: str, *, dtype: str | None = None) -> tuple[Any, Any]:
    """Load an image-text-to-text model and its processor, ready for batched generation.

    Works the same for a local directory (e.g. the tiny LLaVA of :mod:`segrl.models.tiny`)
    and a hub id (e.g. ``Qwen/Qwen2.5-VL-3B-Instruct``); nothing is special-cased. A local
    directory that holds a PEFT adapter (``adapter_config.json``, the output of a ``model.lora``
    run) loads as that adapter on its base model (``base_model_name_or_path``), unmerged.

    Args:
        name_or_path: local directory or hub id.
        dtype: ``"bfloat16"``, ``"float16"``, ``"float32"``, ``"auto"`` or ``None`` (= the
            checkpoint's dtype).

    Returns:
        ``(model, processor)``: the ``AutoModelForImageTextToText`` model (a ``peft.PeftModel``
        around it for an adapter directory; train mode off,
        as ``from_pretrained`` leaves it) and the ``AutoProcessor``. The processor's tokenizer
        has a pad token (its EOS if it had none) and ``padding_side="left"``; the model's
        ``generation_config.pad_token_id`` is set when missing.

    Raises:
        FileNotFoundError: ``name_or_path`` looks like a local path that does not exist, or an
            adapter's base model is missing.
        ValueError: unknown ``dtype``.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    key = "auto" if dtype is None else str(dtype).removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)} or None")
    source = resolve_local(name_or_path)
    adapter = Path(source) if _looks_local(name_or_path) and not (Path(source) / "config.json").is_file() else None
    base = _adapter_base(adapter) if adapter is not None else source
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=DTYPES[key])
    if adapter is not None:  # a LoRA run's output: the adapter on its frozen base, unmerged (exactly as trained)
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    processor_dir = adapter if adapter is not None and (adapter / "processor_config.json").is_file() else base
    processor = AutoProcessor.from_pretrained(processor_dir)
    tok = getattr(processor, "tokenizer", processor)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = tok.pad_token_id
    return model, processor


def save_policy_atomic(
    model, processor, out_dir: str | os.PathLike, *, extra_json: dict[str, Any] | None = None
) -> Path:
    """``save_pretrained`` model + processor into ``out_dir`` through a temporary sibling and a rename.

    A crash mid-write leaves ``out_dir`` as it was; an existing ``out_dir`` is replaced only
    once the new one is complete.

    Args:
        model: a ``PreTrainedModel``.
        processor: its processor (or tokenizer).
        out_dir: final directory.
        extra_json: ``{file name: JSON-serialisable object}`` written next to the model.

    Returns:
        The final directory (resolved).
    """
    out = Path(out_dir).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(str(tmp / "model"))
        processor.save_pretrained(str(tmp / "model"))
        for name, obj in (extra_json or {}).items():
            (tmp / "model" / name).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        (tmp / "model").rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


VISION_MODULES = ("vision_tower", "multi_modal_projector", "visual")
"""Submodules :func:`freeze_vision` freezes: LLaVA's ``vision_tower`` and ``multi_modal_projector``,
Qwen2/2.5-VL's ``visual`` (its ViT with the patch merger, the projector of that family)."""


def freeze_vision(model) -> int:
    """Freeze every vision submodule of ``model`` (:data:`VISION_MODULES`) in place, so that RL trains the
    language model only.

    EasyR1's ``worker.actor.model.freeze_vision_tower`` does the same for Qwen2.5-VL (its ``visual``
    holds the merger). Our tiny LLaVA's vision features come from a short alignment and SFT on a few
    hundred images (:func:`segrl.trainers.sft.align_vision`); ``model.freeze_vision`` keeps RL from moving
    them (the grounding preset's choice, ``results/drseg/NOTES.md``).

    Args:
        model: an image-text-to-text model, bare or inside its ``.model`` (LLaVA, Qwen2.5-VL).

    Returns:
        The number of parameters this call froze (0 when they already were).

    Raises:
        ValueError: the model has none of :data:`VISION_MODULES` (a text-only model, or an architecture
            this helper does not know): freezing nothing silently would train what the config says not to.
    """
    frozen = 0
    for owner in (model, getattr(model, "model", None)):
        for name in VISION_MODULES:
            module = getattr(owner, name, None) if owner is not None else None
            if isinstance(module, torch.nn.Module):
                for p in module.parameters():
                    if p.requires_grad:
                        p.requires_grad_(False)
                        frozen += p.numel()
    if frozen == 0 and not any(getattr(o, n, None) is not None for o in (model, getattr(model, "model", None))
                               if o is not None for n in VISION_MODULES):
        raise ValueError(f"model.freeze_vision: {type(model).__name__} has none of the vision modules "
                         f"{', '.join(VISION_MODULES)}")
    return frozen
