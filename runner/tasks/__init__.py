"""Registry of task kinds: the `kind` key of a task config names one of these."""
from __future__ import annotations

from runner.tasks.base import Task
from runner.tasks.brochure import Brochure
from runner.tasks.chat import Chat
from runner.tasks.debate import Debate
from runner.tasks.summarize import Summarize

TASKS: dict[str, type[Task]] = {
    "single": Task,
    "summarize": Summarize,
    "brochure": Brochure,
    "debate": Debate,
    "chat": Chat,
}


def task_for(run) -> Task:
    return TASKS[run.task.kind](run)
