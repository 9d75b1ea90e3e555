"""A config subclass for the trainer-registry test (an algorithm with a knob of its own)."""

from dataclasses import dataclass

from segrl.trainers.config import SegmentGRPOConfig


@dataclass
class ToyConfig(SegmentGRPOConfig):
    toy_knob: int = 0

    def __post_init__(self) -> None:
        self.algo = "grpo"  # run as GRPO: the toy name is not an estimator
        super().__post_init__()
