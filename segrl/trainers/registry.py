"""Which trainer and config class run each algorithm (``--algo``).

Most algorithms are advantage estimators (:data:`segrl.trainers.advantages.ALGORITHMS`) run by
:class:`~segrl.trainers.segment_grpo.SegmentGRPOTrainer` with
:class:`~segrl.trainers.config.SegmentGRPOConfig`. An algorithm that needs more (SAPO's critic,
SRPO's extra forward passes, Dr. Seg's reward history) registers its own pair here, a subclass
of those two in one module of its own, so adding it touches no other trainer.

Entries are ``"module:attribute"`` strings, imported on first use: reading a config does not
import every trainer (and its dependencies).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from segrl.registry import Registry


@dataclass(frozen=True)
class TrainerSpec:
    """Import paths (``"module:attribute"``) of an algorithm's trainer and config classes."""

    trainer: str = "segrl.trainers.segment_grpo:SegmentGRPOTrainer"
    config: str = "segrl.trainers.config:SegmentGRPOConfig"


DEFAULT = TrainerSpec()

TRAINERS: Registry[TrainerSpec] = Registry("trainer")
"""Algorithms with their own trainer/config; every other algorithm uses :data:`DEFAULT`."""


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def trainer_spec(algo: str) -> TrainerSpec:
    """The :class:`TrainerSpec` of ``algo`` (:data:`DEFAULT` unless registered in :data:`TRAINERS`)."""
    return TRAINERS.get(algo) if algo in TRAINERS else DEFAULT


def trainer_class(algo: str) -> type:
    """The trainer class that runs ``algo``."""
    return _load(trainer_spec(algo).trainer)


def config_class(algo: str) -> type:
    """The config dataclass of ``algo``'s trainer (a ``SegmentGRPOConfig`` subclass)."""
    return _load(trainer_spec(algo).config)


# SRPO (issue 7): role-aware token weights on GRPO (srpo) or SD-GRPO (sd_srpo) advantages.
TRAINERS.add("srpo", TrainerSpec(trainer="segrl.trainers.srpo:SRPOTrainer", config="segrl.trainers.srpo:SRPOConfig"))
TRAINERS.add("sd_srpo", TrainerSpec(trainer="segrl.trainers.srpo:SRPOTrainer", config="segrl.trainers.srpo:SRPOConfig"))

# SAPO (issue 6): entropy segments, segment-level GAE with a critic, segment importance ratios.
TRAINERS.add("sapo", TrainerSpec(trainer="segrl.trainers.sapo:SAPOTrainer", config="segrl.trainers.sapo:SAPOConfig"))

# Dr. Seg (issue 8): Look-to-Confirm + Distribution-Ranked Reward, and its VisionReasoner-reward baseline.
TRAINERS.add("drseg", TrainerSpec(trainer="segrl.trainers.drseg:DrSegTrainer", config="segrl.trainers.drseg:DrSegConfig"))
TRAINERS.add("vision_reasoner", TrainerSpec(trainer="segrl.trainers.drseg:DrSegTrainer",
                                            config="segrl.trainers.drseg:VisionReasonerConfig"))
