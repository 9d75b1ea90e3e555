"""Every shipped experiment config loads offline with typed values (GPU presets included)."""

from pathlib import Path

import pytest

from segrl.config import ConfigError, load_config
from segrl.trainers.registry import ALGORITHMS, config_class

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path):
    # bf16/vLLM presets are for GPUs: check types and TRL's own validation with them switched off here.
    cfg = load_config(path, ["train.bf16=false", "train.use_vllm=false"])
    args = cfg.grpo_config()
    assert args.algo in ALGORITHMS
    assert type(args) is config_class(args.algo)  # the algorithm's own config class, typed
    assert args.num_generations >= 2


def test_paper_scale_presets_quote_the_paper_settings():
    for name in ("multichart_qwen2.5vl_3b.yaml", "multichart_qwen2.5vl_7b.yaml", "docci_qwen2.5vl_3b.yaml",
                 "docci_qwen2.5vl_7b.yaml", "mmsci_qwen2.5vl_3b.yaml", "mmsci_qwen2.5vl_7b.yaml"):
        cfg = load_config(CONFIGS[0].parent / name, ["train.bf16=false", "train.use_vllm=false"])
        assert cfg.train["num_generations"] == 8 and cfg.train["learning_rate"] == 1e-6
        assert cfg.model.dtype == "bfloat16" and cfg.train["gradient_checkpointing"] is True


def test_unknown_and_mistyped_keys_name_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  num_generatons: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: train: unknown key\(s\) \['num_generatons'\]"):
        load_config(bad)
    bad.write_text("sft:\n  max_steps: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: sft\.max_steps: expected an integer"):
        load_config(bad)
    bad.write_text("data:\n  sauce: x\n")
    with pytest.raises(ConfigError, match=r"data: unknown key\(s\) \['sauce'\]"):
        load_config(bad)


def test_overrides_read_yaml_1_2_booleans(tmp_path):
    """`no`/`yes`/`on`/`off` stay strings (YAML 1.1 would make `save_strategy=no` the bool False);
    only true/false are booleans, in a file and in --set alike."""
    cfg = load_config(CONFIGS[0], ["train.save_strategy=no", "train.bf16=false", "train.use_vllm=FALSE"])
    assert cfg.train["save_strategy"] == "no" and cfg.train["bf16"] is False and cfg.train["use_vllm"] is False
    assert cfg.grpo_config().save_strategy == "no"
    f = tmp_path / "c.yaml"
    f.write_text("task: multichart\ntrain:\n  save_strategy: no\n  bf16: off\n")
    with pytest.raises(ConfigError, match="bf16"):  # `off` is a string now, and bf16 wants a bool
        load_config(f).grpo_config()
