"""The golden trajectory: a fixed-seed 20-step SD-GRPO run through the CLI on the tiny model.

``python tests/golden/golden.py`` (``make golden-update``) regenerates this machine kind's reference;
``tests/golden/test_golden.py`` compares a fresh run with it. Regenerate only when a change
is *meant* to move the numbers, and say why in the commit.

One reference per CPU kind: a tiny model's sampled trajectory is not bit-stable across CPUs (ATen picks its
kernels by the CPU's vector capability, and the first differing logit changes a sample), so
``reference-<capability>-<vendor>.json`` is used where it exists (measured 2026-12-02: an AVX2 AMD EPYC
machine diverged from ``reference.json`` at step 1 with the code unchanged; so did an AVX512 Intel Xeon
machine, with bc86321's code, the same day) and ``reference.json``, the one
recorded on the machine kind of the earlier sessions, otherwise.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_REFERENCE = HERE / "reference.json"


def machine_kind() -> str:
    """This CPU's float-kernel kind, e.g. ``"AVX2-AuthenticAMD"``: ATen's dispatch capability and the vendor id."""
    import torch

    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{torch.backends.cpu.get_cpu_capability()}-{vendor}"


def machine_reference() -> Path:
    """This machine kind's reference file (it may not exist yet)."""
    return HERE / f"reference-{machine_kind()}.json"


def reference_path() -> Path:
    """The reference to compare with: this machine kind's where it exists, else ``reference.json``."""
    own = machine_reference()
    return own if own.is_file() else DEFAULT_REFERENCE


MULTICHART = HERE.parents[1].parent / "shared" / "data" / "multichartqa"
KEYS = ("loss", "reward", "grad_norm")
STEPS = 20


def run_golden(workdir: Path) -> list[dict]:
    """Run the pipeline through the CLI in ``workdir``; return the per-step ``KEYS`` values."""
    import torch
    from typer.testing import CliRunner

    from segrl.cli import app

    torch.set_num_threads(1)

    def cli(*args):
        result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        if result.exit_code != 0:
            raise RuntimeError(result.output)

    data, tiny, sft, out = workdir / "data", workdir / "tiny", workdir / "sft", workdir / "run"
    cli("build-data", "multichart", "--source", MULTICHART, "--out", data, "--limit", "10")
    cli("make-tiny-model", "--data", data, "--out", tiny, "--vocab-size", "800")
    config = workdir / "golden.yaml"
    config.write_text(yaml.safe_dump({
        "task": "multichart", "output_dir": str(out),
        "data": {"path": str(data), "max_image_side": 112},
        "sft": {"max_steps": 80, "learning_rate": 3e-3, "per_device_train_batch_size": 4},
        "train": {"algo": "sd_grpo", "num_generations": 4, "per_device_train_batch_size": 8, "max_steps": STEPS,
                  "max_completion_length": 24, "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no",
                  "beta": 0.0, "seed": 0},
    }))
    cli("warm-start", "--config", config, "--model", tiny, "--out", sft)
    cli("train", "--config", config, "--model", sft, "--resume", "off")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [{k: r[k] for k in KEYS} for r in log if "loss" in r and "reward" in r]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        steps = run_golden(Path(tmp))
    out = machine_reference()
    out.write_text(json.dumps({"steps": steps, "keys": list(KEYS), "machine": machine_kind()}, indent=1) + "\n")
    print(f"wrote {out} ({len(steps)} steps)", file=sys.stderr)
