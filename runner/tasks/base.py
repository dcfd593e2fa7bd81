"""What a task is: it turns one cell (an item and a repeat) into one or more model calls.

A task builds messages and asks the session to call the model; the session makes, times and records
each call. Single-call tasks only say how to build messages; multi-step tasks (brochure, debate, chat)
override `run`. Every answer a task asks for goes through `answer`, which asks for it in the task's
`schema` when the task declares one.
A single-call task sends images with its prompt when `task.images` names the item fields
that hold them (runner.tasks.images): the user message is then the images, then its text.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runner.calls import Message, Response, Tool, chat, text_part
from runner.errors import ConfigError
from runner.inputs import item_label
from runner.settings import PromptSettings, RunSettings, TaskSettings
from runner.tasks.images import FOLDER, MAX_IMAGE_BYTES, Image, ImageError, ImageStore, check_source

# `{name}` is a field; `{{name}}` is the literal text `{name}`; any other brace (code, JSON) stays as written
FIELD = re.compile(r"\{\{(\w+)\}\}|\{(\w+)\}")


def fill(template: str, fields: Mapping[str, Any]) -> str:
    """Put an item's fields into `{name}` slots; any other brace (code in a question) stays as written."""
    def slot(match: re.Match) -> str:
        literal, name = match.groups()
        if literal is not None:
            return "{" + literal + "}"
        return str(fields[name]) if name in fields else match.group(0)

    return FIELD.sub(slot, template)


def field_names(template: str) -> list[str]:
    """The fields a template fills, in order, each once."""
    return list(dict.fromkeys(name for literal, name in FIELD.findall(template) if name))


@dataclass(frozen=True)
class Template:
    """A prompt text with `{field}` slots, named by the config key a user sets (task.user, prompt.system)."""

    where: str
    text: str
    provided: frozenset[str] = frozenset()  # fields the task fills in itself (a page's title and text)


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
                   json_schema: dict | None = None, note: str = "", details: dict | None = None,
                   model: str | None = None, tools: tuple[Tool, ...] = ()) -> Response: ...

    def fail(self, cell: Cell, reason: str, *, step: str = "", details: dict | None = None) -> None: ...


