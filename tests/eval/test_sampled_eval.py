"""SAPO's sampled evaluation (issue 16 item 2): the preset's settings reach ``model.generate``; greedy beside it."""

import pytest

from segrl.config import load_config
from segrl.eval.evaluate import mean_over_samples
from segrl.eval.generate import Sampling, generate


def spy_generate(model):
    calls = []
    real = model.generate

    def spy(**kwargs):
        calls.append({k: v for k, v in kwargs.items() if k not in ("input_ids", "attention_mask", "pixel_values")})
        return real(**kwargs)

    model.generate = spy
    return calls


@pytest.mark.parametrize("preset", ["configs/sapo_cpu.yaml", "configs/sapo_multichart_cpu.yaml",
                                    "configs/sapo_qwen2.5vl_7b.yaml"])
def test_sapo_presets_evaluate_with_the_papers_sampling(preset):
    ev = load_config(preset).eval
    assert (ev.temperature, ev.top_p, ev.num_samples) == (0.6, 0.95, 4)  # SAPO Table 7; 4 samples: our choice


def test_sampled_settings_reach_generate_and_greedy_stays_greedy(colour_warm_model, colour_data):
    from segrl.models import load_policy

    path, _ = colour_warm_model
    model, processor = load_policy(str(path))
    calls = spy_generate(model)
    rows = [colour_data[i] for i in range(3)]
    greedy = generate(model, processor, rows, max_new_tokens=6)
    sampled = generate(model, processor, rows, max_new_tokens=6, sampling=Sampling(0.6, 0.95, 4))
    assert calls[0]["do_sample"] is False and "temperature" not in calls[0]
    assert {k: calls[1][k] for k in ("do_sample", "temperature", "top_p", "top_k", "num_return_sequences")} == {
        "do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "num_return_sequences": 4}
    assert len(greedy) == 3 and len(sampled) == 12  # 4 samples per row, row-major
    with pytest.raises(ValueError, match="top_p"):
        Sampling(0.6, 1.5)


def test_cli_passes_the_presets_sampling_to_the_evaluation(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import segrl.eval.evaluate as evaluate
    from segrl.cli import app

    seen = {}

    def fake_main(task, model, data, out, **kw):
        seen.update(kw)
        return {"n_examples": 0, "metrics": {}}

    monkeypatch.setattr(evaluate, "main", fake_main)
    result = CliRunner().invoke(app, ["eval", "docci", "--model", "m", "--data", str(tmp_path), "--out",
                                      str(tmp_path / "e"), "--config", "configs/sapo_cpu.yaml"])
    assert result.exit_code == 0, result.output
    assert seen["sampling"] == Sampling(temperature=0.6, top_p=0.95, num_samples=4)
    seen.clear()
    CliRunner().invoke(app, ["eval", "docci", "--model", "m", "--data", str(tmp_path), "--out", str(tmp_path / "e")])
    assert seen["sampling"] is None  # greedy only by default


def test_mean_over_samples_by_hand():
    out = mean_over_samples([{"accuracy": 0.5, "format": 1.0, "accuracy_by_position": [0.5]},
                             {"accuracy": 0.25, "format": 0.5, "accuracy_by_position": [0.25]}])
    assert out["accuracy"] == 0.375 and out["format"] == 0.75
    assert out["accuracy_sample_std"] == pytest.approx((2 * 0.125**2) ** 0.5)
    assert "accuracy_by_position" not in out


def test_extra_metrics_are_scored_per_segment_and_on_the_whole_answer(monkeypatch, tmp_path):
    """``segrl eval --metric cider_d`` on the probe (whose own metric is accuracy): the extra metric appears
    per segment and holistically, greedy and sampled, and a right answer outscores a wrong one."""
    import segrl.eval.evaluate as evaluate
    import segrl.models.loading as loading
    from segrl.tasks.probe import build

    build(None, tmp_path / "probe", panels=2, count=8)
    answers = {"right": None, "wrong": "Panel 1: red circle\nPanel 2: red circle"}
    current = {}

    class Dummy:
        def eval(self):
            return self

    def fake_generate(policy, processor, batch, max_new_tokens, sampling=None):
        refs = batch["reference"] if isinstance(batch, dict) else [r["reference"] for r in batch]
        out = [current["completion"] or r for r in refs]
        return [c for c in out for _ in range(sampling.num_samples if sampling else 1)]

    monkeypatch.setattr(loading, "load_policy", lambda model, dtype=None: (Dummy(), None))
    monkeypatch.setattr(evaluate, "generate", fake_generate)
    scores = {}
    for name, completion in answers.items():
        current["completion"] = completion
        m = evaluate.main("probe", str(tmp_path / "m"), str(tmp_path / "probe"), str(tmp_path / name),
                          extra_metrics=("cider_d",), sampling=Sampling(0.7, 1.0, 2))["metrics"]
        assert {"accuracy", "cider_d", "cider_d_holistic"} <= set(m) and "cider_d" in m["sampled"]
        scores[name] = m
    assert scores["right"]["accuracy"] == 1.0 and scores["right"]["cider_d"] > scores["wrong"]["cider_d"] + 1
    assert scores["right"]["sampled"]["cider_d"] == pytest.approx(scores["right"]["cider_d"])
