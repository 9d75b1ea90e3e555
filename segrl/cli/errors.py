"""User errors in one line: the ``segrl`` app's command group turns them into one line on stderr
and exit code 2; ``--debug`` (anywhere on the command line) or ``SEGRL_DEBUG=1`` shows the traceback.

A *user error* is what a user can fix from the message: a missing file or bad path
(:class:`FileNotFoundError`, :class:`NotADirectoryError`, :class:`IsADirectoryError`,
:class:`PermissionError`, any other :class:`OSError`), a bad value (:class:`ValueError`, which
:class:`segrl.config.ConfigError` and :class:`segrl.tasks.base.DataError` are), an unknown name
(:class:`segrl.registry.UnknownNameError`), a run that cannot resume
(:class:`segrl.trainers.checkpoint.ResumeError`), a run directory in use
(:class:`segrl.runlock.RunLockedError`), and click's usage errors (missing option, bad option
value). Their messages name the file or field and the fix at the raise site; here they are only
collapsed onto one line, prefixed by the command (``segrl train: ...``) and followed by where the
traceback is. Any other exception is a bug and keeps typer's traceback.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer
from typer.core import TyperGroup

try:  # typer >= 0.26 vendors click as typer._click; its commands raise that copy's exceptions
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer on top of click
    import click

DEBUG_ENV = "SEGRL_DEBUG"
EXIT_USER_ERROR = 2


def debug_enabled() -> bool:
    """``SEGRL_DEBUG`` is set to 1/true/yes (``--debug`` sets it for the process)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types shown as one line (imported lazily: the trainer stack is heavy)."""
    from segrl.registry import UnknownNameError
    from segrl.runlock import RunLockedError

    types: list[type[BaseException]] = [OSError, ValueError, UnknownNameError, RunLockedError]
    try:
        from segrl.trainers.checkpoint import ResumeError

        types.append(ResumeError)
    except ImportError:  # pragma: no cover - transformers missing: nothing raised it
        pass
    return tuple(types)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (line breaks included) collapsed to one space."""
    return " ".join(str(text).split())


def fail(message: str, command: str | None = None) -> NoReturn:
    """Print ``[command: ]message`` as one line on stderr and exit with code 2.

    Raises:
        click.exceptions.Exit: always (code 2).
    """
    prefix = f"{command}: " if command else ""
    print(one_line(f"{prefix}{message}"), file=sys.stderr, flush=True)
    raise typer.Exit(EXIT_USER_ERROR)


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and e.args:  # str(KeyError) quotes its message
        text = str(e.args[0])
    else:
        text = str(e) or type(e).__name__
    hint = "" if debug_enabled() else f" (for the traceback: --debug or {DEBUG_ENV}=1)"
    return f"{text}{hint}"


class SegrlGroup(TyperGroup):
    """The top-level ``segrl`` group: strips ``--debug``, turns user errors into one line + exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        before = os.environ.get(DEBUG_ENV)
        if "--debug" in args:
            args = [a for a in args if a != "--debug"]
            os.environ[DEBUG_ENV] = "1"
        try:
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=standalone_mode, **extra)
        finally:  # in-process callers (tests) get their environment back
            if before is None:
                os.environ.pop(DEBUG_ENV, None)
            else:
                os.environ[DEBUG_ENV] = before

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as e:
            if debug_enabled():
                raise
            _usage_error(e, info_name or "segrl")

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except click.ClickException as e:
            if debug_enabled():
                raise
            _usage_error(e, "segrl")
        except Exception as e:
            if debug_enabled() or not isinstance(e, user_error_types()):
                raise
            fail(_message(e), _innermost(ctx))


def _innermost(ctx: click.Context) -> str:
    """``segrl train``, ``segrl build-data``: the subcommand that was running."""
    return f"{ctx.command_path} {ctx.invoked_subcommand}" if ctx.invoked_subcommand else ctx.command_path


def _usage_error(e: click.ClickException, fallback: str) -> NoReturn:
    ctx = getattr(e, "ctx", None)
    where = ctx.command_path if ctx is not None else fallback
    fix = f" (see `{where} --help`)" if ctx is not None else ""
    print(one_line(f"{where}: {e.format_message()}{fix}"), file=sys.stderr, flush=True)
    raise typer.Exit(e.exit_code if e.exit_code else EXIT_USER_ERROR)


def known_algorithms() -> list[str]:
    """Every ``--algo`` name: :data:`segrl.trainers.registry.ALGORITHMS` (estimators and algorithms with
    their own trainer, one :class:`~segrl.trainers.registry.AlgorithmSpec` each)."""
    from segrl.trainers.registry import ALGORITHMS

    return ALGORITHMS.names()


def check_algorithm(name: str) -> None:
    """Raise :class:`segrl.registry.UnknownNameError` naming ``--algo`` and every known algorithm.

    Raises:
        UnknownNameError: ``name`` is not in :func:`known_algorithms`.
    """
    from segrl.registry import UnknownNameError

    known = known_algorithms()
    if name not in known:
        raise UnknownNameError(f"--algo: unknown algorithm {name!r}; known: {', '.join(known)}")
