"""``segrl build-data TASK``: build a task's DatasetDict on disk (atomically).

One subcommand per registered task, generated from its :class:`~segrl.tasks.base.TaskSpec`:
``--source`` and ``--out``, then one option per field of the task's typed build options
(:class:`~segrl.tasks.base.BuildOptions` subclass). Adding a task adds its command; nothing here
changes.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
import types
import typing
from pathlib import Path

import typer
from rich.console import Console

from segrl.cli.errors import fail
from segrl.tasks import TASKS, DataError
from segrl.tasks.base import TaskSpec
from segrl.tasks.build_log import BUILD_LOG, report_lines

console = Console()


def _report(ds, out: Path, seconds: float) -> None:
    for split, d in ds.items():
        n_seg = sum(len(x) for x in d["segment_labels"])
        console.print(f"[green]{split}[/]: {len(d)} examples, {n_seg} segments")
    console.print(f"wrote {out} in {seconds:.1f}s")


def _cli_type(tp):
    """The annotation typer is given for an options field (a tuple becomes a repeatable list option)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _cli_type(args[0]) | None
    if origin is tuple:
        return list[typing.get_args(tp)[0]]
    return tp


def _option_parameter(f: dataclasses.Field, tp) -> inspect.Parameter:
    meta = f.metadata
    decls = [meta["flag"]] if "flag" in meta else []
    if not decls and tp is not bool:
        decls = ["--" + f.name.replace("_", "-")]
    decls += list(meta.get("aliases", ()))
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=_cli_type(tp),
                             default=typer.Option(f.default, *decls, help=meta.get("help", "")))


def make_command(spec: TaskSpec):
    """The ``segrl build-data <spec.name>`` command: ``--source``, ``--out`` and the options' fields."""
    hints = typing.get_type_hints(spec.options)
    fields = spec.options.option_fields()

    def command(source: str | None, out: Path, **values) -> None:
        t0 = time.time()
        stats: dict = {}
        try:
            for f in fields:
                if typing.get_origin(_strip_none(hints[f.name])) is tuple and values[f.name] is not None:
                    values[f.name] = tuple(values[f.name]) or None
            options = spec.options(**values)
            ds = spec.build_with(source, out, options, stats)
        except (DataError, ValueError) as e:
            fail(f"build-data {spec.name} failed: {e}")
        _report(ds, out, time.time() - t0)
        if (Path(out) / BUILD_LOG).is_file():
            for line in report_lines(out):
                console.print(line)
        for line in spec.report(ds, out, options, stats) if spec.report is not None else ():
            console.print(line)

    params = [
        inspect.Parameter("source", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                          default=typer.Option(spec.source, help=spec.source_help)),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Option(Path(f"data/{spec.name}"), help="Output DatasetDict directory.")),
        *(_option_parameter(f, hints[f.name]) for f in fields),
    ]
    command.__signature__ = inspect.Signature(params)
    command.__name__ = spec.name
    command.__doc__ = spec.description
    return command


def _strip_none(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def build_app() -> typer.Typer:
    """The ``segrl build-data`` group: one command per task registered in :data:`segrl.tasks.TASKS`."""
    group = typer.Typer(help="Build a task's dataset (train/test DatasetDict saved to disk).", no_args_is_help=True)
    for name in TASKS:
        group.command(name, help=TASKS.get(name).description)(make_command(TASKS.get(name)))
    return group


app = build_app()
