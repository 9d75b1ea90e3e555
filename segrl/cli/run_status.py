"""``segrl run-status``: may a sweep skip this run? (exit 0 skip, 1 train, 3 stale; :mod:`segrl.runstatus`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def command(
    config: Path = typer.Option(..., "--config", "-c", help="Experiment YAML (as given to `segrl train`)."),
    output_dir: str = typer.Option(..., help="The run directory (as given to `segrl train`)."),
    algo: str | None = typer.Option(None, help="As `segrl train --algo`."),
    model: str | None = typer.Option(None, help="As `segrl train --model`."),
    seed: int | None = typer.Option(None, help="As `segrl train --seed`."),
    set_: list[str] = typer.Option([], "--set", help="As `segrl train --set` (repeatable)."),
    rerun_stale: bool = typer.Option(False, help="A stale run is moved aside to stale-runs/RUN-<time> (exit 1: "
                                     "train it again) instead of stopping the sweep (exit 3)."),
) -> None:
    """Exit 0 if OUTPUT_DIR holds a finished run whose run.json matches this train request (config, model,
    task version, data fingerprint), 1 if nothing finished is there (train it), 3 if it is stale."""
    from segrl.cli.errors import check_algorithm
    from segrl.runstatus import EXIT_MATCH, EXIT_STALE, EXIT_TRAIN, move_aside, request, run_status

    overrides = list(set_)
    if algo:
        check_algorithm(algo)
        overrides.append(f"train.algo={algo}")
    overrides.append(f"output_dir={output_dir}")
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    status = run_status(output_dir, request(config, overrides, model))
    if status.state == "match":
        commit = (status.record.get("git") or {}).get("commit") or "?"
        print(f"{output_dir}: finished, matches the request (commit {commit[:10]}): skipping")
        raise typer.Exit(EXIT_MATCH)
    if status.state == "absent":
        print(f"{output_dir}: no finished run: train it")
        raise typer.Exit(EXIT_TRAIN)
    shown = "; ".join(status.mismatches[:5]) + (f"; and {len(status.mismatches) - 5} more"
                                                if len(status.mismatches) > 5 else "")
    if rerun_stale:
        moved = move_aside(output_dir)
        print(f"{output_dir}: stale ({shown}); moved to {moved}: train it again", file=sys.stderr)
        raise typer.Exit(EXIT_TRAIN)
    print(f"{output_dir}: finished but stale: {shown}. Pass --rerun-stale (make ... RERUN_STALE=1) to move it "
          "aside and retrain, or use another output directory", file=sys.stderr)
    raise typer.Exit(EXIT_STALE)
