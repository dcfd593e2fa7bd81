"""`tools`: the model may call functions before it answers, as the course's airline assistant calls
`get_ticket_price(destination_city)` to quote a real price.

The task's `tools` declare each function once: its name, its description, a JSON Schema of its arguments,
and how it runs: `function: module:function` (called with the arguments as keywords; a coroutine function
is awaited, a plain one runs in a worker thread), or `results`, a table of canned answers for a task that
needs no code. A cell is a loop. Turn N sends the conversation so far with the tools; the model answers in
text, or calls tools (several at once, too). The runner runs every call and sends each result back, answering
the call by its id, and asks again; a text answer ends the loop. Each turn is a call of its own, recorded
with step `turn-N` (its tokens, cost, latency and the calls it made, `tool_calls`); its details say what the
previous turn's calls gave (`tool_results`, each ok, error, invalid or unknown). A model that still calls
tools after `task.max_tool_rounds` rounds ends the cell with an error row that says so (step `tool-rounds`).

Nothing a tool does stops the sweep. A tool that raises answers the model with the error's text (`is_error`),
as the course's handler does; arguments that are not a JSON object, or do not match the tool's schema, are
answered with what is wrong so the model can call again, and counted (the report's tool use table); so is a
call of a tool that does not exist. A model that takes no tools has its cells skipped with the reason.
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.calls import Tool, ToolCall, assistant_message, tool_message
from runner.errors import ConfigError
from runner.json_schema import check_schema
from runner.tasks.base import Cell, Session, Task

# the statuses of a tool call's result (details.tool_results, the report's tool use table)
OK, ERROR, INVALID, UNKNOWN = "ok", "error", "invalid", "unknown"
ROUNDS_STEP = "tool-rounds"  # the error row of a cell whose model kept calling tools
RESULT_CHARS = 20_000  # a tool's result sent back at most this long: a runaway function must not fill the context
NAME_CHARS = 64  # every provider takes function names of letters, digits, _ and - up to 64 characters
TOOL_KEYS = {"name", "description", "parameters", "function", "results"}


TOOL_LOOP = "tool_loop"  # in a record's details: a turn of a tool loop


def turn_details(turn: int, results: list[dict]) -> dict:
    """A turn's details: its number, and what the previous turn's calls gave. `tool_loop` tells the scorers and the
    report that the cell's last turn is its answer (a chat's turns are a transcript)."""
    return {TOOL_LOOP: True, "turn": turn, "tool_results": results}


def in_tool_loop(details) -> bool:
    """Whether a record (by its details) is a turn of a tool loop, or the error row that ended one."""
    return isinstance(details, dict) and bool(details.get(TOOL_LOOP))


@dataclass(frozen=True)
class Canned:
    """One entry of a tool's `results` table: when the call's arguments include `when` (strings compared
    without regard to case or surrounding spaces; no `when`: any call), answer `result`, or fail with `error`."""

    when: Mapping[str, Any] | None
    result: Any = None
    error: str | None = None

    def matches(self, arguments: Mapping[str, Any]) -> bool:
        return self.when is None or all(same(arguments.get(k), v) for k, v in self.when.items())


def same(found: Any, wanted: Any) -> bool:
    """Argument values compared as a user means them: text without regard to case or surrounding spaces."""
    if isinstance(found, str) and isinstance(wanted, str):
        return found.strip().casefold() == wanted.strip().casefold()
    if isinstance(wanted, Mapping):
        return isinstance(found, Mapping) and all(same(found.get(k), v) for k, v in wanted.items())
    return found == wanted


class ToolFailed(Exception):
    """A canned result's `error`: the tool failed as a real one raises."""


