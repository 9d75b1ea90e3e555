"""LoRA through TRL's ``peft_config``: typed config, training moves only the adapter, resume, save and reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from segrl.config import ConfigError, LoraSection, load_config
from segrl.models import load_policy
from segrl.trainers.checkpoint import LatestCheckpointMarker, resolve_resume
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.segment_grpo import SegmentGRPOTrainer
from tests.trainers.training_utils import KillAt, text_length

LORA = LoraSection(r=4, alpha=8.0, dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def _train(model_dir, data, out, *, kill_at=None, resume=None, max_steps=4):
    model, processor = load_policy(str(model_dir))
    args = SegmentGRPOConfig(
        output_dir=str(out), algo="sd_grpo", num_generations=4, per_device_train_batch_size=8, max_steps=max_steps,
        max_completion_length=12, learning_rate=5e-2, logging_steps=1, save_strategy="steps", save_steps=2,
        report_to="none", use_cpu=True, bf16=False, seed=0,
    )
    callbacks = [LatestCheckpointMarker()] + ([KillAt(kill_at)] if kill_at else [])
    trainer = SegmentGRPOTrainer(model=model, segment_metric=text_length, args=args, train_dataset=data,
                                 processing_class=processor, callbacks=callbacks, peft_config=LORA.peft_config())
    trainer.train(resume_from_checkpoint=resume)
    return trainer.model, [r["reward"] for r in trainer.state.log_history if "reward" in r]


def _logits(model, processor, row) -> torch.Tensor:
    text = processor.apply_chat_template(row["prompt"], add_generation_prompt=True)
    enc = processor(images=row["images"], text=[text], return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**enc).logits[0].float()


def _base_state(peft_model) -> dict[str, torch.Tensor]:
    """The base model's own weights inside a PEFT model, under their original names."""
    return {n.replace(".base_layer", ""): p.detach().clone() for n, p in peft_model.get_base_model().named_parameters()
            if "lora_" not in n}


def test_lora_section_is_typed_and_checked(tmp_path):
    cfg = load_config(None, ["model.lora.r=8", "model.lora.alpha=16", "model.lora.target_modules=[q_proj, v_proj]"])
    peft = cfg.model.lora.peft_config()
    assert (peft.r, peft.lora_alpha, peft.lora_dropout) == (8, 16.0, 0.05)
    assert sorted(peft.target_modules) == ["q_proj", "v_proj"]
    assert load_config(None).model.lora is None  # full fine-tuning unless asked
    bad = tmp_path / "bad.yaml"
    for section, message in [("{r: 0}", "model.lora.r: expected a positive integer"),
                             ("{dropout: 1.0}", r"model.lora.dropout: expected a number in \[0, 1\)"),
                             ("{target_modules: []}", "model.lora.target_modules"),
                             ("{rank: 8}", r"model.lora: unknown key\(s\) \['rank'\]")]:
        bad.write_text(f"model:\n  lora: {section}\n")
        with pytest.raises(ConfigError, match=message) as e:
            load_config(bad)
        assert str(bad) in str(e.value)


def test_adapter_trains_resumes_exactly_and_leaves_the_base_alone(tmp_path, colour_warm_model, colour_data):
    sft, _ = colour_warm_model
    base, processor = load_policy(str(sft))
    base_params = {n: p.detach().clone() for n, p in base.named_parameters()}
    row = colour_data[0]
    before = _logits(base, processor, row)

    straight, rewards_straight = _train(sft, colour_data, tmp_path / "a")
    _, first_half = _train(sft, colour_data, tmp_path / "b", kill_at=2)
    checkpoint = resolve_resume("auto", tmp_path / "b")  # an adapter checkpoint counts as complete
    assert checkpoint.endswith("checkpoint-2") and (tmp_path / "b" / "checkpoint-2" / "adapter_model.safetensors").exists()
    resumed, rewards_resumed = _train(sft, colour_data, tmp_path / "b", resume=checkpoint)

    # Only the adapter trains: (A, B) on q/k/v/o of the 2 Llama layers and q/k/v of the 2 CLIP layers (its
    # output projection is `out_proj`), 2 x (8 + 6) = 28 tensors.
    trainable = {n: p for n, p in straight.named_parameters() if p.requires_grad}
    assert len(trainable) == 28 and all("lora_" in n for n in trainable)
    assert min(p.abs().max().item() for n, p in trainable.items() if "lora_B" in n) > 1e-4  # B starts at 0
    # The base weights are exactly the warm-started model's.
    state = _base_state(straight)
    assert set(state) == set(base_params)
    assert max((state[n] - base_params[n]).abs().max().item() for n in base_params) == 0.0
    # The adapter changes the outputs.
    assert (_logits(straight, processor, row) - before).abs().max().item() > 1e-3
    # 4 steps == 2 + resume + 2, adapter weights and logged rewards to 1e-6.
    assert len(rewards_straight) == 4 and first_half == rewards_straight[:2]
    assert rewards_resumed == pytest.approx(rewards_straight, abs=1e-6)
    a = dict(straight.named_parameters())
    b = dict(resumed.named_parameters())
    assert max((a[n] - b[n]).abs().max().item() for n in trainable) <= 1e-6


