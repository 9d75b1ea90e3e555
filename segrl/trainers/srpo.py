"""SRPO: role-aware token weights for perception and reasoning tokens, on GRPO or SD-GRPO advantages.

Source: "Structured Role-Aware Policy Optimization for Multimodal Reasoning" (arXiv 2605.07274).
Only its abstract is public and there is no code, so everything below the abstract's level is
our reconstruction. What the abstract fixes: the answer is structured into perception (the
visual evidence) and reasoning, then the final answer; the sequence-level GRPO advantage is
kept and SRPO only reweights tokens with positive weights; perception tokens are weighted by
their visual dependency (a self-distilled, on-policy contrast: the policy's own log-probs with
the real and a corrupted image, no external model), reasoning tokens by their consistency with
the generated perception; both signals are normalised against a trajectory-level baseline and
mapped to bounded positive weights with mean 1 per trajectory.

``--algo srpo`` reweights the GRPO advantage (:func:`segrl.trainers.advantages.grpo`);
``--algo sd_srpo`` reweights SD-GRPO's per-segment advantages (:func:`~segrl.trainers.advantages.sd_grpo`).

Every choice we had to make:

1. **Structure and prompt.** ``<perception>...</perception>`` then ``<reasoning>...</reasoning>``
   then the task's own answer lines (``Answer k: ...``, ``Panel k: ...``), unchanged, so the
   segment parser, every per-segment reward and SD-GRPO's segments work as before (rules in
   :mod:`segrl.rewards.srpo_format`). The prompt asks for it through an instruction that the
   trainer appends, at generation time, to the last text block of the user message
   (:func:`add_structure_instruction`, ``srpo_instruction``; ``""`` when the prompts already ask
   or a warm start taught the structure). The dataset on disk is not touched, so one built
   dataset serves ``grpo``, ``sd_grpo``, ``srpo`` and ``sd_srpo``.
2. **Scoring the answer.** Before the answer lines are parsed and scored, both blocks are
   overwritten with spaces (same length, line breaks kept), so a label written inside the
   reasoning is not an answer and character offsets do not move.
3. **Reward.** Exactly the underlying algorithm's: ``R = mean_k r_k + format_weight * format``
   with the task's label format (:func:`segrl.trainers.advantages.compose_rewards`), the same
   terms and weights as the ``grpo`` / ``sd_grpo`` arm it is compared with (the abstract keeps
   GRPO's reward and direction and only reweights tokens; EXPERIMENTS.md "One reward for every
   arm"). The structure is not rewarded: it is taught by the warm start (choice 13) and asked for
   by the instruction; ``srpo/structure_score/mean`` logs
   :func:`segrl.rewards.srpo_format.structure_score` as a diagnostic only. (Before issue 16 the
   format term was ``0.5 * label format + 0.5 * structure``, a reward change.) A structure
   incentive is possible only as a term of every arm's reward: ``structure_weight`` (a
   :class:`~segrl.trainers.config.SegmentGRPOConfig` field, so ``grpo`` reads it too) adds
   ``structure_weight * structure`` to R and scores ``grpo``'s answer lines on the blanked text as
   well, so both arms get the same reward on the same completion.
4. **Roles.** *Perception*: tokens of the perception block's content (tags excluded).
   *Reasoning*: tokens of the reasoning block's content and, with ``srpo_answer_role="reasoning"``
   (default), the answer lines (label and text): the final answer is the end of the reasoning
   chain and the abstract weights no third role; ``"neutral"`` leaves the answer at weight 1.
   *Neutral* (weight 1): the tags, blanks between blocks, EOS, anything else. A token takes the
   role whose character span it overlaps most (the rule of the segment token mapping,
   :func:`segrl.trainers.token_mapping.assign_tokens_to_segments`).
5. **Visual dependency** of perception token t: ``v_t = log pi(y_t | image, y_<t) - log pi(y_t |
   corrupted image, y_<t)`` in nats, both from the current policy (on-policy, self-distilled).
   Corruption (``srpo_corruption``): ``blank`` (default) sets ``pixel_values`` to 0 *after* the
   processor's normalisation, i.e. every pixel becomes the processor's mean colour (a uniform
   grey for CLIP/Qwen), deterministic and the same for every model family (LLaVA image tensors,
   Qwen2.5-VL patch rows); ``noise`` replaces ``pixel_values`` by N(0, 1) samples in normalised
   space (a generator seeded from ``seed`` and the step; the global RNG is not touched, so resume
   stays exact); ``none`` is the identity (a diagnostic: every perception weight is then 1).
6. **Consistency** of reasoning token t: ``c_t = log pi(y_t | y_<t) - log pi(y_t | y_<t without the
   perception block)``. "Without" = the whole perception block, tags included, gets attention
   mask 0 (removed from attention, no re-tokenisation, same tensor shapes); positions are what the
   model derives: LLaVA/Llama keep ``arange`` positions (the gap remains), Qwen2.5-VL computes its
   rope index from the mask (as if the span were absent).
7. **Passes.** Log-probs come from TRL's own ``_get_per_token_logps_and_entropies`` (sampling
   temperature, fused LM head, chunks of ``per_device_train_batch_size``), under ``no_grad``
   with gradient checkpointing off, each pass over the whole local batch: the clean pass
   (reused from ``old_per_token_logps`` when TRL computed it), the corrupted-image pass and the
   perception-removed pass, i.e. at most three extra forward passes per generation batch, none
   when no rollout of the batch has a complete structure (``srpo_force_passes`` runs them anyway,
   for ``segrl bench step``). Their wall time is logged as ``srpo/extra_pass_s``.
8. **Baseline** (``srpo_baseline``). ``shared`` (default): one baseline per trajectory for both
   signals, the mean over all its role tokens, ``b_i = mean_{u in perception or reasoning} s_u``:
   the abstract's "shared trajectory-level baseline" that "unifies" the visual-dependency and
   consistency signals. Both signals are log-prob differences in nats, so one baseline compares
   them directly, and credit moves between the roles: a rollout whose perception tokens depend
   on the image (large ``v``) while its reasoning barely uses the perception (small ``c``) gets
   perception weights above 1 and reasoning weights below 1. ``per_role`` (the ablation, our
   first reading): one baseline per rollout and role, ``b_{i,r} = mean_{u in role r} s_u``, and the
   weights are re-centred per role, so each role keeps mean weight 1 and no credit moves between
   roles. Neither moves credit *between rollouts* (mean 1 per trajectory, as the abstract states);
   that is the advantage's job.
9. **Weights** (:func:`role_weights`), with ``S`` the baseline's token set (both roles, or role r)::

       z_t = tanh((s_t - b) / tau)
       w_t = 1 + alpha * (z_t - mean_{u in S} z_u)              on role tokens; 1 elsewhere

   ``tau = srpo_temperature`` (nats, default 1), ``alpha = srpo_strength`` in [0, 0.5) (default
   0.25). Bounds ``1 - 2 alpha < w < 1 + 2 alpha`` (0.5..1.5 by default), so w > 0 and the sign of
   every advantage is kept; the mean is exactly 1 over ``S`` (the rollout's role tokens, or each
   role's), hence over the rollout's completion tokens. Why this form and not a clipped softmax: closed form, exact
   mean 1 with fixed bounds (clipping a softmax and renormalising moves the bounds and needs
   iterating), bounds that do not depend on how many tokens a role has, and saturation, so one
   outlier token cannot take all the weight. Non-finite signals: NaN counts as 0 (no evidence),
   then signals are clamped to +-50 nats.
10. **Advantages.** ``A'[i, t] = A[i, t] * w[i, t]`` with ``A`` the ``(B, T)`` advantages of the
    underlying estimator. Under ``loss_type="grpo"`` (a per-rollout token mean) ``srpo`` keeps
    each rollout's mean token advantage ``A[i]`` and only moves it between tokens. Under
    ``sd_srpo`` the two blocks lie before the first answer label, outside every segment, so they
    carry the rollout-level (holistic) advantage, reweighted; answer tokens carry their own
    segment's advantage, reweighted.
11. **Missing structure.** A rollout whose structure is not complete (both blocks present with
    non-empty content, each tag once, perception before reasoning:
    :attr:`segrl.rewards.srpo_format.Structure.complete`) gets weights 1, i.e. plain GRPO /
    SD-GRPO for that rollout, counted in ``srpo/structure_missing_frac``.
12. **Distributed.** Weights are per-rollout quantities computed on the rank that holds the
    rollout; nothing is gathered beyond what SD-GRPO gathers.
13. **Tiny CPU model.** A randomly initialised tiny model never writes the tags, so its warm
    start uses structured references (:func:`structured_reference`: the first words of each
    segment's reference as the perception, a fixed sentence as the reasoning). Our scaffolding
    for CPU runs, not part of the method; an instruction-following VLM only needs the instruction.
    The CPU testbed (``configs/srpo_table1_cpu.yaml``, ``make reproduce-srpo``) gives every arm that
    same structured warm start, so the comparison isolates the reweighting;
    :mod:`segrl.eval.srpo_testbed` measures how often the structure is written and whether the
    structured policy sees (the sight gate on structured candidates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from trl.models.utils import disable_gradient_checkpointing

from segrl.prompts import add_structure_instruction
from segrl.rewards.srpo_format import Block, Structure
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.registry import ALGORITHMS, AlgorithmSpec
from segrl.trainers.segment_grpo import ScoredBatch, SegmentGRPOTrainer, policy_inputs
from segrl.trainers.token_mapping import Span, assign_tokens_to_segments, token_char_offsets

UNDERLYING = {"srpo": "grpo", "sd_srpo": "sd_grpo"}
"""SRPO algorithm name -> the estimator whose ``(B, T)`` advantages it reweights."""

CORRUPTIONS = ("blank", "noise", "none")
ANSWER_ROLES = ("reasoning", "neutral")
BASELINES = ("shared", "per_role")
"""Baselines of the role signals (choice 8): ``shared`` (the abstract's), ``per_role`` (the ablation)."""

NEUTRAL, PERCEPTION, REASONING = 0, 1, 2
"""Token roles in the ``(B, T)`` role tensor."""

SIGNAL_CLAMP = 50.0
"""Signals (nats) are clamped to [-50, 50] after NaN -> 0."""

DEFAULT_INSTRUCTION = (
    "First write the visual evidence you read from the image(s) between <perception> and </perception>, "
    "then your reasoning between <reasoning> and </reasoning>, then the answer lines."
)
DEFAULT_REASONING = "In order."
"""Reasoning sentence of the structured warm-start references (:func:`structured_reference`).

A fixed sentence carries no information (the same in every rollout), so it is kept short: the tiny
tokenizers spell unseen words almost letter by letter ("The answers follow from the evidence, in
order.", the sentence before issue 16, took 22 tokens of the docci K = 4 tokenizer, this one takes 4),
and every token of it costs generation time in every rollout."""


# --------------------------------------------------------------------------- prompts and warm start


def structured_reference(reference: str, segment_references: Sequence[Sequence[str]], *,
                         evidence_words: int = 6, reasoning: str = DEFAULT_REASONING) -> str:
    """A warm-start target in SRPO's structure (choice 13 of the module docstring).

    ``<perception>{first evidence_words words of each segment's first reference, joined by "; "}</perception>``,
    a line ``<reasoning>{reasoning}</reasoning>``, then ``reference`` unchanged.

    Raises:
        ValueError: ``evidence_words < 1``.
    """
    if evidence_words < 1:
        raise ValueError(f"evidence_words must be >= 1, got {evidence_words}")
    evidence = "; ".join(" ".join(str(refs[0] if refs else "").split()[:evidence_words])
                         for refs in segment_references)
    return f"<perception>{evidence}</perception>\n<reasoning>{reasoning}</reasoning>\n{reference}"


def srpo_sft_dataset(dataset, *, instruction: str = DEFAULT_INSTRUCTION, evidence_words: int = 6,
                     reasoning: str = DEFAULT_REASONING):
    """``dataset`` (row schema) with structured ``reference`` and, when ``instruction``, instructed prompts.

    Feed it to :func:`segrl.trainers.sft.warm_start`. Kept in memory (nothing is written next
    to the dataset on disk).
    """

    def convert(prompt, refs, reference):
        return {"prompt": add_structure_instruction(prompt, instruction),
                "reference": structured_reference(reference, refs, evidence_words=evidence_words, reasoning=reasoning)}

    return dataset.map(convert, input_columns=["prompt", "segment_references", "reference"], keep_in_memory=True)


def structured_warm_start(cfg, *, model: str | None = None, out: str | None = None, evidence_words: int = 6,
                          reasoning: str = DEFAULT_REASONING) -> dict:
    """``segrl warm-start`` with SRPO-structured references (:func:`srpo_sft_dataset`).

    Uses ``cfg.sft`` (steps, learning rate, batch, seed, vision alignment), ``cfg.data`` and the config's
    ``train.srpo_instruction`` (default :data:`DEFAULT_INSTRUCTION`).

    Args:
        cfg: a :class:`segrl.config.ExperimentConfig`.
        model: start from this model (default ``cfg.model.name_or_path``).
        out: output directory (default ``cfg.sft.output_dir``).
        evidence_words, reasoning: see :func:`structured_reference`.

    Returns:
        :func:`segrl.trainers.sft.warm_start`'s summary.

    Raises:
        FileNotFoundError: the dataset is not built.
    """
    from pathlib import Path

    from datasets import load_from_disk

    from segrl.tasks.base import downscale_images
    from segrl.trainers.sft import warm_start, warm_start_options

    if not Path(cfg.data.path).exists():
        raise FileNotFoundError(f"dataset not found at {cfg.data.path}: run `segrl build-data {cfg.task}` first")
    train = downscale_images(load_from_disk(cfg.data.path)["train"], cfg.data.max_image_side)
    data = srpo_sft_dataset(train, instruction=str(cfg.train.get("srpo_instruction", DEFAULT_INSTRUCTION)),
                            evidence_words=evidence_words, reasoning=reasoning)
    return warm_start(model or cfg.model.name_or_path, data, out or cfg.sft.output_dir, **warm_start_options(cfg.sft))


# --------------------------------------------------------------------------- spans -> token roles


def token_roles(token_spans: Sequence[Span], structure: Structure, answer_spans: Sequence[Span] = (),
                answer_role: str = "reasoning") -> list[int]:
    """Role of each token of one completion: :data:`NEUTRAL`, :data:`PERCEPTION` or :data:`REASONING`.

    Args:
        token_spans: T character spans (:func:`segrl.trainers.token_mapping.token_char_offsets`).
        structure: the completion's structure; an incomplete one gives all-neutral roles.
        answer_spans: the answer segments' spans (``ParsedCompletion.spans``; ``(-1, -1)`` = missing).
        answer_role: ``"reasoning"`` (answer tokens take the reasoning role) or ``"neutral"``.

    Returns:
        T ints; a token takes the role whose span it overlaps most (choice 4).

    Raises:
        ValueError: unknown ``answer_role``.
    """
    if answer_role not in ANSWER_ROLES:
        raise ValueError(f"answer_role must be one of {ANSWER_ROLES}, got {answer_role!r}")
    if not structure.complete:
        return [NEUTRAL] * len(token_spans)
    spans = [structure.perception.content, structure.reasoning.content]
    if answer_role == "reasoning":
        spans += list(answer_spans)
    which = assign_tokens_to_segments(token_spans, spans)
    return [NEUTRAL if k < 0 else (PERCEPTION if k == 0 else REASONING) for k in which]


def block_token_mask(token_spans: Sequence[Span], block: Block | None) -> list[bool]:
    """True for the tokens that belong to ``block`` (tags included; most-overlap rule); all False for None."""
    if block is None:
        return [False] * len(token_spans)
    return [k == 0 for k in assign_tokens_to_segments(token_spans, [block.span])]


def pad_rows(rows: Sequence[Sequence[int]], T: int, fill: int = 0) -> torch.Tensor:
    """``(B, T)`` long tensor of per-completion lists, ``fill`` beyond each length.

    Raises:
        ValueError: a row is longer than T.
    """
    out = torch.full((len(rows), T), fill, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r) > T:
            raise ValueError(f"completion {i} has {len(r)} tokens but the batch is padded to T={T}")
        out[i, : len(r)] = torch.as_tensor([int(x) for x in r], dtype=torch.long)
    return out


# --------------------------------------------------------------------------- signals and weights


def corrupt_pixel_values(pixel_values: torch.Tensor, mode: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The corrupted image input of the visual-dependency pass (choice 5).

    Args:
        pixel_values: the processor's normalised output, any shape (LLaVA ``(N, C, H, W)``,
            Qwen2.5-VL patch rows ``(R, D)``).
        mode: ``blank`` (all 0 = the processor's mean colour), ``noise`` (N(0, 1) samples) or
            ``none`` (identity).
        generator: RNG for ``noise`` (on ``pixel_values``' device).

    Returns:
        A tensor of the same shape, dtype and device (``pixel_values`` itself for ``none``).

    Raises:
        ValueError: unknown mode.
    """
    if mode == "blank":
        return torch.zeros_like(pixel_values)
    if mode == "noise":
        noise = torch.randn(pixel_values.shape, generator=generator, device=pixel_values.device, dtype=torch.float32)
        return noise.to(pixel_values.dtype)
    if mode == "none":
        return pixel_values
    raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {mode!r}")


def role_signal(logps: torch.Tensor, logps_corrupted: torch.Tensor, logps_removed: torch.Tensor,
                roles: torch.Tensor) -> torch.Tensor:
    """Per-token SRPO signal in nats: visual dependency on perception tokens, consistency on reasoning tokens.

    ``s = logps - logps_corrupted`` where ``roles == PERCEPTION`` (choice 5),
    ``s = logps - logps_removed`` where ``roles == REASONING`` (choice 6), 0 elsewhere.
    NaN becomes 0 and the result is clamped to ``[-SIGNAL_CLAMP, SIGNAL_CLAMP]``.

    Args:
        logps, logps_corrupted, logps_removed: ``(B, T)`` per-token log-probs of the completion
            with the real image, the corrupted image, and the perception block removed.
        roles: ``(B, T)`` long.

    Returns:
        ``(B, T)`` float32.

    Raises:
        ValueError: shapes differ.
    """
    shapes = {tuple(t.shape) for t in (logps, logps_corrupted, logps_removed, roles)}
    if len(shapes) != 1:
        raise ValueError(f"role_signal: shapes differ: {sorted(shapes)}")
    lp = logps.float()
    visual = lp - logps_corrupted.float()
    consistency = lp - logps_removed.float()
    s = torch.where(roles == PERCEPTION, visual, torch.where(roles == REASONING, consistency, torch.zeros_like(lp)))
    return torch.nan_to_num(s, nan=0.0, posinf=SIGNAL_CLAMP, neginf=-SIGNAL_CLAMP).clamp(-SIGNAL_CLAMP, SIGNAL_CLAMP)


def role_weights(signal: torch.Tensor, roles: torch.Tensor, *, strength: float = 0.25,
                 temperature: float = 1.0, baseline: str = "shared") -> torch.Tensor:
    """Bounded positive token weights with mean 1 per rollout (choices 8–9).

    ``baseline="shared"`` (SRPO's abstract: one trajectory-level baseline for both signals): for
    each rollout i, over its role tokens S_i (``roles != NEUTRAL``)::

        b     = mean_{u in S_i} signal[i, u]
        z_t   = tanh((signal[i, t] - b) / temperature)
        w_t   = 1 + strength * (z_t - mean_{u in S_i} z_u)

    so credit moves between perception and reasoning tokens. ``baseline="per_role"`` (ablation):
    the same with S the tokens of one role r in {PERCEPTION, REASONING}, so each role keeps mean 1.
    ``w = 1`` on :data:`NEUTRAL` tokens. Hence ``1 - 2*strength < w < 1 + 2*strength`` and, for
    every rollout, ``mean_t w[i, t] = 1`` over any set of positions that contains the role tokens
    whole (e.g. the completion mask). A set S of one token gets weight 1.

    Args:
        signal: ``(B, T)`` float, nats (:func:`role_signal`); must be finite on role tokens.
        roles: ``(B, T)`` long in {0, 1, 2}; padding must be NEUTRAL.
        strength: alpha in [0, 0.5).
        temperature: tau > 0, nats.
        baseline: ``shared`` or ``per_role`` (:data:`BASELINES`).

    Returns:
        ``(B, T)`` float32 weights.

    Raises:
        ValueError: shapes differ, ``strength`` outside [0, 0.5), ``temperature <= 0``, a role
            value outside {0, 1, 2}, an unknown ``baseline``, or a non-finite signal on a role token.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if signal.shape != roles.shape:
        raise ValueError(f"role_weights: signal {tuple(signal.shape)} != roles {tuple(roles.shape)}")
    if not 0.0 <= strength < 0.5:
        raise ValueError(f"strength must be in [0, 0.5) so that weights stay positive, got {strength}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (nats), got {temperature}")
    if roles.numel() and (int(roles.min()) < NEUTRAL or int(roles.max()) > REASONING):
        raise ValueError(f"roles must be in {{0, 1, 2}}, got values in [{int(roles.min())}, {int(roles.max())}]")
    s = signal.float()
    if not torch.isfinite(s[roles != NEUTRAL]).all():
        raise ValueError("role_weights: non-finite signal on a role token (use role_signal, which cleans it)")
    w = torch.ones_like(s)
    sets = [roles != NEUTRAL] if baseline == "shared" else [roles == PERCEPTION, roles == REASONING]
    for m in sets:
        count = m.sum(dim=1, keepdim=True).clamp(min=1)
        base = torch.where(m, s, 0.0).sum(dim=1, keepdim=True) / count
        z = torch.tanh((s - base) / temperature)
        z_mean = torch.where(m, z, 0.0).sum(dim=1, keepdim=True) / count
        w = torch.where(m, 1.0 + strength * (z - z_mean), w)
    return w


# --------------------------------------------------------------------------- config and trainer


@dataclass
class SRPOConfig(SegmentGRPOConfig):
    """Configuration of :class:`SRPOTrainer`: ``SegmentGRPOConfig`` plus SRPO's knobs.

    ``algo`` is ``srpo`` (GRPO advantages reweighted) or ``sd_srpo`` (SD-GRPO's); loss type and
    reward scaling are the underlying estimator's (``grpo``/``group``).

    Raises:
        ValueError: an ``algo`` other than srpo/sd_srpo; ``srpo_strength`` outside [0, 0.5);
            ``srpo_temperature <= 0``; unknown ``srpo_corruption`` / ``srpo_answer_role`` /
            ``srpo_baseline``; and everything ``SegmentGRPOConfig`` refuses.
    """

    algo: str = field(default="srpo", metadata={"help": "srpo (GRPO advantages reweighted) or sd_srpo (SD-GRPO's)."})
    srpo_strength: float = field(
        default=0.25, metadata={"help": "alpha in [0, 0.5): weights lie in (1 - 2 alpha, 1 + 2 alpha); 0 = no reweighting."})
    srpo_temperature: float = field(
        default=1.0, metadata={"help": "tau (nats): w = 1 + alpha * (tanh((s - b) / tau) - mean)."})
    srpo_corruption: str = field(
        default="blank", metadata={"help": "Image corruption of the visual-dependency pass: blank, noise or none."})
    srpo_answer_role: str = field(
        default="reasoning", metadata={"help": "Role of the answer-line tokens: reasoning or neutral (weight 1)."})
    srpo_instruction: str = field(
        default=DEFAULT_INSTRUCTION,
        metadata={"help": "Appended to the last user text of every prompt at generation time; '' = none."})
    srpo_baseline: str = field(
        default="shared",
        metadata={"help": "Baseline of the role signals: shared (one per trajectory for both roles, SRPO's abstract) "
                  "or per_role (one per role, each role keeps mean weight 1: the ablation)."})
    srpo_force_passes: bool = field(
        default=False,
        metadata={"help": "Run the extra forward passes even when no rollout has the structure (benchmarks)."})

    def __post_init__(self) -> None:
        if self.algo not in UNDERLYING:
            raise ValueError(f"SRPOConfig: algo must be one of {sorted(UNDERLYING)}, got {self.algo!r}")
        if not 0.0 <= self.srpo_strength < 0.5:
            raise ValueError(f"srpo_strength must be in [0, 0.5) so that weights stay positive, got {self.srpo_strength}")
        if self.srpo_temperature <= 0:
            raise ValueError(f"srpo_temperature must be > 0 (nats), got {self.srpo_temperature}")
        if self.srpo_corruption not in CORRUPTIONS:
            raise ValueError(f"srpo_corruption must be one of {CORRUPTIONS}, got {self.srpo_corruption!r}")
        if self.srpo_answer_role not in ANSWER_ROLES:
            raise ValueError(f"srpo_answer_role must be one of {ANSWER_ROLES}, got {self.srpo_answer_role!r}")
        if self.srpo_baseline not in BASELINES:
            raise ValueError(f"srpo_baseline must be one of {BASELINES}, got {self.srpo_baseline!r}")
        super().__post_init__()  # the spec (below): estimator, TRL options of the estimator


@dataclass(frozen=True)
class SRPOScoredBatch(ScoredBatch):
    """:class:`~segrl.trainers.segment_grpo.ScoredBatch` plus SRPO's structure of each local completion.

    Attributes:
        structures: ``B_local`` parsed structures (:func:`segrl.rewards.srpo_format.parse_structure`).
        structure_score: ``(B_local,)`` the structure score (a diagnostic, not rewarded: choice 3).
    """

    structures: Sequence[Structure] = ()
    structure_score: torch.Tensor | None = None


class SRPOTrainer(SegmentGRPOTrainer):
    """``SegmentGRPOTrainer`` whose ``(B, T)`` advantages are multiplied by SRPO's role-aware token weights.

    Args: as :class:`~segrl.trainers.segment_grpo.SegmentGRPOTrainer`, with an :class:`SRPOConfig`.

    Logged per step besides the SD-GRPO metrics: ``srpo/structure_missing_frac``,
    ``srpo/structure_score/mean``, ``srpo/{perception,reasoning}_token_frac``,
    ``srpo/visual_dependency/mean`` and ``srpo/perception_consistency/mean`` (nats, over the role's
    tokens), ``srpo/weight/{perception,reasoning}_{min,max}``, ``srpo/weight/std`` (role tokens)
    and ``srpo/extra_pass_s`` (wall time of the extra forward passes).

    Raises:
        TypeError: ``args`` is not an :class:`SRPOConfig`.
    """

    def __init__(self, model, segment_metric, args: SRPOConfig, train_dataset=None, **kwargs):
        if not isinstance(args, SRPOConfig):
            raise TypeError(f"args must be an SRPOConfig, got {type(args).__name__}")
        super().__init__(model=model, segment_metric=segment_metric, args=args, train_dataset=train_dataset, **kwargs)

    def edit_prompt(self, prompt):
        """The prompt with ``srpo_instruction`` appended to its last user text (choice 1)."""
        return add_structure_instruction(prompt, self.args.srpo_instruction)

    # ------------------------------------------------------------------ rewards

    def score_batch(self, inputs, texts, completion_ids) -> SRPOScoredBatch:
        """Score the answer lines on the blanked text (choice 2) with exactly the underlying algorithm's
        reward (choice 3; the structure score is rewarded only with ``structure_weight > 0``, as for every
        arm, else kept for logging); the batch keeps the texts as
        generated (same character positions)."""
        with self.profile(self._mode(), "timing/segment_scoring_s"), self.reward_failure_dump(inputs, texts):
            structures, scores, label_format, structure = self.score_structured(inputs, texts)
            base = self.gathered(texts, completion_ids, scores, label_format,
                                 [x["segment_references"] for x in inputs], structure=structure)
        return SRPOScoredBatch(**{f.name: getattr(base, f.name) for f in fields(ScoredBatch)},
                               structures=structures, structure_score=structure)

    # ------------------------------------------------------------------ advantages

    def token_advantages(self, scored: SRPOScoredBatch, out: dict) -> torch.Tensor:
        """The underlying estimator's ``(B_local, T)`` advantages times SRPO's token weights (choice 10)."""
        advantages = super().token_advantages(scored, out)
        return advantages * self._token_weights(out, scored).to(advantages.device)

    def _token_weights(self, out: dict, scored: SRPOScoredBatch) -> torch.Tensor:
        """``(B, T)`` SRPO weights of this process's rollouts (1 where the structure is missing)."""
        args: SRPOConfig = self.args
        mode = self._mode()
        m = self._metrics[mode]
        completion_ids, completion_mask = out["completion_ids"], out["completion_mask"]
        B, T = completion_ids.shape
        role_rows, remove_rows, complete = [], [], []
        for ids, text, st, p in zip(scored.completion_ids, scored.texts, scored.structures, scored.scores.parsed):
            complete.append(st.complete)
            if not st.complete:
                role_rows.append([])
                remove_rows.append([])
                continue
            offsets = token_char_offsets(self._tokenizer, ids, text)
            role_rows.append(token_roles(offsets, st, p.spans, args.srpo_answer_role))
            remove_rows.append([int(x) for x in block_token_mask(offsets, st.perception)])
        mask = completion_mask.bool().cpu()
        roles = torch.where(mask, pad_rows(role_rows, T, NEUTRAL), NEUTRAL)
        remove = pad_rows(remove_rows, T, 0).bool() & mask

        m["srpo/structure_missing_frac"].append(1.0 - sum(complete) / max(1, B))
        m["srpo/structure_score/mean"].append(scored.structure_score.mean().item())
        n_tokens = mask.sum().clamp(min=1)
        m["srpo/perception_token_frac"].append(((roles == PERCEPTION).sum() / n_tokens).item())
        m["srpo/reasoning_token_frac"].append(((roles == REASONING).sum() / n_tokens).item())
        if not any(complete) and not args.srpo_force_passes:
            return torch.ones(B, T)

        with self.profile(mode, "srpo/extra_pass_s"):
            logps, corrupted, removed = self._contrast_logps(out, remove.to(completion_mask.device))
        roles_d = roles.to(logps.device)
        signal = role_signal(logps, corrupted, removed, roles_d)
        weights = role_weights(signal, roles_d, strength=args.srpo_strength, temperature=args.srpo_temperature,
                               baseline=args.srpo_baseline)
        for role, name, signal_name in ((PERCEPTION, "perception", "visual_dependency"),
                                        (REASONING, "reasoning", "perception_consistency")):
            sel = roles_d == role
            if sel.any():
                m[f"srpo/{signal_name}/mean"].append(signal[sel].mean().item())
                m[f"srpo/weight/{name}_min"].append(weights[sel].min().item())
                m[f"srpo/weight/{name}_max"].append(weights[sel].max().item())
        on_roles = weights[roles_d != NEUTRAL]
        if on_roles.numel() > 1:
            m["srpo/weight/std"].append(on_roles.std().item())
        return weights.cpu()

    def _contrast_logps(self, out: dict, remove: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, T)`` completion log-probs: clean, with the corrupted image, with the perception block removed.

        One no-grad pass over the whole local batch each (choice 7); the clean one is TRL's
        ``old_per_token_logps`` when present. A text-only batch or ``srpo_corruption="none"``
        returns the clean log-probs as the corrupted ones.
        """
        args: SRPOConfig = self.args
        batch = policy_inputs(out)
        prompt_mask, completion_mask = out["prompt_mask"], batch.completion_mask
        input_ids, attention_mask, T, kwargs = batch.input_ids, batch.attention_mask, batch.logits_to_keep, batch.model_kwargs
        batch_size = args.per_device_train_batch_size if self.model.training else args.per_device_eval_batch_size

        def logps_of(mask, **override):
            lp, _, _ = self._get_per_token_logps_and_entropies(
                self.model, input_ids, mask, T, batch_size=batch_size, **{**kwargs, **override})
            return lp

        with torch.no_grad(), disable_gradient_checkpointing(self.model, args.gradient_checkpointing_kwargs):
            clean = out.get("old_per_token_logps")
            if clean is None:
                clean = logps_of(attention_mask)
            if "pixel_values" in kwargs and args.srpo_corruption != "none":
                generator = None
                if args.srpo_corruption == "noise":
                    generator = torch.Generator(device=kwargs["pixel_values"].device)
                    generator.manual_seed(int(args.seed) * 1_000_003 + int(self.state.global_step))
                pv = corrupt_pixel_values(kwargs["pixel_values"], args.srpo_corruption, generator)
                corrupted = logps_of(attention_mask, pixel_values=pv)
            else:
                corrupted = clean
            removed_mask = torch.cat([prompt_mask, completion_mask * (~remove).to(completion_mask.dtype)], dim=1)
            removed = logps_of(removed_mask) if bool(remove.any()) or args.srpo_force_passes else clean
        return clean, corrupted, removed


for _name, _estimator in UNDERLYING.items():
    ALGORITHMS.register_spec(AlgorithmSpec(
        _name, estimator=_estimator, trainer=SRPOTrainer, config=SRPOConfig,
        summary=f"SRPO: role-aware token weights on {_estimator} advantages"))
