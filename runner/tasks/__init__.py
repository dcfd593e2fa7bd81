"""Registry of task kinds: the `kind` key of a task config names one of these.

Entries are import paths, so a run imports only its own task (the web tasks bring requests and
BeautifulSoup). A new task is one module and one line here. The registry checks what only it knows:
the kind, and the task config's keys beyond the ones every task has (the kind's own `options`).
"""
from __future__ import annotations

import importlib

from runner.errors import ConfigError
from runner.settings import TASK_KEYS, RunSettings
from runner.tasks.base import Task

TASKS: dict[str, str | type[Task]] = {
    "single": Task,
    "summarize": "runner.tasks.summarize:Summarize",
    "brochure": "runner.tasks.brochure:Brochure",
    "debate": "runner.tasks.debate:Debate",
    "chat": "runner.tasks.chat:Chat",
    "tools": "runner.tasks.tools:Tools",
}


def task_class(kind: str) -> type[Task]:
    """The class of a task kind, or a ConfigError naming the known kinds."""
    entry = TASKS.get(kind)
    if entry is None:
        raise ConfigError(f"task.kind={kind!r} is not a known task kind (known: {', '.join(sorted(TASKS))})")
    if isinstance(entry, str):
        module_name, _, class_name = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), class_name)
    return entry


def task_for(run: RunSettings) -> Task:
    """The run's task, once its config holds only keys its kind knows."""
    cls = task_class(run.task.kind)
    allowed = TASK_KEYS | set(cls.options)
    for key in run.task.options:
        if key not in allowed:
            raise ConfigError(f"task/{run.task.name}: unknown key 'task.{key}' (known: {', '.join(sorted(allowed))})")
    return cls(run)