def test_train_saves_the_adapter_resumes_auto_and_reloads_on_its_base(tmp_path, colour_warm_model, colour_data, colour_split):
    from segrl.trainers.train import main

    sft, _ = colour_warm_model
    data = colour_split
    overrides = [f"data.path={data}", f"output_dir={tmp_path / 'run'}", "model.lora.r=4",
                 "model.lora.target_modules=[q_proj, v_proj]", "train.num_generations=4",
                 "train.per_device_train_batch_size=8", "train.max_completion_length=12", "train.learning_rate=5e-2",
                 "train.lr_scheduler_type=constant", "train.save_steps=1", "train.logging_steps=1"]
    first = main(load_config(None, [*overrides, "train.max_steps=2"]), model=str(sft), resume="auto")
    out = tmp_path / "run"
    assert first["steps"] == 2
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()  # adapter only
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(sft.resolve())

    second = main(load_config(None, [*overrides, "train.max_steps=3"]), model=str(sft), resume="auto")
    assert second["steps"] == 3
    assert json.loads((out / "run.json").read_text())["resumed_from"].endswith("checkpoint-2")

    policy, processor = load_policy(str(out))  # what `segrl eval` loads: the adapter on its base
    base, _ = load_policy(str(sft))
    assert type(policy).__name__ == "PeftModel"
    assert _base_state(policy).keys() == dict(base.named_parameters()).keys()
    row = colour_data[0]
    assert (_logits(policy, processor, row) - _logits(base, processor, row)).abs().max().item() > 1e-3
    from segrl.eval.evaluate import main as evaluate  # `segrl eval` on the adapter directory

    metrics = evaluate("multichart", str(out), str(data), str(tmp_path / "eval"), limit=4, max_new_tokens=8)
    assert metrics["n_examples"] == 4 and 0.0 <= metrics["metrics"]["accuracy"] <= 1.0
    (out / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(FileNotFoundError, match="base model of adapter"):
        load_policy(str(out))


@pytest.mark.parametrize("task", ["multichart", "docci", "mmsci"])
def test_one_gpu_presets_adapt_only_the_language_model(task):
    """The presets' target_modules regex, applied by PEFT to a tiny Qwen2.5-VL (same module names as 7B)."""
    from peft import get_peft_model

    from segrl.models.qwen import build_qwen25vl_model, qwen25vl_config, train_qwen_tokenizer

    path = Path(__file__).resolve().parents[2] / "configs" / f"{task}_qwen2.5vl_7b_lora.yaml"
    cfg = load_config(path, ["train.bf16=false"])
    args = cfg.grpo_config()
    assert args.steps_per_generation == args.gradient_accumulation_steps == 8  # one generation per optimizer step
    assert args.learning_rate == 1e-5 and args.num_generations == 8 and args.use_vllm is False
    tok = train_qwen_tokenizer(["Answer 1: red", "Panel 2: a blue square"], vocab_size=300)
    model = get_peft_model(build_qwen25vl_model(qwen25vl_config("tiny", tok)), cfg.model.lora.peft_config())
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    kinds = {n.rsplit(".", 1)[1] for n in adapted}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert len(adapted) == 7 * 2 and all(".language_model." in n for n in adapted)  # 2 layers, no vision module
