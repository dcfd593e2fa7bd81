"""Registry of task kinds: the `kind` key of a task config names one of these."""
from __future__ import annotations

from runner.tasks.base import Task

TASKS: dict[str, type[Task]] = {
    "single": Task,
}


def task_for(run) -> Task:
    return TASKS[run.task.kind](run)
