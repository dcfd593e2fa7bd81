"""The fakes are strict about each provider's tool-call wire format, as the APIs are: a
conversation the real API would refuse is a 400 here too, through the
providers' own SDKs, so a provider module that sends a malformed tool loop fails its tests."""
from __future__ import annotations

import pytest

from tests.fakes.anthropic_server import anthropic_server, signature
from tests.fakes.gemini_server import SIGNATURE, gemini_server
from tests.fakes.ollama_server import ollama_server
from tests.fakes.openai_server import openai_server

TOOL = {"type": "function", "function": {"name": "get_ticket_price", "description": "The fare.", "parameters": {
    "type": "object", "properties": {"destination_city": {"type": "string"}}}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_ticket_price",
                                                         "arguments": '{"destination_city": "London"}'}}
ASKED = [{"role": "user", "content": "The fare to London?"}]


def openai_client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key="test-key", max_retries=0,
                         _strict_response_validation=True)


@pytest.mark.parametrize("messages, says", [
    ([*ASKED, {"role": "assistant", "content": None, "tool_calls": [CALL]}, {"role": "tool", "content": "$799"}],
     "Missing parameter 'tool_call_id'"),
    ([*ASKED, {"role": "tool", "tool_call_id": "call_1", "content": "$799"}],
     "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'"),
    ([*ASKED, {"role": "assistant", "content": None, "tool_calls": [CALL, {**CALL, "id": "call_2"}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "$799"}],
     "The following tool_call_ids did not have response messages: call_2"),
    ([*ASKED, {"role": "assistant", "content": None, "tool_calls": [
        {**CALL, "function": {**CALL["function"], "arguments": {"destination_city": "London"}}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "$799"}], "expected a string, but got an object"),
])
def test_openai_fake_refuses_a_malformed_tool_conversation(messages, says):
    import openai

    with openai_server() as server, pytest.raises(openai.BadRequestError, match=says):
        openai_client(server).chat.completions.create(model="gpt-4.1-mini", messages=messages, tools=[TOOL])


def test_openai_fake_streams_a_calls_arguments_in_pieces():
    with openai_server() as server:
        stream = openai_client(server).chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "Compare the fares to London and Paris"}],
            tools=[TOOL], stream=True)
        pieces = [(call.index, call.id, call.function.arguments) for chunk in stream for choice in chunk.choices
                  for call in choice.delta.tool_calls or ()]
    assert [(index, ident) for index, ident, _ in pieces if ident] == [(0, "call_0001"), (1, "call_0002")]
    assert len(pieces) > 4  # each call's arguments come in several pieces
    assert "".join(text for index, _, text in pieces if index == 1) == '{"destination_city": "Paris"}'


def anthropic_client(server):
    import anthropic

    return anthropic.Anthropic(base_url=server.url, api_key="test-key", max_retries=0,
                               _strict_response_validation=True)


USE = {"type": "tool_use", "id": "toolu_1", "name": "get_ticket_price", "input": {"destination_city": "London"}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "$799"}
THOUGHT = "The user asks: The fare to London?. I will answer briefly."


@pytest.mark.parametrize("messages, thinking, says", [
    ([*ASKED, {"role": "assistant", "content": [USE]}, {"role": "user", "content": [
        {"type": "tool_result", "content": "$799"}]}], None, "tool_result.tool_use_id: Field required"),
    ([*ASKED, {"role": "assistant", "content": [USE]}, {"role": "user", "content": "and?"}], None,
     "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1"),
    ([*ASKED, {"role": "assistant", "content": [USE]}, {"role": "user", "content": [
        RESULT, {**RESULT, "tool_use_id": "toolu_9"}]}], None,
     "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9"),
    ([*ASKED, {"role": "assistant", "content": [USE]}, {"role": "user", "content": [RESULT]}],
     {"type": "enabled", "budget_tokens": 1024}, "a final `assistant` message must start with a thinking block"),
    ([*ASKED, {"role": "assistant", "content": [{"type": "thinking", "thinking": THOUGHT, "signature": "forged"},
                                                 USE]}, {"role": "user", "content": [RESULT]}],
     {"type": "enabled", "budget_tokens": 1024}, "Invalid `signature` in `thinking` block"),
])
def test_anthropic_fake_refuses_a_malformed_tool_conversation(messages, thinking, says):
    import anthropic

    tools = [{"name": "get_ticket_price", "description": "The fare.", "input_schema": TOOL["function"]["parameters"]}]
    extra = {"thinking": thinking} if thinking else {}
    with anthropic_server() as server, pytest.raises(anthropic.BadRequestError, match=says):
        anthropic_client(server).messages.create(model="claude-haiku-4-5", max_tokens=2048, messages=messages,
                                                 tools=tools, **extra)


