"""The scale benchmark: its FLOP/MFU arithmetic, its batch settings in TRL's terms, and its CPU path end to end."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from segrl.bench.scale import Setting, main, mfu, peak_tflops_for, settings_from, step_flops


def test_step_flops_is_8n_per_token_and_patch():
    # 2N to generate + 6N to train, for the language model on tokens and the vision tower on patches.
    assert step_flops(n_lm=10, n_vision=2, tokens=100, patches=50) == 8 * 10 * 100 + 8 * 2 * 50
    # The H200 run of results/bench/scale.md: 3,085,938,688 LM and 668,684,288 vision parameters,
    # 7,136 tokens and 16 x 256 patches per step -> 198.1 TFLOP.
    assert step_flops(3_085_938_688, 668_684_288, 7136, 16 * 256) / 1e12 == pytest.approx(198.1, abs=0.05)
    # An off-policy setting adds one no-grad forward pass (old log-probs): 10N instead of 8N.
    assert step_flops(n_lm=10, n_vision=2, tokens=100, patches=50, logprob_passes=1) == 10 * (10 * 100 + 2 * 50)


def test_mfu_against_the_peak():
    assert mfu(989.4e12, 1.0, 989.4) == pytest.approx(1.0)
    assert mfu(198.1e12, 10.151, 989.4) == pytest.approx(0.01972, abs=1e-5)
    assert mfu(1e12, 1.0, None) is None
    with pytest.raises(ValueError, match="seconds_per_step"):
        mfu(1e12, 0.0, 989.4)


def test_peak_from_device_name():
    assert peak_tflops_for("NVIDIA H200") == 989.4
    assert peak_tflops_for("NVIDIA H100 80GB HBM3") == 989.4
    assert peak_tflops_for("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops_for("Tesla T4") is None
    assert peak_tflops_for(None) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_paper_size_needs_a_gpu(tmp_path):
    with pytest.raises(RuntimeError, match="needs a CUDA device .*llava-tiny"):
        main(size="3b", out_dir=str(tmp_path))
    assert not (tmp_path / "scale.json").exists()


def test_settings_in_trls_terms():
    # 512 completions per step in micro-batches of 16: 32 accumulation steps; TRL's default generates all 512 at once.
    (s,) = settings_from([512], [256], micro_batch=16)
    assert (s.gradient_accumulation_steps, s.steps_per_generation, s.generation_batch_size) == (32, 32, 512)
    assert s.on_policy and s.steps_per_cycle == 1
    # Two generations of 256 per optimizer step: still on-policy (no update between them).
    (s,) = settings_from([512], [256], micro_batch=16, generation_batch_size=[256])
    assert s.steps_per_generation == 16 and s.on_policy and s.steps_per_cycle == 1
    # One generation of 1,024 feeding two optimizer steps: the second is off-policy (TRL recomputes old log-probs).
    (s,) = settings_from([512], [256], micro_batch=16, steps_per_generation=[64])
    assert s.generation_batch_size == 1024 and not s.on_policy and s.steps_per_cycle == 2
    assert not Setting(8, 4, 3, 8).on_policy and Setting(8, 4, 3, 8).steps_per_cycle == 3  # lcm(3, 2) / 2
    sweep = settings_from([16, 128], [128, 256], num_generations=8)
    assert [(x.completions, x.completion_length) for x in sweep] == [(16, 128), (16, 256), (128, 128), (128, 256)]
    with pytest.raises(ValueError, match="mutually exclusive"):
        settings_from([16], [8], steps_per_generation=[2], generation_batch_size=[32])
    with pytest.raises(ValueError, match="--generation-batch-size 24 must be a multiple of the micro-batch 16"):
        settings_from([16], [8], generation_batch_size=[24])
    with pytest.raises(ValueError, match="multiple of --num-generations 8"):
        settings_from([12], [8], micro_batch=4, steps_per_generation=[1], num_generations=8)
    with pytest.raises(ValueError, match="--completions 10 must be a positive multiple of the micro-batch 4"):
        settings_from([10], [8], micro_batch=4)


def test_cpu_path_on_the_tiny_model(tmp_path):
    """`segrl bench scale --size llava-tiny` on a CPU: an on-policy and an off-policy setting, grpo and sd_grpo."""
    from segrl.cli import app

    runner = CliRunner()
    help_text = runner.invoke(app, ["bench", "scale", "--help"], env={"COLUMNS": "200"}).output
    for option in ("--generation-batch-size", "--steps-per-generation", "--completions", "--completion-length"):
        assert option in help_text
    args = ["bench", "scale", "--size", "llava-tiny", "-v", "grpo", "-v", "sd_grpo", "--completions", "8",
            "--micro-batch-size", "4", "--steps-per-generation", "2", "--steps-per-generation", "4",
            "--completion-length", "8", "--num-generations", "4", "--rounds", "1", "--steps-per-round", "1",
            "--no-gradient-checkpointing", "--peak-tflops", "1", "--out-dir", str(tmp_path)]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "scale.json").read_text())
    assert "sd_grpo / grpo" in (tmp_path / "scale.md").read_text()
    on, off = res["settings"]
    assert on["setting"]["on_policy"] and on["setting"]["generation_batch_size"] == 8
    assert not off["setting"]["on_policy"] and off["setting"]["steps_per_cycle"] == 2
    n_lm, n_vision = res["setup"]["lm_matrix_parameters"], res["setup"]["parameters"]["vision"]
    patches = res["setup"]["vision_patches_per_example"]
    assert patches == 4 * 4 + 1  # one 56-px image: 4 x 4 CLIP patches + the class token
    for block, passes in ((on, 0), (off, 1)):
        assert set(block["ratios"]) == {"sd_grpo_over_grpo"}
        for r in block["variants"].values():
            assert r["timed_steps"] == block["setting"]["steps_per_cycle"]  # 1 step, rounded up to a whole cycle
            phases = r["phase_seconds_per_step"]
            assert sum(phases.values()) == pytest.approx(r["seconds_per_step"], rel=1e-9)
            assert phases["generation"] > 0 and phases["update"] > 0
            # TRL computes the sampling policy's log-probs only when a generation outlives an optimizer step.
            assert (phases["logprobs"] > 0) == (passes == 1)
            # 8 completions of at most 8 tokens per optimizer step (the off-policy setting: 16 every 2 steps).
            assert 0 < r["response_tokens_per_step"] <= 64 and r["tokens_per_step"] > r["response_tokens_per_step"]
            assert r["tokens_per_s_per_gpu"] == pytest.approx(r["tokens_per_step"] / r["seconds_per_step"])
            flops = step_flops(n_lm, n_vision, r["tokens_per_step"], 8 * patches, logprob_passes=passes)
            assert r["mfu"] == pytest.approx(flops / (r["seconds_per_step"] * 1e12))
            actor = 6 * (n_lm * r["tokens_per_step"] + n_vision * 8 * patches)
            assert r["actor_mfu"] == pytest.approx(actor / (phases["update"] * 1e12))
            assert r["peak_memory_gib"] is None  # no GPU: no peak memory, and the table says so
            assert r["segment_work_s_per_step"] > 0
    assert "n/a (CPU)" in (tmp_path / "scale.md").read_text()


def test_paper_presets_generate_once_per_optimizer_step():
    """Every GRPO-family Qwen preset is on-policy at the largest generate call that keeps it so (S = GA);
    SAPO's is off-policy by design (the paper's 4 PPO mini-batch updates per generation)."""
    from pathlib import Path

    from segrl.config import load_config

    presets = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*_qwen2.5vl_*.yaml"))
    names = {p.name for p in presets}
    assert {f"{t}_qwen2.5vl_{s}.yaml" for t in ("multichart", "docci", "mmsci") for s in ("3b", "7b", "7b_lora")} <= names
    assert "sapo_qwen2.5vl_7b.yaml" in names  # and any preset added later is checked the same way
    for path in presets:
        args = load_config(path, ["train.bf16=false", "train.use_vllm=false"]).grpo_config()
        setting = Setting(completions=args.per_device_train_batch_size * args.gradient_accumulation_steps,
                          micro_batch=args.per_device_train_batch_size,
                          steps_per_generation=args.steps_per_generation,
                          completion_length=args.max_completion_length)
        if path.name.startswith("sapo_"):
            assert not setting.on_policy and setting.steps_per_cycle == 4, path.name
        else:
            assert args.steps_per_generation == args.gradient_accumulation_steps and setting.on_policy, path.name
            assert args.num_iterations == 1, path.name


def test_cpu_path_with_a_lora_adapter(tmp_path):
    """`--lora-r` wraps the model once with PEFT; training FLOPs count 4N (frozen base, no weight gradients)."""
    res = main(size="llava-tiny", variants=("sd_grpo",), rounds=1, steps_per_round=1, num_generations=4,
               settings=settings_from([8], [8], num_generations=4), gradient_checkpointing=False, peak_tflops=1.0,
               lora_r=4, out_dir=str(tmp_path))
    lora, total = res["setup"]["lora"], res["setup"]["parameters"]["total"]
    assert lora["r"] == 4 and 0 < lora["trainable_parameters"] < total / 5
    r = res["settings"][0]["variants"]["sd_grpo"]
    n_lm, n_vision = res["setup"]["lm_matrix_parameters"], res["setup"]["parameters"]["vision"]
    patches = 8 * res["setup"]["vision_patches_per_example"]
    assert r["mfu"] == pytest.approx(6 * (n_lm * r["tokens_per_step"] + n_vision * patches) /
                                     (r["seconds_per_step"] * 1e12))  # 2N generate + 4N train
    assert "LoRA r = 4" in (tmp_path / "scale.md").read_text()
