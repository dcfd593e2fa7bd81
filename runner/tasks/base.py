"""What a task is: it turns one cell (an item and a repeat) into one or more model calls.

A task builds messages and asks the session to call the model; the session makes, times and records
each call. Single-call tasks only say how to build messages; multi-step tasks (brochure, debate, chat)
override `run`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

from runner.inputs import item_label
from runner.providers.base import Response
from runner.settings import PromptSettings, RunSettings, TaskSettings

FIELD = re.compile(r"\{(\w+)\}")


def fill(template: str, fields: Mapping[str, Any]) -> str:
    """Put an item's fields into `{name}` slots; any other brace (code in a question) stays as written."""
    return FIELD.sub(lambda m: str(fields[m.group(1)]) if m.group(1) in fields else m.group(0), template)


@dataclass(frozen=True)
class Cell:
    index: int  # the item's position in task.inputs
    item: Mapping[str, Any]
    label: str
    repeat: int


class Session(Protocol):
    """What a task may do with a cell: call the model (recorded), or record why it could not."""

    root: Path | None  # the run's or sweep's folder, shared by all its jobs (page snapshots live there)

    async def call(self, cell: Cell, messages: list[dict], *, step: str = "", json_mode: bool = False,
                   note: str = "", details: dict | None = None, model: str | None = None) -> Response: ...

    def fail(self, cell: Cell, reason: str, *, step: str = "", details: dict | None = None) -> None: ...


class Task:
    """A single-call task: system prompt plus one user message filled from the item's fields."""

    #: task-specific keys allowed in the task's config, with their defaults
    options: dict[str, Any] = {}
    #: whether a cell makes further calls that depend on earlier answers (a dry run sees only the first)
    multi_step = False

    def __init__(self, run: RunSettings) -> None:
        self.run_settings = run
        self.settings: TaskSettings = run.task
        self.prompt: PromptSettings = run.prompt
        self.opts = {**self.options, **dict(run.task.options)}

    def cells(self) -> list[Cell]:
        return [Cell(i, item, item_label(item, i), r)
                for i, item in enumerate(self.settings.inputs)
                for r in range(self.run_settings.repeats)]

    def system_prompt(self, base: str | None = None, fields: Mapping[str, Any] | None = None) -> str:
        """The task's system prompt as the selected prompt variant shapes it."""
        system = self.prompt.system if self.prompt.system is not None else (base if base is not None else self.settings.system)
        system = fill(system, fields or {})
        if self.prompt.append:
            system = f"{system}\n\n{self.prompt.append}" if system else self.prompt.append
        return system

    def messages(self, cell: Cell) -> list[dict]:
        system = self.system_prompt(fields=cell.item)
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": fill(self.settings.user, cell.item)})
        return messages

    def check(self) -> None:
        """Raise ConfigError when the task's own inputs cannot run (called before any call)."""

    def opponent_models(self) -> dict:
        """Other models the task calls besides the swept one ({config name: ModelSettings})."""
        return {}

    async def prepare(self, session: Session) -> None:
        """Work shared by every cell of the job (fetching pages), done once before the calls."""

    async def run(self, cell: Cell, session: Session) -> None:
        await session.call(cell, self.messages(cell))