class Task:
    """A single-call task: system prompt plus one user message filled from the item's fields."""

    #: task-specific keys allowed in the task's config, with their defaults
    options: dict[str, Any] = {
        "max_image_bytes": MAX_IMAGE_BYTES,  # the largest image task.images may send (a file or a download)
    }
    #: whether a cell makes further calls that depend on earlier answers (a dry run sees only the first)
    multi_step = False
    #: fields the task fills in itself in its system and user prompts (a page's title); the rest are the item's
    provides: frozenset[str] = frozenset()
    #: what a dry run's rows say of a multi-step task (it estimates each cell's first call only)
    estimate_note = "first call only: this task makes further calls per cell that depend on the answers"
    #: why its calls cannot go through a provider's batch API (model.batch=true): said once, and they are made
    #: directly; None: they can
    not_batched: str | None = None
    #: whether it sends the images `task.images` names (the single-call task does; the others refuse it)
    takes_images = True

    def __init__(self, run: RunSettings) -> None:
        self.run_settings = run
        self.settings: TaskSettings = run.task
        self.prompt: PromptSettings = run.prompt
        self.opts = {**self.options, **dict(run.task.options)}
        self._images: ImageStore | None = None

    def cells(self) -> Iterator[Cell]:
        """The job's cells, made as they are needed: the items of a file are read as the calls go."""
        for i, item in enumerate(self.settings.inputs):
            label = item_label(item, i)
            for r in range(self.run_settings.repeats):
                yield Cell(i, item, label, r)

    def cell_count(self) -> int:
        return len(self.settings.inputs) * self.run_settings.repeats

    def system_prompt(self, fields: Mapping[str, Any] | None = None) -> str:
        """The task's system prompt as the selected prompt variant shapes it."""
        system = fill(self.system_template().text, fields or {})
        if self.prompt.append:
            system = f"{system}\n\n{self.prompt.append}" if system else self.prompt.append
        return system

    def system_template(self) -> Template:
        """The template `system_prompt` fills: the prompt variant's system prompt, else the task's."""
        if self.prompt.system is not None:
            return Template(f"prompt.system (prompt={self.prompt.name})", self.prompt.system, self.provides)
        return Template("task.system", self.settings.system, self.provides)

    def templates(self) -> list[Template]:
        """Every template the task fills for a cell (`prompt.append` is not filled: it is not one)."""
        return [self.system_template(), Template("task.user", self.settings.user, self.provides)]

    def check_fields(self) -> None:
        """Every field a template uses exists in every item, or one line names the first that does not."""
        for template in self.templates():
            needed = [name for name in field_names(template.text) if name not in template.provided]
            for index, item in enumerate(self.settings.inputs):
                for name in needed:
                    if name not in item:
                        have = ", ".join(item) or "none"
                        raise ConfigError(
                            f"task {self.settings.name}: {template.where} uses {{{name}}}, which "
                            f"task.inputs[{index}] does not have (its fields: {have}; write {{{{{name}}}}} "
                            f"for a literal {{{name}}})")

    def messages(self, fields: Mapping[str, Any], images: Sequence[Image] = ()) -> list[Message]:
        """The system prompt (if any) and the user message, both filled from these fields; with images, the user
        message is the images, then its text (images first, as Anthropic advises, for every provider alike)."""
        text = fill(self.settings.user, fields)
        return chat(self.system_prompt(fields=fields), [*(image.part() for image in images), text_part(text)]
                    if images else text)

    def check(self) -> None:
        """Raise ConfigError when the task's own inputs cannot run (called before any call). Tasks that
        check more call this too."""
        self.check_fields()
        self.check_images()

    def check_images(self) -> None:
        """Every field task.images names is in every item and holds an image that can be sent: a URL, or a
        file that exists, is small enough and is a PNG, JPEG, GIF or WebP image (one line names the first that
        is not). Each file is checked once, however many items name it."""
        names = self.settings.images
        if not names:
            return
        if not self.takes_images:
            raise ConfigError(f"task.images={list(names)}: task kind {self.settings.kind} sends no images (the "
                              f"single-call kind, kind: single, does)")
        limit = self.opts["max_image_bytes"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"task.max_image_bytes={limit!r} must be a whole number >= 1")
        checked: set[str] = set()
        for index, item in enumerate(self.settings.inputs):
            for name in names:
                if name not in item:
                    have = ", ".join(item) or "none"
                    raise ConfigError(f"task {self.settings.name}: task.images names {name!r}, which "
                                      f"task.inputs[{index}] does not have (its fields: {have})")
                value = item[name]
                if isinstance(value, str) and value.strip() in checked:
                    continue
                try:
                    check_source(value, f"task.inputs[{index}].{name}", limit)
                except ImageError as exc:
                    raise ConfigError(str(exc)) from None
                checked.add(value.strip())

    def image_store(self, session: Session) -> ImageStore:
        """Where the job's images come from: the run's copies (images/ at its root), else the files and the web."""
        if self._images is None:
            folder = session.root / FOLDER if session.root is not None else None
            self._images = ImageStore(folder, int(self.opts["max_image_bytes"]))
        return self._images

    async def images(self, cell: Cell, session: Session) -> list[Image]:
        """The cell's images, in the order task.images names their fields; raises ImageError."""
        store = self.image_store(session) if self.settings.images else None
        return [await store.get(str(cell.item[name]).strip()) for name in self.settings.images]

    def opponent_models(self) -> dict:
        """Other models the task calls besides the swept one ({config name: ModelSettings})."""
        return {}

    async def prepare(self, session: Session) -> None:
        """Work shared by every cell of the job (fetching pages), done once before the calls."""

    def answer_format(self) -> dict[str, Any]:
        """How the task's answers are asked for: in its `schema` (the provider's structured output where the
        model has one; JSON mode or a grammar elsewhere), or as free text."""
        if self.settings.schema is None:
            return {}
        return {"json_mode": True, "json_schema": dict(self.settings.schema)}

    async def answer(self, session: Session, cell: Cell, messages: list[dict], **values) -> Response:
        """One of the task's answers (any step but a task's own intermediate asks, such as the brochure's
        links), in the task's schema when it declares one."""
        return await session.call(cell, messages, **self.answer_format(), **values)

    async def run(self, cell: Cell, session: Session) -> None:
        try:
            images = await self.images(cell, session)
        except ImageError as exc:  # one image that cannot be read fails its cell, not the job
            session.fail(cell, str(exc))
            return
        await self.answer(session, cell, self.messages(cell.item, images))
