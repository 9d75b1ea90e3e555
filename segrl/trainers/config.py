"""``SegmentGRPOConfig``: TRL's ``GRPOConfig`` plus the segment-level options, validated against the algorithm's spec."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from trl import GRPOConfig

from segrl.trainers.advantages import EPS, ESTIMATORS, HOLISTIC_ESTIMATORS
from segrl.trainers.registry import ALGORITHMS, AlgorithmSpec

ESTIMATOR_FIELDS = {"alpha": "alpha", "advantage_eps": "eps"}
"""Config fields that only an estimator reads (field -> estimator keyword): refused at a
non-default value when the algorithm's estimator takes no such keyword."""


@dataclass
class SegmentGRPOConfig(GRPOConfig):
    r"""Configuration of :class:`segrl.trainers.segment_grpo.SegmentGRPOTrainer`.

    Every ``GRPOConfig`` field keeps its TRL meaning (``num_generations`` = G, ``beta`` = KL
    coefficient, ``max_completion_length`` ...). The algorithm's
    :class:`~segrl.trainers.registry.AlgorithmSpec` (``algo``) decides the rest: the TRL options it
    fixes (``loss_type="dr_grpo"`` and ``scale_rewards="none"`` for the Dr. variants,
    ``scale_rewards="group"`` otherwise) are filled in when unset and refused when contradicted; a
    field the algorithm does not read is refused at any value but its default.

    > Parameters that control the algorithm

    algo (`str`, *optional*, defaults to `"sd_grpo"`):
        Registered algorithm (:data:`segrl.trainers.registry.ALGORITHMS`).
    estimator (`str` or `None`, *optional*, defaults to `None`):
        Advantage estimator; None: the algorithm's. Only an algorithm whose spec lists
        ``estimators`` (Dr. Seg) lets you choose another.
    alpha (`float`, *optional*, defaults to `0.5`):
        Blend weight of the holistic reward (``blend``): ``r' = alpha * R + (1 - alpha) * r_k``.
    format_weight (`float`, *optional*, defaults to `0.5`):
        Rollout reward ``R = mean_k r_k + format_weight * format(completion)``; every segment's
        reward carries the same term, ``r'_k = r_k + format_weight * format`` (one reward for every
        algorithm: :func:`segrl.trainers.advantages.compose_rewards`).
    structure_weight (`float`, *optional*, defaults to `0.0`):
        Weight of SRPO's structure score (:func:`segrl.rewards.srpo_format.structure_score`: complete
        ``<perception>`` / ``<reasoning>`` blocks before the answer lines) in the rollout terms:
        ``R = mean_k r_k + format_weight * format + structure_weight * structure``, and every segment's
        reward carries the same terms. With a weight > 0 the answer lines are scored on the text with
        both blocks blanked, as SRPO scores them, so ``grpo`` and ``srpo`` get the same reward on the
        same completion (EXPERIMENTS.md, "One reward for every arm"). 0 (the default): no structure
        term, the text is scored as written. Our option, not a paper's: a structure incentive given
        to every arm of an SRPO comparison alike (issue 16), so that the structure SRPO's weights
        need survives RL.
    holistic_metric (`str` or `None`, *optional*, defaults to `None`):
        Name in :data:`segrl.rewards.SEGMENT_REWARDS` of the holistic reward ``H``: that metric on
        the whole answer (the segments' texts joined) against the whole reference
        (:func:`segrl.rewards.scorer.score_holistic`). None: the task's segment metric on the
        joined text. Read by ``blend`` only (refused by other algorithms).
    advantage_eps (`float`, *optional*, defaults to `1e-4`):
        Added to the group std (TRL's value); also the eps of the credit correlation diagnostic.
    dump_advantages (`bool`, *optional*, defaults to `False`):
        Debug: save every step's gathered rewards and advantages per rank under
        ``<output_dir>/advantages/``.

    > TRL parameters whose default depends on the algorithm

    loss_type (`str` or `None`, *optional*, defaults to `None`):
        TRL loss aggregation; None: the algorithm's (``dr_grpo`` for Dr. variants, else ``grpo``).
    scale_rewards (`str` or `None`, *optional*, defaults to `None`):
        TRL reward scaling; segrl computes the advantages itself, so it must equal the
        algorithm's normalisation (``group``, or ``none`` for Dr. variants); None: that value.

    Raises:
        ValueError: unknown ``algo`` (listing every algorithm) or an ``algo`` that runs with another
            config class; an ``estimator`` the algorithm does not allow; a TRL option that
            contradicts the algorithm; a non-default value of a field the algorithm ignores;
            ``alpha`` outside [0, 1]; a negative ``format_weight`` or ``structure_weight``.
    """

    algo: str = field(
        default="sd_grpo",
        metadata={"help": "Registered algorithm (segrl.trainers.registry.ALGORITHMS; `segrl train --help` lists them)."},
    )
    estimator: str | None = field(
        default=None,
        metadata={"help": "Advantage estimator; default: the algorithm's (only Dr. Seg lets you choose another)."},
    )
    alpha: float = field(
        default=0.5,
        metadata={"help": "Blend weight of the holistic reward (algo='blend'): r' = alpha*R + (1-alpha)*r_k."},
    )
    format_weight: float = field(
        default=0.5,
        metadata={"help": "Holistic reward R = mean_k r_k + format_weight * format(completion)."},
    )
    structure_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of SRPO's structure score in R (every arm alike); > 0 also scores the answer "
                  "lines with the <perception>/<reasoning> blocks blanked. 0: no structure term."},
    )
    holistic_metric: str | None = field(
        default=None,
        metadata={"help": "Holistic reward H of blend: this segment-reward name on the whole answer vs the whole "
                  "reference; default: the task's segment metric on the joined text."},
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
    def spec(self) -> AlgorithmSpec:
        """The :class:`~segrl.trainers.registry.AlgorithmSpec` of ``algo``."""
        return ALGORITHMS.get(self.algo)

    def _estimator_spec(self) -> AlgorithmSpec:
        """The spec whose TRL and estimator options apply: ``algo``'s, or its estimator's where it defers."""
        spec = self.spec
        return spec if spec.trl_options is not None or self.estimator is None else ALGORITHMS.get(self.estimator)

    def estimator_options(self) -> dict[str, float]:
        """Keyword options of the estimator call, read from this config (``{"eps": advantage_eps, ...}``)."""
        options = self._estimator_spec().estimator_options or {}
        return {kw: getattr(self, name) for kw, name in options.items()}

    def __post_init__(self) -> None:
        try:
            spec = self.spec
        except KeyError as e:
            raise ValueError(str(e.args[0])) from None
        cls = spec.config_class()
        if not isinstance(self, cls):
            raise ValueError(f"algo={self.algo!r} runs with {cls.__name__}, not {type(self).__name__}")
        allowed = tuple(x for x in (spec.estimator, *spec.estimators) if x is not None)
        if self.estimator is None:
            self.estimator = spec.estimator
        elif self.estimator not in allowed:
            if self.estimator not in ESTIMATORS:
                raise ValueError(f"estimator={self.estimator!r} is not registered; known: {', '.join(ESTIMATORS.names())}")
            raise ValueError(f"algo={self.algo!r} uses estimator {spec.estimator!r}; estimator={self.estimator!r} "
                             f"would be ignored (allowed: {', '.join(allowed) or 'none'})")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.format_weight < 0:
            raise ValueError(f"format_weight must be >= 0, got {self.format_weight}")
        if self.structure_weight < 0:
            raise ValueError(f"structure_weight must be >= 0, got {self.structure_weight}")
        if self.holistic_metric is not None:
            from segrl.rewards import SEGMENT_REWARDS

            if self.estimator not in HOLISTIC_ESTIMATORS:
                raise ValueError(f"holistic_metric={self.holistic_metric!r} is read only by "
                                 f"{', '.join(sorted(HOLISTIC_ESTIMATORS))}; algo={self.algo!r} would ignore it")
            if self.holistic_metric not in SEGMENT_REWARDS:
                raise ValueError(f"holistic_metric={self.holistic_metric!r} is not a segment reward; known: "
                                 f"{', '.join(SEGMENT_REWARDS.names())}")
        self._check_ignored(spec)
        fixed = dict(self._estimator_spec().trl_options or {})
        for name, value in fixed.items():
            current = getattr(self, name)
            if current is None:
                setattr(self, name, value)
            elif current != value:
                raise ValueError(
                    f"algo={self.algo!r} needs {name}={value!r} (segrl computes its advantages and loss that way); "
                    f"got {name}={current!r}, which would be ignored or contradict it"
                )
        if self.loss_type is None:
            self.loss_type = "grpo"
        if self.scale_rewards is None:
            self.scale_rewards = "group"
        super().__post_init__()

    def _check_ignored(self, spec: AlgorithmSpec) -> None:
        """Refuse a non-default value of a field ``spec`` does not read (its ``ignored``, and the
        estimator fields its estimator takes no keyword for)."""
        options = set((self._estimator_spec().estimator_options or {}).values()) if self.estimator else set()
        names = list(spec.ignored) + [f for f in ESTIMATOR_FIELDS if f not in options and f not in spec.ignored]
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        set_ = [n for n in names if n in defaults and getattr(self, n) != defaults[n]]
        if set_:
            values = ", ".join(f"{n}={getattr(self, n)!r}" for n in set_)
            raise ValueError(f"algo={self.algo!r} does not use {', '.join(set_)} (got {values}): leave them at their "
                             "defaults, they would be silently ignored")
