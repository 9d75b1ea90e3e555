"""Tasks by name. Adding a task = one module in this package that defines ``TASK = TaskSpec(...)``.

:data:`TASKS` is filled by reading the ``TASK`` attribute of every module of this package (in
name order), so the registry, ``segrl build-data`` and ``segrl validate`` need no edit for a new
task. A task defined elsewhere (a plug-in, a test) is added with ``TASKS.add(spec.name, spec)``.
"""

from __future__ import annotations

import importlib
import pkgutil

from segrl.registry import Registry
from segrl.tasks.base import BuildOptions, DataError, TaskSpec

TASKS: Registry[TaskSpec] = Registry("task")


def _collect() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TASK", None)
        if isinstance(spec, TaskSpec):
            TASKS.add(spec.name, spec)


_collect()

__all__ = ["TASKS", "TaskSpec", "BuildOptions", "DataError"]
