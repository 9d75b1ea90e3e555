#!/usr/bin/env bash
# Issue 18, item 4: the GPU measurements, as one script sized for one H200 and ~10 minutes of device time.
# NOT RUN YET: no GPU was lent to the task that wrote it (2026-12-01); `SMOKE=1` runs the same commands on the
# tiny LLaVA on a CPU (done before committing). Every `bench scale` rewrites its scale.{json,md} after each
# trainer, so a command cut short by its timeout still leaves the settings it finished.
#
# On the device (no network there): install the carried wheels first, e.g.
#   pip install --no-deps wheels/*.whl   # trl 1.16.0, transformers 5.23.0, datasets, peft 0.21.2 (pip download here)
# and run from the repository root:  bash results/bench/scale/issue18_gpu.sh
# Estimated (from the first H200 run's 10 s/step at 16 completions; generation-bound): ~1 min for block 1 at 16,
# ~2 min at 128, ~3.5 min for block 2 (512), ~1.5 min for block 3 (7B LoRA), model builds included.
set -u
OUT=${OUT:-results/bench/scale}
if [ "${SMOKE:-0}" = 1 ]; then  # CPU check of the commands: tiny model, tiny settings
    S3=llava-tiny; S7=llava-tiny; C1=(--completions 8 --completions 16); C2=(--completions 16); L=8; MB=8; GC=--no-gradient-checkpointing
else
    S3=3b; S7=7b; C1=(--completions 16 --completions 128); C2=(--completions 512); L=256; MB=16; GC=--gradient-checkpointing
fi
common=(--completion-length "$L" --micro-batch-size "$MB" --rounds 1 --steps-per-round 1 "$GC")
# 1. 3B shape, on-policy (one generate call per optimizer step), 16 and 128 completions: grpo vs sd_grpo.
timeout 260 segrl bench scale --size "$S3" -v grpo -v sd_grpo "${C1[@]}" "${common[@]}" --out-dir "$OUT/3b-16-128"
# 2. 3B shape, 512 completions in one generate call (EasyR1's rollout batch): sd_grpo only, to fit the budget.
timeout 240 segrl bench scale --size "$S3" -v sd_grpo "${C2[@]}" "${common[@]}" --out-dir "$OUT/3b-512"
# 3. 7B shape with a LoRA adapter (r 64, the *_7b_lora.yaml presets' targets) on one GPU: s/step, tokens/s, peak memory.
timeout 120 segrl bench scale --size "$S7" -v sd_grpo --completions 16 --lora-r 64 "${common[@]}" --out-dir "$OUT/7b-lora"
