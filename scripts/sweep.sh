#!/usr/bin/env bash
# Run a sweep's cells, JOBS at a time: stdin holds one cell per line, the arguments of scripts/run_one.sh
# separated by '|' (RUN_DIR|TASK|EVAL_ARGS|TRAIN_ARGS). With JOBS=2 each run gets OMP_NUM_THREADS=1
# (two 1-thread runs side by side give ~1.46x the throughput of one 2-thread run on the 2-core
# machine; ../shared/VERIFIED.md). Exits non-zero when any cell failed (the others still run).
set -euo pipefail
jobs=${JOBS:-2}
threads=${OMP_NUM_THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}
here=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=$threads
tr '\n' '\0' | xargs -0 -r -P "$jobs" -I{} bash -c '
  IFS="|" read -r run task eval_args train_args <<<"$1"
  # shellcheck disable=SC2086
  exec "$0" "$run" "$task" "$eval_args" $train_args' "$here/run_one.sh" {}
