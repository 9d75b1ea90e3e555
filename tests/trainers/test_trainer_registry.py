"""The algorithm registry: one AlgorithmSpec per algorithm, and the config validated against it."""

import pytest

from segrl.config import ConfigError, ExperimentConfig, load_config
from segrl.trainers import registry
from segrl.trainers.config import SegmentGRPOConfig
from segrl.trainers.registry import ALGORITHMS, AlgorithmSpec
from segrl.trainers.segment_grpo import SegmentGRPOTrainer

EVERY_ALGORITHM = ("grpo", "dr_grpo", "sd_grpo", "sd_dr_grpo", "blend", "sapo", "srpo", "sd_srpo", "drseg",
                   "vision_reasoner")


def cfg(**kw):
    return SegmentGRPOConfig(output_dir="x", use_cpu=True, bf16=False, **kw)


def test_every_algorithm_is_registered_once_with_its_classes():
    assert ALGORITHMS.names() == sorted(EVERY_ALGORITHM)
    assert registry.trainer_class("grpo") is SegmentGRPOTrainer
    assert registry.config_class("sd_dr_grpo") is SegmentGRPOConfig
    for name in EVERY_ALGORITHM:
        spec = ALGORITHMS.get(name)
        assert spec.name == name and issubclass(spec.config_class(), SegmentGRPOConfig)
        assert issubclass(spec.trainer_class(), SegmentGRPOTrainer)


def test_an_unknown_algorithm_lists_every_one(tmp_path):
    with pytest.raises(ConfigError, match="unknown algorithm 'nosuch'; known: " + ", ".join(sorted(EVERY_ALGORITHM))):
        load_config(None, [f"output_dir={tmp_path}", "train.algo=nosuch"])


def test_segrl_train_algo_nosuch_lists_every_algorithm(tmp_path):
    from typer.testing import CliRunner

    from segrl.cli import app

    config = tmp_path / "c.yaml"
    config.write_text(f"output_dir: {tmp_path}/run\n")
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--algo", "nosuch"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    for name in EVERY_ALGORITHM:
        assert name in text.split("known:")[1], (name, text)


@pytest.mark.parametrize("algo", ["grpo", "sd_grpo", "blend"])
@pytest.mark.parametrize("scale", ["none", "batch"])
def test_scale_rewards_other_than_the_algorithms_is_refused(algo, scale):
    # Before: accepted and silently ignored (segrl's estimator normalises per group regardless).
    with pytest.raises(ValueError, match=f"needs scale_rewards='group'.*got scale_rewards='{scale}'"):
        cfg(algo=algo, scale_rewards=scale)
    assert cfg(algo=algo, scale_rewards="group").scale_rewards == "group"


def test_dr_variants_fix_loss_and_scaling():
    assert (cfg(algo="dr_grpo").loss_type, cfg(algo="dr_grpo").scale_rewards) == ("dr_grpo", "none")
    with pytest.raises(ValueError, match="needs scale_rewards='none'"):
        cfg(algo="sd_dr_grpo", scale_rewards="group")
    with pytest.raises(ValueError, match="needs loss_type='dr_grpo'"):
        cfg(algo="sd_dr_grpo", loss_type="grpo")
    assert cfg(algo="sd_grpo", loss_type="bnpo").loss_type == "bnpo"  # free for the group estimators


def test_options_the_estimator_does_not_take_are_refused():
    with pytest.raises(ValueError, match=r"algo='sd_grpo' does not use alpha \(got alpha=0\.3\)"):
        cfg(algo="sd_grpo", alpha=0.3)
    assert cfg(algo="blend", alpha=0.3).estimator_options() == {"eps": 1e-4, "alpha": 0.3}
    assert cfg(algo="grpo", advantage_eps=1e-3).estimator_options() == {"eps": 1e-3}
    with pytest.raises(ValueError, match="estimator='sd_grpo' would be ignored"):
        cfg(algo="grpo", estimator="sd_grpo")
    with pytest.raises(ValueError, match="runs with SAPOConfig, not SegmentGRPOConfig"):
        cfg(algo="sapo")


def test_an_algorithm_registered_from_a_test_gets_its_own_config_class(monkeypatch, tmp_path):
    monkeypatch.setitem(ALGORITHMS._items, "toy", AlgorithmSpec(
        "toy", estimator="grpo", trl_options={"scale_rewards": "group"},
        config="tests.trainers.toy_config:ToyConfig"))
    args = ExperimentConfig(output_dir=str(tmp_path), train={"algo": "toy", "toy_knob": 3}).grpo_config()
    assert type(args).__name__ == "ToyConfig" and args.toy_knob == 3 and args.estimator == "grpo"
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['toy_knob'\] \(not SegmentGRPOConfig"):
        ExperimentConfig(output_dir=str(tmp_path), train={"algo": "grpo", "toy_knob": 3}).grpo_config()


def test_registry_refuses_a_duplicate_or_misnamed_spec():
    with pytest.raises(ValueError, match="already registered"):
        ALGORITHMS.register_spec(AlgorithmSpec("grpo", estimator="grpo"))
    with pytest.raises(ValueError, match="named 'b'"):
        ALGORITHMS.add("a", AlgorithmSpec("b", estimator="grpo"))


def test_every_trainers_module_is_found_without_a_list():
    """The registry imports every module of segrl.trainers on its first lookup: an algorithm module
    registers by being in the package (no list of module names to keep in step)."""
    from segrl.trainers.registry import ALGORITHMS, builtin_modules

    found = builtin_modules()
    assert {"segrl.trainers.advantages", "segrl.trainers.sapo", "segrl.trainers.srpo",
            "segrl.trainers.drseg"} <= set(found)
    assert "segrl.trainers.registry" not in found and found == sorted(found)
    assert {ALGORITHMS.get(n).name for n in ("sapo", "srpo", "drseg", "vision_reasoner")} == {
        "sapo", "srpo", "drseg", "vision_reasoner"}
