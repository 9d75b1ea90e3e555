import pytest

from segrl.config import ConfigError, ExperimentConfig
from segrl.trainers import registry
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.segment_grpo import SegmentGRPOTrainer


def test_estimators_default_to_the_segment_grpo_trainer():
    assert registry.trainer_class("grpo") is SegmentGRPOTrainer
    assert registry.config_class("sd_dr_grpo") is SegmentGRPOConfig


def test_a_registered_algorithm_gets_its_own_config_class(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.TRAINERS._items, "toy", registry.TrainerSpec(
        trainer="segrl.trainers.segment_grpo:SegmentGRPOTrainer", config="tests.trainers.toy_config:ToyConfig"))
    cfg = ExperimentConfig(output_dir=str(tmp_path), train={"algo": "toy", "toy_knob": 3})
    args = cfg.grpo_config()
    assert type(args).__name__ == "ToyConfig" and args.toy_knob == 3
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['toy_knob'\] \(not SegmentGRPOConfig"):
        ExperimentConfig(output_dir=str(tmp_path), train={"algo": "grpo", "toy_knob": 3}).grpo_config()
