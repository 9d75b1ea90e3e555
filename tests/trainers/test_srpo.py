"""SRPO: role-aware token weights (pure functions against hand values and a loop), config, and two tiny runs."""

import math

import pytest
import torch
from training_utils import text_length

from segrl.config import ExperimentConfig
from segrl.rewards.srpo_format import blank_blocks, parse_structure
from segrl.segments import parse_segments
from segrl.trainers import registry
from segrl.trainers.srpo import (
    DEFAULT_INSTRUCTION,
    NEUTRAL,
    PERCEPTION,
    REASONING,
    SRPOConfig,
    SRPOTrainer,
    add_structure_instruction,
    block_token_mask,
    corrupt_pixel_values,
    pad_rows,
    role_signal,
    role_weights,
    structured_reference,
    token_roles,
)

# --------------------------------------------------------------------------- weights


def test_shared_baseline_moves_credit_between_roles_by_hand():
    # Issue 16's case: perception tokens depend on the image by 5 nats each, the reasoning does not use
    # the perception at all (0 nats). Shared trajectory baseline b = 2.5, z = +-tanh(2.5) = +-0.986614,
    # mean z = 0 -> w = 1 +- 0.25 * 0.986614: the credit moves to the perception tokens.
    roles = torch.tensor([[PERCEPTION, PERCEPTION, REASONING, REASONING, NEUTRAL]])
    signal = torch.tensor([[5.0, 5.0, 0.0, 0.0, 3.0]])
    w = role_weights(signal, roles, strength=0.25, temperature=1.0)
    assert w[0].tolist() == pytest.approx([1.2466535, 1.2466535, 0.7533465, 0.7533465, 1.0], abs=1e-6)
    # The per-role ablation re-centres each role: every weight 1.0 (no credit can move).
    assert torch.equal(role_weights(signal, roles, baseline="per_role"), torch.ones(1, 5))
    # 3 perception, 2 reasoning tokens: b = (1 + 0 - 1 + 2 + 2) / 5 = 0.8, z = tanh(0.2), tanh(-0.8),
    # tanh(-1.8), tanh(1.2), tanh(1.2), mean z = 0.0507684; w = 1 + 0.25 * (z - mean z).
    roles = torch.tensor([[PERCEPTION, PERCEPTION, PERCEPTION, REASONING, REASONING, NEUTRAL, NEUTRAL]])
    signal = torch.tensor([[1.0, 0.0, -1.0, 2.0, 2.0, 7.0, -7.0]])
    w = role_weights(signal, roles, strength=0.25, temperature=1.0)
    assert w[0].tolist() == pytest.approx([1.0366517, 0.8212987, 0.7506067, 1.1957215, 1.1957215, 1.0, 1.0],
                                          abs=1e-6)
    assert w[0, :5].mean().item() == pytest.approx(1.0, abs=1e-6)  # mean 1 over the trajectory's role tokens
    assert w[0, :3].mean().item() < 1 < w[0, 3:5].mean().item()  # but not per role
    with pytest.raises(ValueError, match="baseline"):
        role_weights(signal, roles, baseline="group")


def test_role_weights_per_role_hand_computed():
    # One rollout: 3 perception tokens, 2 reasoning tokens, 2 neutral tokens.
    roles = torch.tensor([[PERCEPTION, PERCEPTION, PERCEPTION, REASONING, REASONING, NEUTRAL, NEUTRAL]])
    signal = torch.tensor([[1.0, 0.0, -1.0, 2.0, 2.0, 7.0, -7.0]])
    w = role_weights(signal, roles, strength=0.25, temperature=1.0, baseline="per_role")
    # perception: b = 0, z = tanh(1), 0, -tanh(1), mean 0 -> 1 +- 0.25 * 0.761594
    # reasoning: constant signal -> z = 0 -> 1; neutral -> 1 whatever the signal
    expected = [1.1903985, 1.0, 0.8096015, 1.0, 1.0, 1.0, 1.0]
    assert w[0].tolist() == pytest.approx(expected, abs=1e-6)

    # Asymmetric: signals (0, 0, 3), b = 1, z = tanh(-1), tanh(-1), tanh(2), mean -0.186387.
    w = role_weights(torch.tensor([[0.0, 0.0, 3.0]]), torch.full((1, 3), REASONING), strength=0.25)
    assert w[0].tolist() == pytest.approx([0.8561982, 0.8561982, 1.2876036], abs=1e-6)
    # tau = 2, alpha = 0.4: signals (4, 0), b = 2, z = tanh(1), tanh(-1)
    w = role_weights(torch.tensor([[4.0, 0.0]]), torch.full((1, 2), PERCEPTION), strength=0.4, temperature=2.0)
    assert w[0].tolist() == pytest.approx([1.3046377, 0.6953623], abs=1e-6)


