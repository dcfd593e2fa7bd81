"""Registry of task kinds: the `kind` key of a task config names one of these.

Entries are import paths, so a run imports only its own task (the web tasks bring requests and
BeautifulSoup). A new task is one module and one line here.
"""
from __future__ import annotations

import importlib

from runner.tasks.base import Task

TASKS: dict[str, str | type[Task]] = {
    "single": Task,
    "summarize": "runner.tasks.summarize:Summarize",
    "brochure": "runner.tasks.brochure:Brochure",
    "debate": "runner.tasks.debate:Debate",
    "chat": "runner.tasks.chat:Chat",
}


def task_class(kind: str) -> type[Task]:
    entry = TASKS[kind]
    if isinstance(entry, str):
        module_name, _, class_name = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), class_name)
    return entry


def task_for(run) -> Task:
    return task_class(run.task.kind)(run)