def test_anthropic_fake_takes_the_thinking_block_back_with_its_signature():
    tools = [{"name": "get_ticket_price", "description": "The fare.", "input_schema": TOOL["function"]["parameters"]}]
    messages = [*ASKED, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": THOUGHT, "signature": signature(THOUGHT)}, USE]},
        {"role": "user", "content": [RESULT]}]
    with anthropic_server() as server:
        answer = anthropic_client(server).messages.create(
            model="claude-haiku-4-5", max_tokens=2048, messages=messages, tools=tools,
            thinking={"type": "enabled", "budget_tokens": 1024})
    assert answer.stop_reason == "end_turn"


def gemini_call(server, model: str, contents: list[dict]):
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=server.url,
                                                                             api_version="v1beta"))
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_ticket_price", description="The fare.", parameters_json_schema=TOOL["function"]["parameters"])])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    return client.models.generate_content(model=model, contents=contents, config=config)


ASKED_GEMINI = {"role": "user", "parts": [{"text": "The fares to London and Paris?"}]}


def called(ident: str | None = None, signed: bool = False, city: str = "London") -> dict:
    part = {"function_call": {"name": "get_ticket_price", "args": {"destination_city": city},
                              **({"id": ident} if ident else {})}}
    return {**part, "thought_signature": SIGNATURE} if signed else part


def answered(ident: str | None = None) -> dict:
    return {"function_response": {"name": "get_ticket_price", "response": {"output": "$799"},
                                  **({"id": ident} if ident else {})}}


@pytest.mark.parametrize("model, contents, says", [
    ("gemini-2.5-flash-lite", [ASKED_GEMINI, {"role": "model", "parts": [called(), called(city="Paris")]},
                               {"role": "user", "parts": [answered()]}],
     "the number of function response parts is equal to the number of function call parts"),
    ("gemini-3-flash-preview", [ASKED_GEMINI, {"role": "model", "parts": [called("fc_1", signed=True)]},
                                {"role": "user", "parts": [answered("fc_9")]}],
     "functionResponse.id does not match functionCall.id"),
    ("gemini-3-flash-preview", [ASKED_GEMINI, {"role": "model", "parts": [called("fc_1")]},
                                {"role": "user", "parts": [answered("fc_1")]}],
     "Function call is missing a thought_signature in functionCall parts"),
    # a function call is the model's, a function response the user's turn's (the fake's wording)
    ("gemini-2.5-flash-lite", [{"role": "user", "parts": [{"text": "The fare?"}, called()]}], "contents.parts"),
    ("gemini-2.5-flash-lite", [ASKED_GEMINI, {"role": "model", "parts": [answered()]}], "contents.parts"),
])
def test_gemini_fake_refuses_a_malformed_function_calling_turn(model, contents, says):
    from google.genai import errors

    with gemini_server() as server, pytest.raises(errors.ClientError, match=says):
        gemini_call(server, model, contents)


def test_ollama_fake_refuses_tools_for_a_model_without_them_and_arguments_as_text():
    import ollama

    with ollama_server(models=("llama3.2", "gemma")) as server:
        client = ollama.Client(host=server.url)
        with pytest.raises(ollama.ResponseError, match="gemma:latest does not support tools"):
            client.chat(model="gemma", messages=ASKED, tools=[TOOL])
        with pytest.raises(ollama.ResponseError, match="must answer a tool call"):
            client.chat(model="llama3.2", messages=[*ASKED, {"role": "tool", "content": "$799"}], tools=[TOOL])
