"""Algorithms by name (``--algo``): one :class:`AlgorithmSpec` each, registered beside its code.

An algorithm is everything the rest of the suite needs to run it: the advantage estimator it
uses (:data:`segrl.trainers.advantages.ESTIMATORS`), the TRL ``GRPOConfig`` values it fixes, the
config fields it does not use, and its trainer and config classes. Each algorithm's module adds
its spec to :data:`ALGORITHMS` right below its code (``advantages.py`` for the estimator-only
algorithms, ``sapo.py``, ``srpo.py``, ``drseg.py`` for the ones with a trainer of their own); the
config (:class:`segrl.trainers.config.SegmentGRPOConfig`) validates against it and
``segrl train`` picks the classes from it.

Every module of the ``segrl.trainers`` package is imported on the first lookup
(:func:`builtin_modules`), so reading the registry always sees every algorithm and a new algorithm
module registers by being there: no list to edit. A test or a plug-in module outside the package
registers its own with ``ALGORITHMS.register_spec(AlgorithmSpec(...))``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from segrl.registry import Registry


def builtin_modules() -> list[str]:
    """The modules of the ``segrl.trainers`` package, sorted, this one excluded: importing them
    registers the built-in algorithms (each algorithm's spec sits below its code)."""
    import segrl.trainers

    return sorted(f"segrl.trainers.{m.name}" for m in pkgutil.iter_modules(segrl.trainers.__path__)
                  if m.name != "registry")


DEFAULT_TRAINER = "segrl.trainers.segment_grpo:SegmentGRPOTrainer"
DEFAULT_CONFIG = "segrl.trainers.config:SegmentGRPOConfig"
DEFAULT_ESTIMATOR_OPTIONS = MappingProxyType({"eps": "advantage_eps"})


def _frozen(mapping: Mapping[str, object] | None):
    return None if mapping is None else MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm: its estimator, the TRL options it fixes, what it ignores, its classes.

    Attributes:
        name: the ``--algo`` name (``grpo``, ``sd_grpo``, ``sapo`` ...).
        estimator: the :data:`~segrl.trainers.advantages.ESTIMATORS` entry whose advantages the
            trainer uses (default of the config's ``estimator``), or None when the trainer computes
            advantages its own way (SAPO's segment GAE).
        trl_options: TRL ``GRPOConfig`` values the algorithm fixes (e.g. ``loss_type="dr_grpo"``,
            ``scale_rewards="none"``): an unset option gets the value, a different one is refused.
            None: those of the algorithm registered under ``estimator`` (SRPO, Dr. Seg).
        estimator_options: estimator keyword -> config field passed to the estimator (e.g.
            ``{"eps": "advantage_eps", "alpha": "alpha"}``). None: the ``estimator``'s algorithm's.
        ignored: config fields the algorithm does not read; a value other than the field's
            default is refused (``SegmentGRPOConfig`` adds ``alpha`` / ``advantage_eps`` when the
            estimator takes no such option).
        estimators: further estimators the config's ``estimator`` field may select (Dr. Seg:
            any); empty: only ``estimator``.
        trainer: the trainer class, or ``"module:attribute"`` (imported on first use).
        config: the config dataclass (a ``SegmentGRPOConfig`` subclass), or ``"module:attribute"``.
        summary: one line for ``segrl train --help`` and error messages.
    """

    name: str
    estimator: str | None
    trl_options: Mapping[str, object] | None = None
    estimator_options: Mapping[str, str] | None = field(default_factory=lambda: DEFAULT_ESTIMATOR_OPTIONS)
    ignored: tuple[str, ...] = ()
    estimators: tuple[str, ...] = ()
    trainer: type | str = DEFAULT_TRAINER
    config: type | str = DEFAULT_CONFIG
    summary: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trl_options", _frozen(self.trl_options))
        object.__setattr__(self, "estimator_options", _frozen(self.estimator_options))
        object.__setattr__(self, "ignored", tuple(self.ignored))
        object.__setattr__(self, "estimators", tuple(self.estimators))

    def trainer_class(self) -> type:
        """The trainer class (imported on first use)."""
        return self._resolve("trainer")

    def config_class(self) -> type:
        """The config dataclass (imported on first use)."""
        return self._resolve("config")

    def _resolve(self, which: str) -> type:
        if which not in self._cache:
            target = getattr(self, which)
            if isinstance(target, str):
                module, _, attr = target.partition(":")
                target = getattr(importlib.import_module(module), attr)
            self._cache[which] = target
        return self._cache[which]


class AlgorithmRegistry(Registry[AlgorithmSpec]):
    """A :class:`~segrl.registry.Registry` of :class:`AlgorithmSpec` that imports
    :func:`builtin_modules` before its first lookup (``add`` does not, so those modules can register)."""

    def __init__(self) -> None:
        super().__init__("algorithm")
        self._loaded = False

    def add(self, name: str, obj: AlgorithmSpec) -> None:  # type: ignore[override]
        if not isinstance(obj, AlgorithmSpec):
            raise TypeError(f"algorithm {name!r}: expected an AlgorithmSpec, got {type(obj).__name__}")
        if obj.name != name:
            raise ValueError(f"algorithm registered as {name!r} but its spec is named {obj.name!r}")
        super().add(name, obj)

    def register_spec(self, spec: AlgorithmSpec) -> AlgorithmSpec:
        """``ALGORITHMS.register_spec(AlgorithmSpec("name", ...))``: add ``spec`` under its name, return it."""
        self.add(spec.name, spec)
        return spec

    def _load_builtins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in builtin_modules():
            importlib.import_module(module)

    def get(self, name: str) -> AlgorithmSpec:
        self._load_builtins()
        return super().get(name)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return super().__contains__(name)

    def __iter__(self) -> Iterator[str]:
        self._load_builtins()
        return super().__iter__()

    def names(self) -> list[str]:
        self._load_builtins()
        return super().names()


ALGORITHMS = AlgorithmRegistry()
"""Every algorithm ``--algo`` accepts."""


def algorithm(name: str) -> AlgorithmSpec:
    """The spec of ``name``.

    Raises:
        KeyError: unknown ``name``; the message lists every registered algorithm.
    """
    return ALGORITHMS.get(name)


def trainer_class(algo: str) -> type:
    """The trainer class that runs ``algo``."""
    return ALGORITHMS.get(algo).trainer_class()


def config_class(algo: str) -> type:
    """The config dataclass of ``algo`` (a ``SegmentGRPOConfig`` subclass)."""
    return ALGORITHMS.get(algo).config_class()
