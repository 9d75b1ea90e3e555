#!/usr/bin/env bash
# Run shell command lines read from stdin, JOBS at a time (the evaluations of finished runs, e.g. Table 2's
# real-sample evals). Each command gets OMP_NUM_THREADS = nproc / JOBS, as scripts/sweep.sh gives its runs, so
# JOBS=2 runs two 1-thread processes side by side on the 2-core machine (../shared/VERIFIED.md). Every line runs;
# exits non-zero when any failed, after printing the failed lines to stderr.
set -euo pipefail
jobs=${JOBS:-2}
threads=${OMP_NUM_THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}
export OMP_NUM_THREADS=$threads
tr '\n' '\0' | xargs -0 -r -P "$jobs" -I{} bash -c '
  [ -n "$1" ] || exit 0
  bash -c "$1" || { rc=$?; echo "parallel.sh: failed (exit $rc): $1" >&2; exit 1; }' _ {}
