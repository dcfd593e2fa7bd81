"""The tools task kind: the course's airline assistant (`task=airline`) calling get_ticket_price through every SDK
against the strict fakes (tests/fakes/tools.py scripts what the fake models do), the loop's rules (parallel calls,
a tool that raises, arguments that do not match, max_tool_rounds), the cache, batch and dry runs, and the
tool-use scorers and report."""
from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import pytest

from runner.records import read_records
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.ollama_server import ollama_server
from tests.fakes.openai_server import openai_server

MODELS = ("gpt", "claude", "gemini", "llama")
PRICES = {"london": "$799", "tokyo": "$1400"}


@contextlib.contextmanager
def fakes(**options):
    """The four providers' fakes, and the environment that points each SDK at its own."""
    with openai_server(**options) as gpt, anthropic_server(**options) as claude, gemini_server(**options) as gemini, \
            ollama_server(**options) as llama:
        env = {"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key", "ANTHROPIC_BASE_URL": claude.url,
               "ANTHROPIC_API_KEY": "test-key", "GOOGLE_GEMINI_BASE_URL": gemini.url, "GEMINI_API_KEY": "test-key",
               "OLLAMA_HOST": llama.url}
        yield {"gpt": gpt, "claude": claude, "gemini": gemini, "llama": llama}, env


def records(root: Path) -> list[dict]:
    return [r for path in sorted(root.glob("**/results.jsonl")) for r in read_records(path)]


