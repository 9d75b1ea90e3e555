"""The ``segrl`` command line: one module per subcommand, each parsing then calling one ``main``."""

from __future__ import annotations

import os

import typer

# Offline by default: model/data hubs are unreachable on many research machines; a hub id
# still works when the files are cached. Set HF_HUB_OFFLINE=0 to allow downloads.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from segrl import faults  # noqa: E402

faults.install()  # no-op unless SEGRL_FAULT is set (the crash-anywhere tests, tests/faults/)

from segrl.cli import (  # noqa: E402
    analyze,
    bench,
    build_data,
    check_sight,
    evaluate,
    judge,
    make_tiny_model,
    report,
    run_status,
    train,
    validate,
    warm_start,
)
from segrl.cli.errors import SegrlGroup  # noqa: E402

app = typer.Typer(
    name="segrl",
    cls=SegrlGroup,
    help="Segment-level credit assignment (SD-GRPO and friends) for RL fine-tuning of VLMs. "
    "A user error (missing file, bad value, unknown name) prints one line and exits 2; "
    "add --debug (or set SEGRL_DEBUG=1) for its traceback.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(build_data.app, name="build-data")
app.command("make-tiny-model")(make_tiny_model.command)
app.command("warm-start")(warm_start.command)
app.command("train")(train.command)
app.command("eval")(evaluate.command)
app.command("report")(report.command)
app.command("validate")(validate.command)
app.command("run-status")(run_status.command)
app.command("check-sight")(check_sight.command)
app.add_typer(analyze.app, name="analyze")
app.add_typer(bench.app, name="bench")
app.add_typer(judge.app, name="judge")

__all__ = ["app"]