@dataclass(frozen=True)
class ToolSpec:
    """A declared tool: what the model is offered (`tool`) and how it runs (`function` or `results`)."""

    tool: Tool
    function: str | None = None
    results: tuple[Canned, ...] = ()

    def implementation(self) -> Callable[..., Any]:
        """The `module:function`, imported; a ConfigError when it cannot be."""
        module_name, _, attribute = (self.function or "").partition(":")
        where = f"task.tools[{self.tool.name}].function={self.function!r}"
        if not module_name or not attribute:
            raise ConfigError(f"{where} must be written module:function")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except Exception as exc:  # noqa: BLE001 - whatever its import raises, the user sees one line
            raise ConfigError(f"{where} does not import: {type(exc).__name__}: {exc}") from None
        if not callable(found):
            raise ConfigError(f"{where} is not a function")
        return found

    async def run(self, arguments: dict) -> Any:
        """The tool's result for these (already checked) arguments; raises what the function raises."""
        if self.function:
            function = self.implementation()
            if inspect.iscoroutinefunction(function):
                return await function(**arguments)
            return await asyncio.to_thread(function, **arguments)
        for entry in self.results:
            if entry.matches(arguments):
                if entry.error is not None:
                    raise ToolFailed(entry.error)
                return entry.result
        raise ToolFailed(f"no result for these arguments: {json.dumps(arguments, ensure_ascii=False)}")


def parse_tools(raw: Any) -> list[ToolSpec]:
    """task.tools as checked ToolSpecs, or a ConfigError naming the first thing wrong (before any call)."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError("task.tools must be a non-empty list of tools (name, description, parameters, and "
                          "function: module:function or results: [...]), see conf/task/airline.yaml")
    specs: list[ToolSpec] = []
    for index, entry in enumerate(raw):
        where = f"task.tools[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a mapping with name, description, parameters and function or results")
        unknown = set(entry) - TOOL_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(TOOL_KEYS))})")
        name = entry.get("name")
        if not isinstance(name, str) or not name or len(name) > NAME_CHARS \
                or not all(c.isascii() and (c.isalnum() or c in "_-") for c in name):
            raise ConfigError(f"{where}.name={name!r} must be 1 to {NAME_CHARS} letters, digits, _ or - "
                              f"(what every provider takes as a function name)")
        if any(spec.tool.name == name for spec in specs):
            raise ConfigError(f"{where}.name={name!r}: two tools have this name")
        description = entry.get("description")
        if not isinstance(description, str) or not description.strip():
            raise ConfigError(f"{where}.description: tool {name} needs a description (the model reads it to decide "
                              f"when to call it)")
        parameters = entry.get("parameters", {"type": "object", "properties": {}})
        check_schema(parameters, f"{where}.parameters")
        if parameters.get("type") != "object":
            raise ConfigError(f"{where}.parameters must be a JSON Schema of type object (the call's arguments)")
        function, results = entry.get("function"), entry.get("results")
        if (function is None) == (results is None):
            raise ConfigError(f"{where}: tool {name} needs one of function (module:function) or results (a table "
                              f"of canned answers)")
        spec = ToolSpec(Tool(name, description.strip(), dict(parameters)),
                        None if function is None else str(function), _canned(results, f"{where}.results"))
        if spec.function:
            spec.implementation()  # it imports, now rather than at the first call
        specs.append(spec)
    return specs


def _canned(raw: Any, where: str) -> tuple[Canned, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of {{when: {{argument: value}}, result: ...}} "
                          f"(or error: text instead of result)")
    table = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or set(entry) - {"when", "result", "error"} \
                or ("result" in entry) == ("error" in entry):
            raise ConfigError(f"{where}[{index}] must be a mapping with result or error, and optionally when")
        when = entry.get("when")
        if when is not None and not isinstance(when, Mapping):
            raise ConfigError(f"{where}[{index}].when must be a mapping of argument -> value")
        table.append(Canned(when=None if when is None else dict(when), result=entry.get("result"),
                            error=None if entry.get("error") is None else str(entry["error"])))
    return tuple(table)


def result_text(value: Any) -> str:
    """A tool's return value as the text the model reads: text as it is, anything else as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= RESULT_CHARS else text[:RESULT_CHARS] + f"... [cut at {RESULT_CHARS} characters]"


