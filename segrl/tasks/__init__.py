"""Tasks by name. Adding a task = one module with a ``TASK = TaskSpec(...)`` + one line here."""

from __future__ import annotations

from segrl.registry import Registry
from segrl.tasks.base import DataError, TaskSpec

TASKS: Registry[TaskSpec] = Registry("task")


def _register_builtin() -> None:
    from segrl.tasks import chartgen, docci, grounding, mmsci, multichart

    for spec in (multichart.TASK, docci.TASK, mmsci.TASK, grounding.TASK, chartgen.TASK):
        TASKS.add(spec.name, spec)


_register_builtin()

__all__ = ["TASKS", "TaskSpec", "DataError"]
