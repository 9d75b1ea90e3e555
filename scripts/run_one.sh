#!/usr/bin/env bash
# One cell of a sweep, resumable: train unless `segrl run-status` says the run is done, then evaluate
# unless <run>/eval/metrics.json exists. Used by the Makefile's reproduce-* targets through xargs -P
# (scripts/sweep.sh), one line per run.
#
#   scripts/run_one.sh RUN_DIR TASK "EVAL_ARGS" TRAIN_ARGS...
#
# RUN_DIR: the run's output directory; TASK: the task `segrl eval` scores; EVAL_ARGS: one string of
# `segrl eval` options (e.g. "--data data/x --config configs/y.yaml"); TRAIN_ARGS: `segrl train` options.
# RERUN_STALE=1: a finished run whose run.json no longer matches the request is moved aside and retrained
# (exit 3 otherwise, naming the mismatch). The run's console output goes to RUN_DIR.log.
set -euo pipefail
run=$1 task=$2 eval_args=$3
shift 3
segrl=${SEGRL:-segrl}
mkdir -p "$(dirname "$run")"
st=0
"$segrl" run-status "$@" --output-dir "$run" ${RERUN_STALE:+--rerun-stale} >/dev/null || st=$?
case $st in
  0) ;;
  1) echo "train $run"; "$segrl" train "$@" --output-dir "$run" --resume off >"$run.log" 2>&1 \
       || { echo "FAILED: segrl train ... --output-dir $run (log: $run.log)" >&2; tail -5 "$run.log" >&2; exit 1; } ;;
  *) echo "run-status $run: exit $st" >&2; exit "$st" ;;
esac
if [ ! -f "$run/eval/metrics.json" ]; then
  echo "eval  $run"
  # shellcheck disable=SC2086  # EVAL_ARGS is a list of options
  "$segrl" eval "$task" --model "$run" $eval_args --out "$run/eval" >>"$run.log" 2>&1 \
    || { echo "FAILED: segrl eval $task --model $run (log: $run.log)" >&2; tail -5 "$run.log" >&2; exit 1; }
fi
