"""A config subclass for the trainer-registry test (an algorithm with a knob of its own)."""

from dataclasses import dataclass

from segrl.trainers.config import SegmentGRPOConfig


@dataclass
class ToyConfig(SegmentGRPOConfig):
    toy_knob: int = 0
