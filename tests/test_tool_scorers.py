"""The tool-use scorers on a cell's calls (runner.scorers.tool_use), where they apply (n/a rules), and their
config checks; the tools task's own pieces: canned results, argument checks, the cache key."""
from __future__ import annotations

import asyncio

import pytest

from runner.calls import Request, Tool
from runner.errors import ConfigError
from runner.scorers import parse
from runner.scorers.checks import MissingField
from runner.scorers.tool_use import verdict
from runner.tasks.tools import INVALID, OK, UNKNOWN, Tools, argument_problem, parse_tools

CITY = {"type": "object", "properties": {"destination_city": {"type": "string"}}, "required": ["destination_city"],
        "additionalProperties": False}
LONDON = {"id": "1", "name": "get_ticket_price", "arguments": {"destination_city": "london "}}
ITEM = {"tool": "get_ticket_price", "arguments": {"destination_city": "London"}}


def scorer(kind: str, required: bool = False, **raw):
    return parse("s", {"type": kind, **raw}, required=required)


def test_tool_called_passes_on_the_tool_with_the_items_arguments_text_compared_without_case_or_spaces():
    found = verdict(scorer("tool_called"), ITEM, [{"id": "0", "name": "other", "arguments": {}}, LONDON])
    assert found.passed and found.score == 1.0 and found.reason == 'called get_ticket_price({"destination_city": ' \
                                                                   '"london "})'


@pytest.mark.parametrize("calls, reason", [
    ([], "never called get_ticket_price (called no tool)"),
    ([{"id": "1", "name": "other", "arguments": {}}], "never called get_ticket_price (called other({}))"),
    ([{"id": "1", "name": "get_ticket_price", "arguments": {"destination_city": "Paris"}}],
     "called get_ticket_price, never with destination_city='London'"),
    ([{"id": "1", "name": "get_ticket_price", "arguments": "{not json"}],
     "called get_ticket_price, never with destination_city='London'"),
])
def test_tool_called_fails_without_the_right_call(calls, reason):
    found = verdict(scorer("tool_called"), ITEM, calls)
    assert not found.passed and found.score == 0.0 and found.reason.startswith(reason)


def test_tool_called_takes_its_own_value_arguments_with_item_fields_or_a_schema():
    item = {"tool": "none", "city": "London"}
    own = scorer("tool_called", value="get_ticket_price", arguments={"destination_city": "{city}"})
    assert verdict(own, item, [LONDON]).passed
    schema = scorer("tool_called", value="get_ticket_price",
                    schema={"properties": {"destination_city": {"pattern": "^[A-Z]"}}})
    assert not verdict(schema, item, [LONDON]).passed  # "london " does not start with a capital
    assert verdict(schema, item, [{**LONDON, "arguments": {"destination_city": "London"}}]).passed
    negated = parse("s", {"type": "not-tool_called", "value": "get_ticket_price"})
    assert not verdict(negated, item, [LONDON]).passed and verdict(negated, item, []).passed


def test_no_tool_passes_only_without_calls():
    item = {"tool": "none"}
    assert verdict(scorer("no_tool"), item, []).reason == "called no tool"
    failed = verdict(scorer("no_tool"), item, [LONDON])
    assert not failed.passed and failed.reason == 'called get_ticket_price({"destination_city": "london "})'


def test_a_tasks_default_tool_scorers_apply_only_where_the_item_says_so():
    with pytest.raises(MissingField) as no_call:
        verdict(scorer("tool_called"), {"tool": "none"}, [])
    assert no_call.value.why.startswith("the item expects no tool call")
    with pytest.raises(MissingField) as a_call:
        verdict(scorer("no_tool"), ITEM, [])
    assert a_call.value.why.startswith("the item expects a call of get_ticket_price")
    with pytest.raises(MissingField):
        verdict(scorer("tool_called"), {}, [])
    assert verdict(scorer("no_tool", required=True), ITEM, []).passed  # named by the user: every item


@pytest.mark.parametrize("raw, says", [
    ({"type": "tool_called", "arguments": [1]}, "scorer s: arguments must be a mapping"),
    ({"type": "tool_called", "schema": {"type": 5}}, "scorer s: schema is not a valid JSON Schema"),
    ({"type": "contains", "value": "x", "arguments": {}}, "scorer s: `arguments` is for type tool_called"),
])
def test_tool_scorer_config_errors(raw, says):
    with pytest.raises(ConfigError, match=says):
        parse("s", raw)


def tools(**entry):
    return parse_tools([{"name": "get_ticket_price", "description": "The fare.", "parameters": CITY, **entry}])


def test_canned_results_answer_by_the_arguments_and_fail_as_a_tool_raises():
    (spec,) = tools(results=[{"when": {"destination_city": "London"}, "result": {"price": "$799"}},
                             {"when": {"destination_city": "Sydney"}, "error": "the fares service is down"},
                             {"result": "Unknown"}])
    task = Tools.__new__(Tools)
    by_name = {"get_ticket_price": spec}

    def answer(arguments, name="get_ticket_price"):
        return asyncio.run(task.answer_call({"id": "1", "name": name, "arguments": arguments}, by_name))

    assert answer({"destination_city": " LONDON"}) == (OK, '{"price": "$799"}')
    assert answer({"destination_city": "Sydney"}) == ("error", "error: ToolFailed: the fares service is down")
    assert answer({"destination_city": "Rome"}) == (OK, "Unknown")
    status, said = answer({"city": "Rome"})
    assert status == INVALID and "'destination_city' is a required property" in said
    assert answer("{not json")[0] == INVALID
    assert answer({}, name="get_price")[0] == UNKNOWN


def test_arguments_are_checked_against_the_tools_schema():
    (spec,) = tools(function="runner.tasks.airline:get_ticket_price")
    assert argument_problem(spec, {"destination_city": "Paris"}) is None
    assert argument_problem(spec, {"destination_city": 3}) == "3 is not of type 'string' (at destination_city)"
    assert "Additional properties are not allowed" in argument_problem(spec, {"destination_city": "P", "x": 1})
    assert argument_problem(spec, "oops").startswith("the arguments are not a JSON object")


def test_the_cache_key_holds_the_tools_and_the_whole_conversation():
    from runner.calling.cache import cache_key
    from runner.settings import ModelSettings

    model = ModelSettings(name="gpt", provider="openai", id="gpt-4.1-mini")
    messages = [{"role": "user", "content": "Fare to London?"}]
    tool = Tool("get_ticket_price", "The fare.", CITY)
    plain = cache_key(model, "", Request(messages, 0.7, 256), 0)
    offered = cache_key(model, "", Request(messages, 0.7, 256, tools=(tool,)), 0)
    other = cache_key(model, "", Request(messages, 0.7, 256, tools=(Tool("get_ticket_price", "Fares.", CITY),)), 0)
    assert len({plain, offered, other}) == 3
    turn = [*messages, {"role": "assistant", "content": "", "tool_calls": [LONDON]},
            {"role": "tool", "tool_call_id": "1", "name": "get_ticket_price", "content": "$799", "is_error": False}]
    assert cache_key(model, "", Request(turn, 0.7, 256, tools=(tool,)), 0) != offered
