"""Completions shaped as TRL's vLLM generation returns them reach the (B, T) advantages unchanged.

vLLM cannot run on this project's machines (README, "Paper scale"), so TRL's generation backend is
replaced by a stand-in with the same contract as ``trl.generation.vllm_generation.VLLMGeneration.generate``:
``(prompt_ids, completion_ids, logprobs, logprob_token_ids)``, token ids per completion and
``(len, 1)`` log-probs per completion. The ids are a deliberately *non-canonical* tokenisation
(one token per character, which the BPE would merge), so any re-tokenisation of the decoded text
would change T and shift every segment's tokens; the advantages must line up with the ids as given.
"""

from __future__ import annotations

import math

import pytest

from segrl.models import load_policy
from segrl.rewards import make_segment_reward
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.segment_grpo import SegmentGRPOTrainer


class FakeVLLMGeneration:
    """Returns fixed completions in ``VLLMGeneration.generate``'s output format (one per prompt row)."""

    def __init__(self, completion_ids: list[list[int]]):
        self.completion_ids = completion_ids
        self.calls = 0

    def sync_weights(self):
        pass

    def generate(self, prompts, images, num_generations, profiler=None):
        self.calls += 1
        assert len(prompts) == len(self.completion_ids)  # TRL passes one prompt row per completion
        logprobs = [[[-(t + 1) / 100] for t in range(len(ids))] for ids in self.completion_ids]
        token_ids = [[[i] for i in ids] for ids in self.completion_ids]
        return prompts, [list(ids) for ids in self.completion_ids], logprobs, token_ids


def test_vllm_shaped_completions_line_up_with_the_token_advantages(tmp_path, colour_tiny_model, colour_data):
    row = colour_data[1]  # two images, so two segments: Answer 1 and Answer 2
    assert row["segment_labels"] == ["Answer 1", "Answer 2"]
    right = [refs[0] for refs in row["segment_references"]]
    wrong = [next(c for c in ("red", "blue", "green", "yellow") if c != r) for r in right]
    texts = [f"Answer 1: {a}\nAnswer 2: {b}" for a, b in
             [(right[0], right[1]), (right[0], wrong[1]), (wrong[0], right[1]), (wrong[0], wrong[1])]]

    model, processor = load_policy(str(colour_tiny_model))
    tok = processor.tokenizer
    single = {ch: tok.encode(ch) for ch in set("".join(texts))}
    assert all(len(ids) == 1 for ids in single.values())  # byte-level BPE: every character is a token of its own
    char_ids = [[single[ch][0] for ch in text] + [tok.eos_token_id] for text in texts]
    canonical = [tok.encode(text) + [tok.eos_token_id] for text in texts]
    assert all(len(c) > len(k) for c, k in zip(char_ids, canonical))  # really not what re-tokenising gives
    assert [tok.decode(ids, skip_special_tokens=True) for ids in char_ids] == texts

    args = SegmentGRPOConfig(output_dir=str(tmp_path), algo="sd_grpo", num_generations=4, per_device_train_batch_size=4,
                             max_completion_length=64, format_weight=0.0, report_to="none", use_cpu=True, bf16=False,
                             logging_steps=1, seed=0)
    trainer = SegmentGRPOTrainer(model=model, segment_metric=make_segment_reward("accuracy"), args=args,
                                 train_dataset=colour_data.select([1]), processing_class=processor)
    fake = FakeVLLMGeneration(char_ids)
    trainer.use_vllm, trainer.vllm_generation, trainer._last_loaded_step = True, fake, -1  # TRL's vLLM branch
    trainer.model.train()
    out = trainer._generate_and_score_completions([dict(row) for _ in range(4)])
    assert fake.calls == 1

    T = max(len(ids) for ids in char_ids)
    ids, mask, adv = out["completion_ids"], out["completion_mask"], out["advantages"]
    assert ids.shape == mask.shape == adv.shape == (4, T)
    for i, c in enumerate(char_ids):  # the ids as vLLM returned them, right-padded, not re-tokenised
        assert ids[i, :len(c)].tolist() == c and mask[i].sum().item() == len(c)
        # vLLM's sampled-token log-probs ride along position by position (for TRL's importance-sampling correction).
        assert out["sampling_per_token_logps"][i, :len(c)].tolist() == pytest.approx([-(t + 1) / 100 for t in range(len(c))])

    # SD-GRPO by hand: segment rewards (1,1), (1,0), (0,1), (0,0); each column [1,1,0,0] or [1,0,1,0] has mean 0.5 and
    # Bessel std sqrt(1/3), so A = +-0.5 / (sqrt(1/3) + 1e-4). Tokens outside every segment (the EOS) carry the
    # rollout advantage of R = mean_k r_k = [1, .5, .5, 0] (format_weight 0): +-0.5 / (sqrt(1/6) + 1e-4), 0, 0.
    a = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    rollout = [0.5 / (math.sqrt(1 / 6) + 1e-4), 0.0, 0.0, -0.5 / (math.sqrt(1 / 6) + 1e-4)]
    signs = [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    for i, text in enumerate(texts):
        second = text.index("\nAnswer 2:") + 1
        for k, (lo, hi) in enumerate([(text.index(":") + 2, second - 1), (text.rindex(":") + 2, len(text))]):
            # one token per character: character position == token position
            assert adv[i, lo:hi].tolist() == pytest.approx([signs[i][k] * a] * (hi - lo), abs=1e-5), (i, k)
        assert adv[i, len(text)].item() == pytest.approx(rollout[i], abs=1e-5)  # the EOS token
