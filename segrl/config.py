"""Experiment configs: one YAML per experiment, typed by dataclasses.

A YAML file holds values only; the dataclasses below (and TRL's ``GRPOConfig`` fields via
:class:`segrl.trainers.config.SegmentGRPOConfig`) give them types. Unknown keys and wrong
types are errors naming the file and the key. ``--set section.key=value`` overrides apply
after the file is read.

Sections: ``task``, ``data``, ``model``, ``sft``, ``train`` (SegmentGRPOConfig fields),
``eval``, and ``output_dir``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and key."""


@dataclass
class DataConfig:
    source: str = "../shared/data/multichartqa"  # raw source directory (task-specific layout)
    path: str = "data/multichart"  # where `segrl build-data` writes the DatasetDict
    seed: int = 0
    test_fraction: float = 0.2
    limit: int | None = None
    max_image_side: int | None = None  # downscale images in memory before the processor (CPU speed-up)


@dataclass
class TinyModelConfig:
    image_size: int = 56
    vocab_size: int = 2000
    hidden_size: int = 64
    num_layers: int = 2
    seed: int = 0


@dataclass
class LoraSection:
    """``model.lora``: train a LoRA adapter (PEFT) instead of every weight, through TRL's ``peft_config``.

    LoRA (Hu et al. 2021, eq. 3; the alpha / r scaling of its §4.1): a frozen weight ``W0`` of a targeted linear layer is used as
    ``W0 + (alpha / r) · B A`` with ``A`` of shape ``(r, d_in)`` and ``B`` of shape ``(d_out, r)``,
    ``B`` initialised to zero (so the adapted model starts exactly as its base).

    Fields:
        r (`int`, defaults to `16`): rank of ``A`` and ``B``; > 0.
        alpha (`float`, defaults to `32.0`): scaling numerator (the update is scaled by ``alpha / r``); > 0.
        dropout (`float`, defaults to `0.05`): dropout on the adapter's input, in [0, 1).
        target_modules (`list[str]` or `str`, defaults to `"all-linear"`): PEFT's ``target_modules``:
            module-name suffixes (``[q_proj, v_proj]``), one regular expression matched against
            full module names, or ``"all-linear"`` (every linear layer but the output head).

    Raises:
        ConfigError: a value out of range or of the wrong type, naming ``model.lora.<field>``.
    """

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r <= 0:
            raise ConfigError(f"model.lora.r: expected a positive integer, got {self.r!r}")
        if not self.alpha > 0:
            raise ConfigError(f"model.lora.alpha: expected a number > 0, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.lora.dropout: expected a number in [0, 1), got {self.dropout!r}")
        tm = self.target_modules
        ok = (isinstance(tm, str) and tm.strip()) or (
            isinstance(tm, list) and tm and all(isinstance(m, str) and m.strip() for m in tm))
        if not ok:
            raise ConfigError("model.lora.target_modules: expected a non-empty list of module names, a regular "
                              f"expression or 'all-linear', got {tm!r}")

    def peft_config(self):
        """The ``peft.LoraConfig`` of this section (``bias="none"``, no task type: the VLM is wrapped as is)."""
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, bias="none")


@dataclass
class ModelConfig:
    name_or_path: str = "models/tiny"  # a local path or a hub id (e.g. Qwen/Qwen2.5-VL-3B-Instruct)
    dtype: str | None = None  # "bfloat16" on GPUs; None = the checkpoint's
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)  # used by `segrl make-tiny-model`
    lora: LoraSection | None = None  # train a LoRA adapter (PEFT) on the frozen policy; None = full fine-tuning
    freeze_vision: bool = False  # RL trains the language model only: vision tower + projector frozen
    # (segrl.models.loading.freeze_vision; EasyR1's freeze_vision_tower). False = every weight trains, as before


@dataclass
class SFTSection:
    enabled: bool = True  # warm start before RL (a random tiny model earns no reward)
    output_dir: str = "models/tiny-sft"
    max_steps: int = 300
    learning_rate: float = 1e-3
    per_device_train_batch_size: int = 8
    seed: int = 0
    align_steps: int = 400  # vision alignment steps before SFT (segrl.trainers.sft.align_vision); 0 = blind old default
    align_learning_rate: float = 1e-2
    align_batch_size: int = 32
    freeze_vision: bool = True  # vision tower frozen during SFT (LLaVA stage 2)


