"""``SegmentGRPOConfig``: TRL's ``GRPOConfig`` plus the segment-level options."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from segrl.trainers.advantages import ALGORITHM_TRL_OPTIONS, ALGORITHMS, EPS


@dataclass
class SegmentGRPOConfig(GRPOConfig):
    """Configuration of :class:`segrl.trainers.segment_grpo.SegmentGRPOTrainer`.

    Every ``GRPOConfig`` field keeps its TRL meaning (``num_generations`` = G, ``beta`` = KL
    coefficient, ``max_completion_length`` ...). ``loss_type`` and ``scale_rewards`` default
    to what the algorithm needs (``dr_grpo``/``none`` for the Dr. variants, ``grpo``/``group``
    otherwise).

    Raises:
        ValueError: unknown ``algo``; ``alpha`` outside [0, 1]; a negative ``format_weight``;
            a ``loss_type`` that contradicts a Dr. algorithm.
    """

    algo: str = field(
        default="sd_grpo",
        metadata={"help": f"Advantage estimator: one of {', '.join(ALGORITHMS.names())}."},
    )
    alpha: float = field(
        default=0.5,
        metadata={"help": "Blend weight of the holistic reward (algo='blend'): r' = alpha*R + (1-alpha)*r_k."},
    )
    format_weight: float = field(
        default=0.5,
        metadata={"help": "Holistic reward R = mean_k r_k + format_weight * format(completion)."},
    )
    advantage_eps: float = field(default=EPS, metadata={"help": "Added to the group std (TRL uses 1e-4)."})
    dump_advantages: bool = field(
        default=False,
        metadata={"help": "Debug: save every step's gathered rewards and advantages per rank under "
                  "<output_dir>/advantages/ (checks that all ranks agree)."},
    )
    loss_type: str | None = field(  # type: ignore[assignment]
        default=None,
        metadata={"help": "TRL loss type; default: the algorithm's (grpo, or dr_grpo for Dr. variants)."},
    )
    scale_rewards: str | None = field(  # type: ignore[assignment]
        default=None,
        metadata={"help": "TRL reward scaling for its own logging; default: the algorithm's."},
    )

    @property
    def estimator(self) -> str:
        """The registered advantage estimator (:data:`ALGORITHMS`) behind ``algo``: ``algo`` itself here.

        A config whose algorithm wraps an estimator (SRPO reweights ``grpo``/``sd_grpo``; Dr. Seg
        changes the reward of one) overrides this; the checks below and the trainer use it.
        """
        return self.algo

    def __post_init__(self) -> None:
        if self.estimator not in ALGORITHMS:
            raise ValueError(f"algo={self.algo!r} is not registered; known: {', '.join(ALGORITHMS.names())}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.format_weight < 0:
            raise ValueError(f"format_weight must be >= 0, got {self.format_weight}")
        required = ALGORITHM_TRL_OPTIONS.get(self.estimator, {})
        if self.loss_type is None:
            self.loss_type = str(required.get("loss_type", "grpo"))
        elif self.estimator.endswith("dr_grpo") and self.loss_type != "dr_grpo":
            raise ValueError(
                f"algo={self.algo!r} is Dr. GRPO, whose loss is loss_type='dr_grpo'; got loss_type={self.loss_type!r}"
            )
        if self.scale_rewards is None:
            self.scale_rewards = str(required.get("scale_rewards", "group"))
        super().__post_init__()