def loop_weights(signal, roles, strength, temperature, baseline):
    """Plain-loop reference of role_weights."""
    B, T = len(signal), len(signal[0])
    out = [[1.0] * T for _ in range(B)]
    sets = [(PERCEPTION, REASONING)] if baseline == "shared" else [(PERCEPTION,), (REASONING,)]
    for i in range(B):
        for members in sets:
            idx = [t for t in range(T) if roles[i][t] in members]
            if not idx:
                continue
            b = sum(signal[i][t] for t in idx) / len(idx)
            z = {t: math.tanh((signal[i][t] - b) / temperature) for t in idx}
            zm = sum(z.values()) / len(idx)
            for t in idx:
                out[i][t] = 1 + strength * (z[t] - zm)
    return out


@pytest.mark.parametrize("baseline", ["shared", "per_role"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_weights_positive_bounded_mean_one_and_never_flip_a_sign(seed, baseline):
    g = torch.Generator().manual_seed(seed)
    B, T = 6, 24
    roles = torch.randint(0, 3, (B, T), generator=g)
    roles[0] = NEUTRAL  # a rollout without the structure
    roles[1, :] = PERCEPTION  # a rollout of one role only
    scale = 10.0 ** torch.randint(-3, 4, (B, T), generator=g).float()  # 1e-3 .. 1e3 nats
    signal = torch.randn(B, T, generator=g) * scale
    adv = torch.randn(B, T, generator=g)
    adv[torch.rand(B, T, generator=g) < 0.2] = 0.0
    for alpha in (0.0, 0.1, 0.25, 0.49):
        w = role_weights(signal, roles, strength=alpha, temperature=0.5, baseline=baseline)
        assert (w > 0).all()
        assert (w > 1 - 2 * alpha - 1e-6).all() and (w < 1 + 2 * alpha + 1e-6).all()
        assert torch.allclose(w.mean(dim=1), torch.ones(B), atol=1e-5)  # mean 1 per trajectory
        for role in (PERCEPTION, REASONING) if baseline == "per_role" else ():  # and per role
            for i in range(B):
                sel = roles[i] == role
                if sel.any():
                    assert w[i, sel].mean().item() == pytest.approx(1.0, abs=1e-5)
        assert torch.equal(w[0], torch.ones(T))  # no structure: plain GRPO
        assert torch.equal(torch.sign(adv * w), torch.sign(adv))  # the sign of an advantage never flips
        ref = torch.tensor(loop_weights(signal.tolist(), roles.tolist(), alpha, 0.5, baseline))
        assert torch.allclose(w, ref, atol=1e-5)


def test_identical_to_grpo_when_the_contrasts_are_identities():
    g = torch.Generator().manual_seed(0)
    B, T = 4, 10
    logps = -torch.rand(B, T, generator=g) * 5
    roles = torch.randint(0, 3, (B, T), generator=g)
    grpo = torch.randn(B, 1, generator=g).expand(B, T)  # one advantage per rollout
    # The image has no influence (corruption = identity) and removing the perception changes nothing.
    w = role_weights(role_signal(logps, logps.clone(), logps.clone(), roles), roles)
    assert torch.equal(w, torch.ones(B, T))
    assert torch.equal(grpo * w, grpo)
    # Corruption = identity alone, per-role baseline: every perception weight is exactly 1, whatever the
    # reasoning signal (with the shared baseline the reasoning signal moves credit off the perception).
    removed = logps - torch.rand(B, T, generator=g)
    w = role_weights(role_signal(logps, logps.clone(), removed, roles), roles, baseline="per_role")
    assert torch.equal(w[roles == PERCEPTION], torch.ones(int((roles == PERCEPTION).sum())))
    assert not torch.equal(w[roles == REASONING], torch.ones(int((roles == REASONING).sum())))


def test_role_signal_picks_the_contrast_of_each_role_and_cleans_non_finite_values():
    logps = torch.tensor([[-1.0, -1.0, -1.0, -1.0, -1.0]])
    corrupted = torch.tensor([[-3.0, -3.0, float("-inf"), -3.0, -3.0]])
    removed = torch.tensor([[-1.5, -1.5, -1.5, float("nan"), -1.5]])
    roles = torch.tensor([[PERCEPTION, REASONING, PERCEPTION, REASONING, NEUTRAL]])
    s = role_signal(logps, corrupted, removed, roles)
    assert s[0].tolist() == [2.0, 0.5, 50.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="shapes differ"):
        role_signal(logps, corrupted[:, :3], removed, roles)


def test_role_weights_refuses_bad_arguments():
    s, r = torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        role_weights(s, r, strength=0.5)
    with pytest.raises(ValueError, match="temperature"):
        role_weights(s, r, temperature=0.0)
    with pytest.raises(ValueError, match="roles must be in"):
        role_weights(s, r * 3)
    with pytest.raises(ValueError, match="non-finite"):
        role_weights(torch.tensor([[float("nan"), 0.0, 0.0]]), r)


# --------------------------------------------------------------------------- spans -> roles

TEXT = "<perception>red</perception>\n<reasoning>so</reasoning>\nAnswer 1: red"
# Hand tokenisation of TEXT (character spans), EOS last.
TOKENS = [(0, 12), (12, 14), (14, 15), (15, 28), (28, 29), (29, 40), (40, 42), (42, 54), (54, 55),
          (55, 61), (61, 63), (63, 64), (64, 68), (68, 68)]


def test_token_roles_and_perception_block_mask_on_a_hand_tokenised_completion():
    st = parse_structure(TEXT)
    assert st.complete and st.perception.content == (12, 15) and st.reasoning.content == (40, 42)
    answers = parse_segments(blank_blocks(TEXT, st), ["Answer 1"]).spans
    assert answers == [(55, 68)]
    P, R, N = PERCEPTION, REASONING, NEUTRAL
    assert token_roles(TOKENS, st, answers) == [N, P, P, N, N, N, R, N, N, R, R, R, R, N]
    assert token_roles(TOKENS, st, answers, "neutral") == [N, P, P, N, N, N, R, N, N, N, N, N, N, N]
    assert block_token_mask(TOKENS, st.perception) == [True] * 4 + [False] * 10
    # An incomplete structure (no reasoning) gives all-neutral roles: the rollout trains as plain GRPO.
    partial = parse_structure("<perception>red</perception>\nAnswer 1: red")
    assert token_roles(TOKENS[:5], partial, answers) == [N] * 5
    with pytest.raises(ValueError, match="answer_role"):
        token_roles(TOKENS, st, answers, "answer")
    assert pad_rows([[1, 2], []], 3).tolist() == [[1, 2, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="T=1"):
        pad_rows([[1, 2]], 1)


# --------------------------------------------------------------------------- prompts, references, corruption


def test_add_structure_instruction_appends_to_the_last_user_text_and_copies():
    prompt = [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Q?"}]}]
    out = add_structure_instruction(prompt, "Use tags.")
    assert out[0]["content"] == [{"type": "image", "text": None}, {"type": "text", "text": "Q?\nUse tags."}]
    assert prompt[0]["content"][1]["text"] == "Q?"  # input untouched
    assert add_structure_instruction("Q?", "Use tags.") == "Q?\nUse tags."
    assert add_structure_instruction(prompt, "") is prompt
    images_only = [{"role": "user", "content": [{"type": "image", "text": None}]}]
    assert add_structure_instruction(images_only, "Use tags.")[0]["content"][-1] == {"type": "text", "text": "Use tags."}
    with pytest.raises(ValueError, match="no user message"):
        add_structure_instruction([{"role": "system", "content": "x"}], "Use tags.")
    assert "<perception>" in DEFAULT_INSTRUCTION and "</reasoning>" in DEFAULT_INSTRUCTION


def test_structured_reference_keeps_the_answer_lines():
    ref = structured_reference("Answer 1: 17.5\nAnswer 2: A tall blue bar on the left", [["17.5"], ["A tall blue bar on the left"]],
                               evidence_words=3, reasoning="so")
    assert ref == ("<perception>17.5; A tall blue</perception>\n<reasoning>so</reasoning>\n"
                   "Answer 1: 17.5\nAnswer 2: A tall blue bar on the left")
    st = parse_structure(ref)
    assert st.complete
    assert parse_segments(blank_blocks(ref, st), ["Answer 1", "Answer 2"]).texts == ["17.5", "A tall blue bar on the left"]
    with pytest.raises(ValueError, match="evidence_words"):
        structured_reference("x", [["y"]], evidence_words=0)


def test_corrupt_pixel_values():
    pv = torch.randn(2, 3, 4, 4)
    assert torch.equal(corrupt_pixel_values(pv, "blank"), torch.zeros_like(pv))
    assert corrupt_pixel_values(pv, "none") is pv
    a = corrupt_pixel_values(pv, "noise", torch.Generator().manual_seed(1))
    b = corrupt_pixel_values(pv, "noise", torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == pv.shape and not torch.equal(a, pv)
    with pytest.raises(ValueError, match="corruption"):
        corrupt_pixel_values(pv, "blur")


# --------------------------------------------------------------------------- config and registry


def cfg(**kw):
    return SRPOConfig(output_dir="x", use_cpu=True, bf16=False, **kw)


def test_config_names_knobs_and_registry(tmp_path):
    c = cfg()
    assert (c.algo, c.estimator, c.loss_type, c.scale_rewards) == ("srpo", "grpo", "grpo", "group")
    assert cfg(algo="sd_srpo").estimator == "sd_grpo"
    for bad, match in [({"algo": "grpo"}, "srpo"), ({"srpo_strength": 0.5}, "srpo_strength"),
                       ({"srpo_temperature": 0.0}, "srpo_temperature"), ({"srpo_corruption": "blur"}, "srpo_corruption"),
                       ({"srpo_answer_role": "x"}, "srpo_answer_role"), ({"srpo_baseline": "group"}, "srpo_baseline"),
                       ({"loss_type": "dr_grpo", "algo": "srpo", "srpo_strength": 0.1, "format_weight": -1}, "format_weight")]:
        with pytest.raises(ValueError, match=match):
            cfg(**bad)
    assert registry.trainer_class("srpo") is SRPOTrainer and registry.trainer_class("sd_srpo") is SRPOTrainer
    args = ExperimentConfig(output_dir=str(tmp_path), train={"algo": "sd_srpo", "srpo_strength": 0.1}).grpo_config()
    assert isinstance(args, SRPOConfig) and args.algo == "sd_srpo" and args.srpo_strength == 0.1


# --------------------------------------------------------------------------- two tiny runs




@pytest.fixture(scope="module")
def srpo_warm_model(tmp_path_factory, colour_warm_model, colour_data):
    """The colour warm start, taught SRPO's structure (100 more SFT steps on structured references)."""
    from segrl.trainers.sft import warm_start
    from segrl.trainers.srpo import srpo_sft_dataset

    path, _ = colour_warm_model
    out = tmp_path_factory.mktemp("srpo") / "tiny-srpo-sft"
    data = srpo_sft_dataset(colour_data, instruction="", reasoning="so")
    warm_start(str(path), data, out, max_steps=100, learning_rate=5e-3, logging_steps=50)
    return out


class Recording(SRPOTrainer):
    """Records the estimator's advantages and the SRPO weights per generation batch, and what the loss gets."""

    def _log_segment_metrics(self, mode, seg_rewards, seg_mask, adv, G, sl, token_adv, *rest):
        self._base = token_adv.detach().clone()  # the estimator's (B, T) advantages, before the weights
        return super()._log_segment_metrics(mode, seg_rewards, seg_mask, adv, G, sl, token_adv, *rest)

    def _token_weights(self, out, scored):
        w = super()._token_weights(out, scored)
        self.generated.append({"base": self._base, "weights": w.clone(),
                               "ids": out["completion_ids"].clone(), "mask": out["completion_mask"].clone(),
                               "complete": [s.complete for s in scored.structures]})
        return w

    def _compute_loss(self, model, inputs):
        self.seen.append({k: inputs[k].detach().clone() for k in ("advantages", "completion_ids", "completion_mask")})
        return super()._compute_loss(model, inputs)


def run(tmp_path, path, data, **kw):
    from segrl.models import load_policy

    model, processor = load_policy(str(path))
    args = SRPOConfig(output_dir=str(tmp_path / "run"), num_generations=4, per_device_train_batch_size=8,
                      max_completion_length=64, max_steps=2, learning_rate=1e-3, temperature=1.0, logging_steps=1,
                      save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=0, srpo_instruction="", **kw)
    trainer = Recording(model=model, segment_metric=text_length, args=args, train_dataset=data, processing_class=processor)
    trainer.generated, trainer.seen = [], []
    trainer.train()
    assert trainer.state.global_step == 2
    assert all(math.isfinite(r["loss"]) for r in trainer.state.log_history if "loss" in r)
    return trainer


def check_weights_reach_the_loss(trainer):
    """Per generation batch: weights positive, 1 without structure, mean 1 with it; loss advantages = base * w."""
    assert len(trainer.generated) == len(trainer.seen) == 2  # one generation batch per loss call here
    reweighted = 0
    for gen, batch in zip(trainer.generated, trainer.seen):
        w, mask, base = gen["weights"], gen["mask"].bool(), gen["base"]
        assert (w > 0).all()
        for i, complete in enumerate(gen["complete"]):
            if complete:
                assert w[i, mask[i]].mean().item() == pytest.approx(1.0, abs=1e-5)
            else:
                assert torch.equal(w[i], torch.ones_like(w[i]))
        # TRL shuffles rows between generation and loss: match them by completion ids.
        for j in range(batch["completion_ids"].shape[0]):
            got = batch["advantages"][j]
            rows = [i for i in range(len(gen["ids"])) if torch.equal(gen["ids"][i], batch["completion_ids"][j])]
            assert rows
            i = next((i for i in rows if torch.allclose(got[mask[i]], (base[i] * w[i])[mask[i]], atol=1e-6)), None)
            assert i is not None, "the loss did not receive base advantages x SRPO weights"
            assert torch.equal(torch.sign(got[mask[i]]), torch.sign(base[i][mask[i]]))
            reweighted += int(not torch.allclose(got[mask[i]], base[i][mask[i]], atol=1e-6))
    assert reweighted > 0  # some rollout reached the loss with reweighted, non-zero advantages
    assert any(c for gen in trainer.generated for c in gen["complete"])


def test_srpo_two_steps_reweight_grpo_advantages(tmp_path, srpo_warm_model, colour_data):
    trainer = run(tmp_path, srpo_warm_model, colour_data, algo="srpo")
    check_weights_reach_the_loss(trainer)
    for gen in trainer.generated:  # GRPO underneath: one advantage per rollout before the weights
        for i in range(gen["base"].shape[0]):
            n = int(gen["mask"][i].sum())
            assert len(set(gen["base"][i, :n].tolist())) == 1
    logs = [r for r in trainer.state.log_history if "srpo/structure_missing_frac" in r]
    assert logs and min(r["srpo/structure_missing_frac"] for r in logs) < 1.0
    visual = [r["srpo/visual_dependency/mean"] for r in logs if "srpo/visual_dependency/mean" in r]
    assert visual and all(v != 0.0 for v in visual)  # the blank image changes the perception log-probs
    assert all(r["srpo/extra_pass_s"] > 0 for r in logs if "srpo/extra_pass_s" in r)


def test_sd_srpo_two_steps_with_identity_corruption(tmp_path, srpo_warm_model, colour_data):
    trainer = run(tmp_path, srpo_warm_model, colour_data, algo="sd_srpo", srpo_corruption="none", srpo_baseline="per_role")
    check_weights_reach_the_loss(trainer)
    logs = [r for r in trainer.state.log_history if "srpo/weight/perception_min" in r]
    assert logs
    for r in logs:  # the image has no influence and the per-role baseline: every perception weight is exactly 1
        assert r["srpo/visual_dependency/mean"] == 0.0
        assert r["srpo/weight/perception_min"] == r["srpo/weight/perception_max"] == 1.0
    assert any(r["srpo/weight/reasoning_max"] > r["srpo/weight/reasoning_min"] for r in logs)
    assert any("segments/advantage/std" in r for r in trainer.state.log_history)  # SD-GRPO underneath
