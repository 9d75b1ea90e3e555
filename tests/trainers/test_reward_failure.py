"""Every trainer treats a failure while scoring the same way, and the diagnostics use the config's eps."""

import json

import pytest
import torch

from segrl.models import load_policy
from segrl.rewards.scorer import RewardError
from segrl.trainers.advantages import AdvantageInputs, compute_advantages
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.diagnostics import rollout_segment_correlation
from segrl.trainers.drseg import DrSegConfig, DrSegTrainer
from segrl.trainers.segment_grpo import SegmentGRPOTrainer
from segrl.trainers.srpo import SRPOConfig, SRPOTrainer

COMMON = dict(num_generations=2, per_device_train_batch_size=2, max_completion_length=8, report_to="none",
              use_cpu=True, bf16=False, save_strategy="no")


def text_length(predictions, references):
    return [min(len(p), 10) / 10 for p in predictions]


def make(cls, config, tmp_path, colour_tiny_model, colour_data, **kw):
    model, processor = load_policy(str(colour_tiny_model))
    args = config(output_dir=str(tmp_path / "run"), **COMMON, **kw)
    return cls(model=model, segment_metric=text_length, args=args, train_dataset=colour_data,
               processing_class=processor)


CASES = {
    # The parser refuses a label list with a repeated label: a ValueError, not a RewardError.
    "sd_grpo": (SegmentGRPOTrainer, SegmentGRPOConfig, {"segment_labels": ["Answer 1", "answer 1"]}, "ValueError"),
    "srpo": (SRPOTrainer, SRPOConfig, {"segment_labels": ["Answer 1", "answer 1"]}, "ValueError"),
    # Dr. Seg's reward reads grounding objects from the references: a colour name is not one.
    "drseg": (DrSegTrainer, DrSegConfig, {}, "ValueError"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_any_exception_while_scoring_dumps_the_batch_then_raises(name, tmp_path, colour_tiny_model, colour_data):
    """Before: only a RewardError wrote reward_failure.jsonl; a ValueError from the parser or the
    format reward stopped SD-GRPO and SRPO with no dump, while Dr. Seg dumped every exception."""
    cls, config, patch, kind = CASES[name]
    trainer = make(cls, config, tmp_path, colour_tiny_model, colour_data)
    rows = [{**colour_data[i], **patch} for i in range(2)]
    texts = ["Answer 1: red", "Answer 1: blue"]
    with pytest.raises(RewardError, match=f"{kind}: .* failing batch written to .*reward_failure.jsonl"):
        trainer.score_batch(rows, texts, [[1, 2], [3, 4]])
    dump = [json.loads(line) for line in (tmp_path / "run" / "reward_failure.jsonl").read_text().splitlines()]
    assert [d["completion"] for d in dump] == texts and all(d["error"].startswith(kind) for d in dump)
    assert [d["id"] for d in dump] == [r["id"] for r in rows]


def test_the_credit_correlation_uses_advantage_eps(tmp_path, colour_tiny_model, colour_data):
    """Before: ``rollout_segment_correlation`` ran with its default eps (1e-4) whatever ``advantage_eps`` was."""
    eps = 0.5
    trainer = make(SegmentGRPOTrainer, SegmentGRPOConfig, tmp_path, colour_tiny_model, colour_data,
                   algo="sd_grpo", advantage_eps=eps)
    seg = torch.tensor([[1.0, 0.0], [0.0, 0.2], [0.5, 1.0], [0.0, 0.9]])  # segment stds differ, so eps matters
    mask = torch.ones_like(seg, dtype=torch.bool)
    hol = seg.mean(1)
    adv = compute_advantages("sd_grpo", AdvantageInputs(hol, seg, mask, 2), eps=eps)
    token_segment = torch.tensor([[0, 1], [0, 1], [0, 1], [0, 1]])
    token_adv = torch.gather(adv.segment, 1, token_segment)
    trainer._log_segment_metrics("train", seg, mask, adv, 2, slice(0, 4), token_adv, token_segment,
                                 torch.ones(4, 2))
    logged = trainer._metrics["train"]["credit/corr_rollout_segment_adv"][-1]
    want = rollout_segment_correlation(adv.rollout, seg, mask, 2, eps=eps)
    default = rollout_segment_correlation(adv.rollout, seg, mask, 2)
    assert logged == pytest.approx(want, abs=1e-7) and abs(want - default) > 1e-3