def argument_problem(spec: ToolSpec, arguments: Any) -> str | None:
    """What is wrong with a call's arguments (one line the model can act on), or None when they fit the schema."""
    import jsonschema

    if not isinstance(arguments, dict):
        return f"the arguments are not a JSON object ({str(arguments)[:200]!r})"
    schema = spec.tool.parameters
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(arguments),
                    key=lambda e: list(e.path))
    if not errors:
        return None
    where = "/".join(str(p) for p in errors[0].path)
    return f"{errors[0].message}" + (f" (at {where})" if where else "")


class Tools(Task):
    multi_step = True
    takes_images = False  # its turns resend the conversation; task.images is the single-call kind's
    options: dict[str, Any] = {
        "tools": None,  # the functions offered: see conf/task/airline.yaml
        "max_tool_rounds": 5,  # rounds of tool calls a cell may make before its answer; one more is an error row
    }
    estimate_note = ("first turn only: the model may call tools, and each round of calls adds a turn "
                     "(up to task.max_tool_rounds)")
    not_batched = ("a tools task's turns are sent directly, not as batches: each turn waits for the last one's "
                   "tool results")

    def __init__(self, run) -> None:
        super().__init__(run)
        self._specs: list[ToolSpec] | None = None

    @property
    def specs(self) -> list[ToolSpec]:
        if self._specs is None:
            self._specs = parse_tools(self.opts["tools"])
        return self._specs

    @property
    def offered(self) -> tuple[Tool, ...]:
        return tuple(spec.tool for spec in self.specs)

    def check(self) -> None:
        rounds = self.opts["max_tool_rounds"]
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ConfigError(f"task.max_tool_rounds={rounds!r} must be a whole number >= 1")
        self.specs  # noqa: B018 - parsed and checked now, before any call
        super().check()

    async def run(self, cell: Cell, session: Session) -> None:
        history = self.messages(cell.item)
        by_name = {spec.tool.name: spec for spec in self.specs}
        rounds = int(self.opts["max_tool_rounds"])
        results: list[dict] = []  # what the previous turn's calls gave
        for turn in range(1, rounds + 2):
            answer = await session.call(cell, list(history), step=f"turn-{turn}", tools=self.offered,
                                        details=turn_details(turn, results))
            if not answer.ok or not answer.tool_calls:
                return  # the answer, or a failed turn (its row says why)
            if turn > rounds:
                session.fail(cell, f"the model still called tools after task.max_tool_rounds={rounds} rounds of "
                             f"tool calls, without answering", step=ROUNDS_STEP,
                             details={**turn_details(turn + 1, []), "calls_not_run": len(answer.tool_calls)})
                return
            history.append(assistant_message(answer))
            done = await asyncio.gather(*(self.answer_call(call, by_name) for call in answer.tool_calls))
            results = []
            for call, (status, content) in zip(answer.tool_calls, done):
                history.append(tool_message(call, content, is_error=status != OK))
                results.append({"id": call["id"], "name": call["name"], "status": status, "content": content})

    async def answer_call(self, call: ToolCall, by_name: dict[str, ToolSpec]) -> tuple[str, str]:
        """(status, the text the model is sent) for one call: the tool's result, or what went wrong."""
        spec = by_name.get(call["name"])
        if spec is None:
            return UNKNOWN, f"error: there is no tool named {call['name']!r}; the tools are: {', '.join(by_name)}"
        problem = argument_problem(spec, call["arguments"])
        if problem is not None:
            return INVALID, (f"error: the arguments do not match {spec.tool.name}'s parameters: {problem}. Call "
                             f"it again with arguments that do.")
        try:
            return OK, result_text(await spec.run(call["arguments"]))
        except Exception as exc:  # noqa: BLE001 - a tool that raises answers the model; it never stops the sweep
            return ERROR, f"error: {type(exc).__name__}: {' '.join(str(exc).split())}"