@dataclass
class EvalSection:
    split: str = "test"
    max_new_tokens: int = 96
    batch_size: int = 8
    limit: int | None = None
    # Sampled evaluation beside the greedy one (`segrl eval --config`): None = greedy only.
    temperature: float | None = None  # e.g. 0.6 (SAPO Table 7)
    top_p: float = 1.0  # e.g. 0.95 (SAPO Table 7)
    num_samples: int = 1  # completions per prompt; metrics are averaged over them


@dataclass
class ExperimentConfig:
    task: str = "multichart"
    output_dir: str = "runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sft: SFTSection = field(default_factory=SFTSection)
    train: dict[str, Any] = field(default_factory=dict)  # SegmentGRPOConfig fields
    eval: EvalSection = field(default_factory=EvalSection)

    def grpo_config(self, **overrides):
        """Build the typed trainer config of the ``train`` section: the config class of ``train.algo``'s
        :class:`~segrl.trainers.registry.AlgorithmSpec` (:class:`SegmentGRPOConfig` or a subclass).

        Raises:
            ConfigError: an unknown ``train.algo`` (listing every algorithm), an unknown ``train``
                key, or a value TRL/segrl rejects.
        """
        import torch

        from segrl.trainers.registry import config_class

        defaults: dict[str, Any] = {"output_dir": self.output_dir, "report_to": "none"}
        if not torch.cuda.is_available():  # CPU: TRL's bf16 default needs a GPU
            defaults.update(use_cpu=True, bf16=False)
        values = {**defaults, **self.train, **overrides}
        try:
            cls = config_class(str(values.get("algo", "sd_grpo")))
        except KeyError as e:
            raise ConfigError(f"train.algo: {e.args[0]}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"train: unknown key(s) {unknown} (not {cls.__name__} / GRPOConfig fields)")
        values = _typed_train_values(cls, values)
        try:
            return cls(**values)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"train: {e}") from e


def _typed_train_values(cls, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against ``cls``'s field annotations (bool, int, float, str and unions of them).

    TRL's dataclasses do not check types themselves (``bf16: "off"`` would be truthy), so every
    value whose annotation :func:`_coerce` understands is checked here; others pass unchanged.

    Raises:
        ConfigError: naming ``train.<key>``, the expected type and the value.
    """
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: nothing to check against
        return values
    return {k: _coerce(v, hints[k], f"train.{k}") if k in hints else v for k, v in values.items()}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if tp is Any or origin is dict:
        if origin is dict and not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _build(cls, values: dict, where: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


class _YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2's booleans: only ``true``/``false`` (any case) are bools.

    YAML 1.1 (PyYAML's default) also reads ``no``/``yes``/``on``/``off`` as booleans, so
    ``--set train.save_strategy=no`` would reach TRL as ``False`` and fail far from the cause;
    here it stays the string ``"no"``.
    """


_BOOL = "tag:yaml.org,2002:bool"
_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|false)$", re.IGNORECASE), list("tTfF"))


def _load_yaml(text: str) -> Any:
    """Parse YAML with :class:`_YamlLoader` (YAML 1.2 booleans)."""
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


def _parse_scalar(text: str) -> Any:
    return _load_yaml(text)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML scalars) to a raw config dict.

    Raises:
        ConfigError: an override without ``=``.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotted, text = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {k!r} is not a section")
        node[keys[-1]] = _parse_scalar(text)
    return raw


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config (or the defaults when ``path`` is None) and apply overrides.

    Raises:
        ConfigError: unreadable YAML, unknown keys, wrong types — naming the file and key;
            the ``train`` section is checked against ``SegmentGRPOConfig`` here too.
        FileNotFoundError: ``path`` does not exist.
    """
    raw: dict = {}
    where = "defaults"
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file not found: {p}")
        where = str(p)
        try:
            raw = _load_yaml(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
    raw = apply_overrides(raw, list(overrides or []))
    try:
        cfg = _build(ExperimentConfig, raw, "")
        cfg.grpo_config()  # type-check the train section now, before any compute is spent
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return cfg


def config_to_dict(cfg: ExperimentConfig) -> dict:
    """Plain-dict form (for ``run.json`` and logs)."""
    return dataclasses.asdict(cfg)
