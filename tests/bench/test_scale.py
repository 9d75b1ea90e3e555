"""The scale benchmark's FLOP and MFU arithmetic, and its refusal to pretend without a GPU."""

from __future__ import annotations

import pytest
import torch

from segrl.bench.scale import main, mfu, peak_tflops_for, step_flops


def test_step_flops_is_8n_per_token_and_patch():
    # 2N to generate + 6N to train, for the language model on tokens and the vision tower on patches.
    assert step_flops(n_lm=10, n_vision=2, tokens=100, patches=50) == 8 * 10 * 100 + 8 * 2 * 50
    # The H200 run of results/bench/scale.md: 3,085,938,688 LM and 668,684,288 vision parameters,
    # 7,136 tokens and 16 x 256 patches per step -> 198.1 TFLOP.
    assert step_flops(3_085_938_688, 668_684_288, 7136, 16 * 256) / 1e12 == pytest.approx(198.1, abs=0.05)


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
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        main(size="3b", out_dir=str(tmp_path))
    assert not (tmp_path / "scale.json").exists()