def scores(root: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(root.glob("**/scores.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def cell(rows: list[dict], model: str, item: str) -> list[dict]:
    """A cell's rows in the order of its turns."""
    mine = [r for r in rows if r["model"] == model and r["item"] == item]
    return sorted(mine, key=lambda r: (r["details"] or {}).get("turn", 99))


def check_airline(rows: list[dict], model: str) -> None:
    """What the course's airline task records for one model: each city's turn-1 call with its argument, the tools'
    results in turn-2's details, the fare in the answer, and no call for the greeting."""
    for item, city in (("london", "London"), ("tokyo", "Tokyo"), ("atlantis (unknown city)", "Atlantis"),
                       ("sydney (the tool fails)", "Sydney")):
        first, second = cell(rows, model, item)
        assert (first["step"], second["step"]) == ("turn-1", "turn-2")
        assert first["status"] == second["status"] == "ok", (model, item, first["error"], second["error"])
        assert [(c["name"], c["arguments"]) for c in first["tool_calls"]] == \
            [("get_ticket_price", {"destination_city": city})]
        assert first["response"] == "" and first["input_tokens"] and first["output_tokens"]
        assert second["tool_calls"] == []
        (result,) = second["details"]["tool_results"]
        assert result["id"] == first["tool_calls"][0]["id"] and result["name"] == "get_ticket_price"
        tool = [m for m in second["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tool] == [first["tool_calls"][0]["id"]]
        if item == "sydney (the tool fails)":  # the tool raised: its error answered the model, the cell went on
            assert result["status"] == "error" and tool[0]["is_error"]
            assert result["content"] == "error: ConnectionError: the fares service for Oceania did not answer"
        else:
            assert result["status"] == "ok" and not tool[0]["is_error"]
        if item in PRICES:
            assert PRICES[item] in second["response"]
    (greeting,) = cell(rows, model, "greeting (no tool)")
    assert greeting["status"] == "ok" and greeting["tool_calls"] == [] and greeting["step"] == "turn-1"


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not streamed"])
def test_airline_runs_the_loop_through_every_sdk_records_each_turn_and_scores_tool_use(runner, stream):
    with fakes() as (servers, env):
        run = runner("-m", f"model={','.join(MODELS)}", "task=airline", f"model.stream={str(stream).lower()}", env=env)
        assert run.code == 0, run.stderr[-3000:]
        rows = records(run.root())
        for model in MODELS:
            check_airline(rows, model)
            assert len([r for r in rows if r["model"] == model]) == len(servers[model].received) == 9
        csv_rows = run.rows()
        london = next(r for r in csv_rows if r["model"] == "gpt" and r["item"] == "london" and r["step"] == "turn-1")
        assert london["tool_calls"] == 'get_ticket_price({"destination_city": "London"})'
        # the tool-use scorers: the right tool with the right argument, no call for the greeting, the fare said
        found = {(s["model"], s["item"], s["scorer"]): s for s in scores(run.root())}
        for model in MODELS:
            assert found[(model, "london", "called")]["pass"] is True
            assert found[(model, "london", "price")]["pass"] is True
            assert found[(model, "greeting (no tool)", "no_tool")]["pass"] is True
            assert found[(model, "greeting (no tool)", "called")]["status"] == "skipped"  # n/a: no tool to call
            assert found[(model, "london", "no_tool")]["status"] == "skipped"  # n/a: it should call one
        report = (run.root() / "report.md").read_text(encoding="utf-8")
        table = report.split("## Tool use", 1)[1].split("\n## ", 1)[0]
        for model in MODELS:
            line = next(line for line in table.splitlines() if line.startswith(f"| {model} |"))
            cells = [c.strip() for c in line.strip("|").split("|")]
            # called: 4 of 4 with Wilson's interval; no_tool 1 of 1; 1.8 turns per item; 4 calls; 1 tool failed
            assert cells[5] == "100% [51%, 100%] (4)" and cells[6] == "100% [21%, 100%] (1)", line
            assert cells[7:13] == ["1.8", "4", "0", "0", "1", "0"], line
            assert cells[13].startswith("$") or model == "llama"


def test_parallel_calls_bad_arguments_an_unknown_tool_and_max_tool_rounds(runner):
    items = ("[{id: both, question: 'Compare the fares to London and Paris', tool: get_ticket_price}, "
             "{id: bad, question: 'bad arguments: what is the fare to London?', tool: get_ticket_price, "
             "arguments: {destination_city: london}}, "
             "{id: wrong, question: 'wrong tool: the fare to Tokyo?', tool: get_ticket_price}, "
             "{id: loop, question: 'keep calling: the fare to Berlin?', tool: get_ticket_price}]")
    with fakes() as (servers, env):
        run = runner("-m", f"model={','.join(MODELS)}", "task=airline", f"task.inputs={items}",
                     "task.max_tool_rounds=2", "~task.scorers.price", env=env)
        assert run.code == 1, run.stderr[-3000:]  # the loop's error rows
        rows = records(run.root())
        for model in MODELS:
            # parallel calls: both run and answered in one turn, both fares in the answer
            first, second = cell(rows, model, "both")
            assert [c["arguments"]["destination_city"] for c in first["tool_calls"]] == ["London", "Paris"]
            assert [r["status"] for r in second["details"]["tool_results"]] == ["ok", "ok"]
            assert "$799" in second["response"] and "$899" in second["response"]
            # arguments that do not match the schema: answered with what is wrong, then corrected, and counted
            first, second, third = cell(rows, model, "bad")
            assert first["tool_calls"][0]["arguments"] == {"city": "London"}
            (invalid,) = second["details"]["tool_results"]
            assert invalid["status"] == "invalid"
            assert "'destination_city' is a required property" in invalid["content"]
            assert second["tool_calls"][0]["arguments"] == {"destination_city": "London"}
            assert "$799" in third["response"]
            # a tool that was not offered: answered as an error naming the tools, counted
            unknown = cell(rows, model, "wrong")[1]["details"]["tool_results"][0]
            assert unknown["status"] == "unknown" and "get_ticket_price" in unknown["content"]
            # still calling after max_tool_rounds=2: turns 1-3, then an error row that says so
            loop = cell(rows, model, "loop")
            assert [r["step"] for r in loop] == ["turn-1", "turn-2", "turn-3", "tool-rounds"]
            assert loop[-1]["status"] == "error"
            assert "still called tools after task.max_tool_rounds=2 rounds" in loop[-1]["error"]
        found = {(s["model"], s["item"], s["scorer"]): s for s in scores(run.root())}
        for model in MODELS:
            assert found[(model, "bad", "called")]["pass"] is True  # the corrected call has the argument
            assert found[(model, "both", "called")]["pass"] is True
            assert found[(model, "loop", "called")]["status"] == "skipped"  # the cell has no answer
        table = (run.root() / "report.md").read_text(encoding="utf-8").split("## Tool use", 1)[1].split("\n## ")[0]
        line = next(line for line in table.splitlines() if line.startswith("| gpt |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        # items, called, turns per item (2+3+3+3)/4, calls 2+2+2+3, bad arguments, unknown tools, failed, no answer
        assert cells[4] == "4" and cells[7:13] == ["2.8", "9", "1", "1", "0", "1"], line


def test_a_rerun_pays_for_no_turn_it_already_has(runner):
    """Every turn is cached under the whole conversation and the tools: a re-run sends nothing, and Claude's
    thinking blocks (needed by the next turn) come back from the cache with the tool calls."""
    with fakes() as (servers, env):
        for args in (("-m", "model=claude,gemini", "model.reasoning=low"), ("-m", "model=gpt,llama")):
            first = runner(*args, "task=airline", env=env)
            assert first.code == 0, first.stderr[-3000:]
            sent = {name: len(server.received) for name, server in servers.items()}
            again = runner(*args, "task=airline", env=env)
            assert again.code == 0, again.stderr[-3000:]
            assert {name: len(server.received) for name, server in servers.items()} == sent
            rows = again.rows()
            assert len(rows) == 18 and {(r["cache_hit"], r["spent_usd"]) for r in rows} == {("true", "0.0")}, \
                {(r["cache_hit"], r["spent_usd"]) for r in rows}
            for model in {r["model"] for r in rows}:
                check_airline(records(again.root()), model)
        assert all(len(server.received) == 9 for server in servers.values())


def test_thinking_and_thought_signatures_go_back_in_the_loop(runner):
    """Claude with thinking (budget and adaptive) and Gemini 3 refuse a tool loop that drops what they sent;
    google-generativeai runs Gemini 2.5's loop and refuses Gemini 3's, whose signatures its protos cannot hold."""
    with fakes() as (servers, env):
        for args in (["model=claude", "model.reasoning=low"], ["model=claude", "model.reasoning=low",
                                                               "model.stream=false"],
                     ["model=claude", "model.id=claude-opus-4-7", "model.reasoning=low"],
                     ["model=gemini", "model.id=gemini-3-flash-preview"],
                     ["model=gemini", "model.id=gemini-3-flash-preview", "model.stream=false"],
                     ["model=gemini", "model.sdk=generativeai"]):
            run = runner(*args, "task=airline", env=env)
            assert run.code == 0, (args, run.stderr[-3000:])
            check_airline(records(run.root()), args[0].split("=")[1])
        run = runner("model=gemini", "model.sdk=generativeai", "model.id=gemini-3-flash-preview", "task=airline",
                     "cache=false", env=env)  # the cache key does not tell the SDKs apart: google-genai's answers
        assert run.code == 1
        rows = run.rows()
        assert {r["status"] for r in rows} == {"skipped"}
        assert "google-generativeai's protos have no thought signatures" in rows[0]["error"]


def test_models_without_tools_are_skipped_with_the_reason(runner):
    with openai_server() as server:
        env = {"OPENAI_API_KEY": "test-key"}
        run = runner("model=local_server", f"model.base_url={server.url}/v1", "task=airline", env=env)
        assert run.code == 1 and not server.received
        rows = run.rows()
        assert len(rows) == 5 and {r["status"] for r in rows} == {"skipped"}
        assert "does not take tools" in rows[0]["error"] and "model.tool_call=true" in rows[0]["error"]
        run = runner("model=local_server", f"model.base_url={server.url}/v1", "model.tool_call=true",
                     "model.api_key_env=OPENAI_API_KEY", "task=airline", env=env)
        assert run.code == 0, run.stderr[-3000:]
        check_airline(records(run.root()), "local_server")
    run = runner("model=local", "task=airline")  # SmolLM2 cannot follow llama.cpp's function-calling format
    assert run.code == 1
    rows = run.rows()
    assert {r["status"] for r in rows} == {"skipped"} and "function-calling" in rows[0]["error"]


def test_batch_mode_says_once_that_tool_loops_run_directly(runner):
    with fakes() as (servers, env):
        run = runner("-m", "model=gpt,claude", "task=airline", "model.batch=true", env=env)
        assert run.code == 0, run.stderr[-3000:]
        assert run.stderr.count("a tools task's turns are sent directly, not as batches") == 1
        assert all(r.path.endswith("/chat/completions") for r in servers["gpt"].received)
        assert all(r.path == "/v1/messages" for r in servers["claude"].received)
        check_airline(records(run.root()), "gpt")


def test_a_dry_run_estimates_the_first_turn_with_its_tools_and_says_so(runner):
    run = runner("model=gpt", "task=airline", "dry_run=true")
    assert run.code == 0, run.stderr[-2000:]
    rows = run.rows("estimate.csv")
    assert len(rows) == 5
    assert all("first turn only: the model may call tools" in r["note"] for r in rows)
    plain = runner("model=gpt", "task=airline", "dry_run=true", "~task.tools", "~task.max_tool_rounds",
                   "task.kind=single").rows("estimate.csv")
    # the tools' declarations are input tokens too
    assert int(rows[0]["input_tokens"]) > int(plain[0]["input_tokens"]) + 40
    # a model that takes no tools: each row says a real run would skip it, and why
    local = runner("model=local", "task=airline", "dry_run=true")
    assert local.code == 0, local.stderr[-2000:]
    notes = [r["note"] for r in local.rows("estimate.csv")]
    assert len(notes) == 5 and all("a real run would skip this call: the embedded model is offered no tools" in n
                                   for n in notes), notes


@pytest.mark.parametrize("override, says", [
    ("~task.tools", "task.tools must be a non-empty list of tools"),
    ("task.tools.0.function=nowhere:nothing",
     "task.tools[get_ticket_price].function='nowhere:nothing' does not import: ModuleNotFoundError"),
    ("task.tools.0.parameters.type=array", "task.tools[0].parameters must be a JSON Schema of type object"),
    ("task.tools.0.name='get ticket'", "task.tools[0].name='get ticket' must be 1 to 64 letters"),
    ("task.max_tool_rounds=0", "task.max_tool_rounds=0 must be a whole number >= 1"),
    ("+task.scorers.called.arguments=5", "scorer called: arguments must be a mapping"),
    ("+task.images=[question]", "task.images=['question']: task kind tools sends no images"),
])
def test_bad_tools_config_is_one_line_and_exit_2_before_any_call(runner, override, says):
    run = runner("model=gpt", "task=airline", override, env={"OPENAI_API_KEY": "test-key",
                                                             "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert run.code == 2, run.stderr[-2000:]
    assert says in run.stderr
    assert not list((run.cwd / "outputs").glob("**/results.csv"))


CANNED = """\
kind: tools
system: You are FlightAI's assistant.
user: "{question}"
tools:
  - name: get_ticket_price
    description: The return fare to a city.
    parameters: {type: object, properties: {destination_city: {type: string}}, required: [destination_city]}
    results:
      - {when: {destination_city: London}, result: {destination_city: London, price: "$123"}}
      - {when: {destination_city: Sydney}, error: the fares service is down}
      - {result: Unknown}
inputs:
  - {id: london, question: "The fare to London?", tool: get_ticket_price, price: "$123"}
  - {id: sydney, question: "The fare to Sydney?", tool: get_ticket_price}
scorers:
  called: {type: tool_called}
  price: {type: contains, field: price}
"""


def test_a_table_of_canned_results_needs_no_code(runner, tmp_path):
    (tmp_path / "mine" / "task").mkdir(parents=True)
    (tmp_path / "mine" / "task" / "fares.yaml").write_text(CANNED, encoding="utf-8")
    with ollama_server() as llama:
        run = runner("--config-dir", str(tmp_path / "mine"), "model=llama", "task=fares",
                     env={"OLLAMA_HOST": llama.url})
        assert run.code == 0, run.stderr[-3000:]
    rows = records(run.root())
    assert "$123" in cell(rows, "llama", "london")[1]["response"]
    (failed,) = cell(rows, "llama", "sydney")[1]["details"]["tool_results"]
    assert failed == {"id": "ollama-call-1", "name": "get_ticket_price", "status": "error",
                      "content": "error: ToolFailed: the fares service is down"}
    assert {(s["item"], s["scorer"], s["pass"]) for s in scores(run.root()) if s["status"] == "ok"} == \
        {("london", "called", True), ("london", "price", True), ("sydney", "called", True)}


def test_a_turn_of_tool_calls_without_usage_counts_its_arguments_as_output(runner):
    """A server that streams no usage (some OpenAI-compatible ones): the runner counts the tokens itself, and a
    turn that only called tools said its calls' arguments, not nothing."""
    with openai_server(usage_in_stream=False) as server:
        run = runner("model=gpt", "task=airline", "task.inputs=[{id: london, question: 'The fare to London?', "
                     "tool: get_ticket_price}]", "~task.scorers.price",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
        assert run.code == 0, run.stderr[-3000:]
    first, second = cell(records(run.root()), "gpt", "london")
    assert first["tool_calls"] and first["response"] == "" and first["tokens_source"] == "tiktoken"
    assert first["output_tokens"] >= 5  # {"destination_city": "London"}
    assert second["output_tokens"] > 0 and second["tool_calls"] == []


def test_tool_calls_from_a_stream_that_broke_before_its_finish_reason_are_never_run(runner):
    """The calls and their arguments came, the finish reason never did: the turn may be cut short, so its tools
    are not run on what arrived. An error worth a retry, each attempt paid; the loop never reaches a second
    turn."""
    with openai_server(finish_in_stream=False) as server:
        run = runner("model=gpt", "task=airline", "cache=false", "model.max_attempts=2",
                     "task.inputs=[{id: london, question: 'The fare to London?', tool: get_ticket_price}]",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
        received = [json.loads(request.body) for request in server.received]
    assert run.code == 1, run.stderr[-3000:]
    [row] = cell(records(run.root()), "gpt", "london")
    assert row["status"] == "error" and row["error"].startswith("the stream ended before a finish reason")
    assert row["tool_calls"] in ([], None, "") and float(row["spent_usd"]) > 0
    assert len(received) == 2 and not any(m["role"] == "tool" for body in received for m in body["messages"])


def test_ctrl_c_in_the_middle_of_a_tool_loop_keeps_its_first_turns_and_the_rerun_pays_only_for_the_rest(
        start_python, tmp_path):
    """Stopped (Ctrl-C) while the cells wait for their second turn: exit 130 with the run's own last line and
    no traceback, and every first turn already answered kept. The same command again asks the model only for
    what was not answered (the first turns come from the cache, tool calls and all) and finishes every loop."""
    import signal
    import threading
    import time

    from tests.conftest import clean_env

    arrived, release = threading.Event(), threading.Event()
    with openai_server() as gpt:
        answer = gpt.routes[("POST", "/v1/chat/completions")]

        def held(request):  # a request carrying a tool's result is a second turn: it waits
            if any(m.get("role") == "tool" for m in json.loads(request.body)["messages"]):
                arrived.set()
                release.wait(60)
            return answer(request)

        gpt.routes[("POST", "/v1/chat/completions")] = held
        env = clean_env(OPENAI_BASE_URL=gpt.url + "/v1", OPENAI_API_KEY="test-key",
                        RUNNER_CACHE_DIR=str(tmp_path / "cache"))
        command = ["-m", "runner", "model=gpt", "task=airline", "hydra.run.dir=out"]
        try:
            proc = start_python(command, tmp_path, env)
            assert arrived.wait(120), proc.communicate()[1][-3000:]
            time.sleep(0.5)  # the other cells' first turns come back meanwhile
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=120)
        finally:
            release.set()
        stopped = records(tmp_path / "out")
        asked_before = len(gpt.received)
        gpt.routes[("POST", "/v1/chat/completions")] = answer
        again = start_python(command, tmp_path, env)
        _, again_stderr = again.communicate(timeout=300)
        asked_again = [json.loads(r.body)["messages"] for r in gpt.received[asked_before:]]
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "run the same command again to finish" in stderr.strip().splitlines()[-1]
    first_turns = [r for r in stopped if r["step"] == "turn-1"]
    assert first_turns and all(r["status"] == "ok" for r in first_turns), stopped
    assert again.returncode == 0, again_stderr[-3000:]
    # the run resumed in its folder: its rows follow the stopped run's; the first turns kept came from the cache,
    # and the model was asked only for the rest (second turns, and first turns the stopped run had not recorded)
    resumed = records(tmp_path / "out")[len(stopped):]
    check_airline(resumed, "gpt")
    kept = {r["item"] for r in first_turns}
    assert all(r["cache_hit"] and r["spent_usd"] == 0 for r in resumed if r["step"] == "turn-1" and r["item"] in kept)
    assert len(asked_again) == len(resumed) - len(kept)
    with open(tmp_path / "out" / "results.csv", newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 9  # the comparison counts each turn of each item once
