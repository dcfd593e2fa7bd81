"""The tool-use scorers: was the right tool called with the right arguments, or was no tool called at all.

They score a cell of a tools task (runner.tasks.tools) on every tool call its turns made, in order, not on its
final answer's text: `tool_called` passes when some call has the expected tool's name and arguments that
include the expected ones (strings compared without regard to case or surrounding spaces) and match `schema`
when one is given; `no_tool` passes when no call was made. By default they read the item: its `tool` names the
tool it should call, or is `none` where calling any would be wrong, and its `arguments` what the call must
include. A task's default `tool_called` is n/a for items with no tool to call, its default `no_tool` for items
that expect one; named on the command line, `no_tool` scores every item.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runner.scorers.checks import MissingField, Verdict, _filled
from runner.tasks.tools import same

NO_TOOL = "none"  # an item's `tool` when calling any tool would be wrong


def expected_tool(scorer, item: Mapping[str, Any], where: str) -> str | None:
    """The tool the item should call (tool_called), or None (no_tool); raises MissingField where it does not
    apply to the item."""
    name = scorer.field or "tool"
    wanted = item.get(name)
    if scorer.type == "no_tool":
        if scorer.required or str(wanted).strip().lower() == NO_TOOL:
            return None
        if wanted is None:
            raise MissingField(f"scorer {scorer.name} (no_tool): {where} has no {name} field", name)
        raise MissingField(f"scorer {scorer.name} (no_tool): {where} expects a call of {wanted}", name,
                           why=f"the item expects a call of {wanted}, so this default scorer of the task does not "
                               f"apply to it")
    if scorer.value is not None:
        return _filled(scorer.value, item, scorer, where)
    if wanted is None:
        raise MissingField(f"scorer {scorer.name} (tool_called) has no `value` and {where} has no {name} field "
                           f"naming the tool it should call", name)
    if str(wanted).strip().lower() == NO_TOOL:
        raise MissingField(f"scorer {scorer.name} (tool_called): {where} expects no tool call", name,
                           why="the item expects no tool call (tool: none), so this default scorer of the task does "
                               "not apply to it")
    return str(wanted)


def wanted_arguments(scorer, item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """What the call's arguments must include: the scorer's `arguments` (item fields filled in), else the item's
    `arguments` when the scorer has no schema of its own."""
    if scorer.arguments is not None:
        return {key: _filled(value, item, scorer, "the item") if isinstance(value, str) else value
                for key, value in scorer.arguments.items()}
    found = item.get("arguments")
    return found if isinstance(found, Mapping) and scorer.schema is None else None


def shown(call: Mapping[str, Any]) -> str:
    arguments = call.get("arguments")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f"{call.get('name')}({text})"


def plain(scorer, item: Mapping[str, Any], calls: list[dict]) -> Verdict:
    """The verdict before negation."""
    made = "; ".join(shown(call) for call in calls[:5]) + ("; ..." if len(calls) > 5 else "")
    name = expected_tool(scorer, item, "the item")  # raises MissingField where the scorer does not apply
    if scorer.type == "no_tool":
        if not calls:
            return Verdict(1.0, True, "called no tool")
        return Verdict(0.0, False, f"called {made}")
    arguments = wanted_arguments(scorer, item)
    named = [call for call in calls if call.get("name") == name]
    if not named:
        return Verdict(0.0, False, f"never called {name}" + (f" (called {made})" if calls else " (called no tool)"))
    for call in named:
        given = call.get("arguments")
        if not isinstance(given, Mapping):
            continue
        if arguments is not None and not all(same(given.get(k), v) for k, v in arguments.items()):
            continue
        if scorer.schema is not None and _schema_problem(scorer.schema, given):
            continue
        return Verdict(1.0, True, f"called {shown(call)}")
    wanted = ", ".join(f"{k}={v!r}" for k, v in (arguments or {}).items()) or "arguments matching the schema"
    return Verdict(0.0, False, f"called {name}, never with {wanted}: {made}")


def _schema_problem(schema: dict, arguments: Mapping[str, Any]) -> str | None:
    import jsonschema

    error = next(iter(jsonschema.validators.validator_for(schema)(schema).iter_errors(dict(arguments))), None)
    return error.message if error is not None else None


def verdict(scorer, item: Mapping[str, Any], calls: list[dict]) -> Verdict:
    """The scorer's verdict on a cell's tool calls, negated for `not-` types."""
    found = plain(scorer, item, calls)
    if not scorer.negate:
        return found
    return Verdict(1.0 - found.score, not found.passed, f"not {scorer.type}: {found.reason}")
