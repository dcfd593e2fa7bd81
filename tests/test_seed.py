"""`seed`: null gives every call a fresh seed, recorded in its row; a number N gives repeat k the seed N+k, sent to
every provider whose API takes one (in its own field), in the cache key, and in the row. Each provider is reached
through its real SDK on a strict loopback fake that refuses fields its API does not know."""
from __future__ import annotations

import json

import pytest

from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.ollama_server import ollama_server
from tests.fakes.openai_batches import openai_batch_server
from tests.fakes.openai_server import openai_server

ITEMS = "task.inputs=[{audience: owls}]"


def sent_seed(model: str, body: dict):
    """The seed a request carried, read where each API takes it; None when it carried none."""
    if model == "gpt":
        return body.get("seed")
    if model == "gemini":
        return body.get("generationConfig", {}).get("seed")
    if model == "llama":
        return body.get("options", {}).get("seed")
    assert "seed" not in json.dumps(body), body  # claude: the Messages API has no seed anywhere
    return None


def test_every_provider_that_takes_a_seed_gets_seed_plus_the_repeat_and_the_row_says_what_was_sent(runner):
    with openai_server() as gpt, anthropic_server() as claude, gemini_server() as gemini, ollama_server() as llama:
        run = runner("-m", "model=gpt,claude,gemini,llama", "seed=7", "repeats=2", "cache=false", ITEMS,
                     env={"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key",
                          "ANTHROPIC_BASE_URL": claude.url, "ANTHROPIC_API_KEY": "test-key",
                          "GOOGLE_GEMINI_BASE_URL": gemini.url, "GEMINI_API_KEY": "test-key",
                          "OLLAMA_HOST": llama.url})
        servers = {"gpt": gpt, "claude": claude, "gemini": gemini, "llama": llama}
    assert run.code == 0, run.stderr[-3000:]
    rows = run.rows()
    assert not any("seed" in r["variant"] for r in rows)  # which samples, not what is asked: the same cells
    for model, server in servers.items():
        mine = {int(r["repeat"]): r["seed"] for r in rows if r["model"] == model}
        seeds = sorted((sent_seed(model, r.json) for r in server.received if r.method == "POST"), key=str)
        if model == "claude":
            assert mine == {0: "", 1: ""} and seeds == [None, None]
        else:
            assert mine == {0: "7", 1: "8"}, model  # repeats still differ, each reproducible
            assert seeds == [7, 8], model
    records = [json.loads(line) for path in run.root().glob("*/results.jsonl") for line in path.open()]
    assert sorted(r["seed"] for r in records if r["model"] == "gpt") == [7, 8]  # a number in results.jsonl


def test_without_a_seed_every_call_gets_a_fresh_one_and_its_row_says_which(runner):
    with openai_server() as server:
        run = runner("model=gpt", "repeats=3", "cache=false", ITEMS,
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    recorded = sorted(int(r["seed"]) for r in run.rows())
    assert recorded == sorted(request.json["seed"] for request in server.received)
    assert len(set(recorded)) == 3 and all(0 <= seed < 2**31 for seed in recorded)


def test_google_generativeai_has_no_seed_so_none_is_sent_or_recorded(run_settings, run_here, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    with gemini_server() as server:
        records, tally = run_here(run_settings("model=gemini", "model.sdk=generativeai",
                                               f"model.base_url={server.url}", "seed=7", ITEMS))
    assert tally.ok == 1
    assert records[0]["seed"] is None
    assert "seed" not in json.dumps(server.received[0].json)


def test_a_fixed_seed_is_part_of_the_cache_key_and_a_fresh_one_is_not(run_settings, run_here, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with openai_server() as server:
        def run(name, *overrides):
            settings = run_settings("model=gpt", f"model.base_url={server.url}/v1", "model.stream=false", ITEMS,
                                    *overrides)
            return run_here(settings, tmp_path / name)[0][0]

        first = run("first", "seed=5")
        again = run("again", "seed=5")
        other = run("other", "seed=6")
        unseeded = run("unseeded")
        unseeded_again = run("unseeded_again")
    assert (first["cache_hit"], again["cache_hit"], other["cache_hit"]) == (False, True, False)
    assert first["seed"] == again["seed"] == 5 and other["seed"] == 6
    # without a seed the key is what it always was; the answer it finds came from a call whose seed is unknown
    assert (unseeded["cache_hit"], unseeded_again["cache_hit"]) == (False, True)
    assert isinstance(unseeded["seed"], int) and unseeded_again["seed"] is None
    assert len(server.received) == 3


def test_a_batch_sends_the_seed_in_each_request_line(run_settings, run_here, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with openai_batch_server() as server:
        records, tally = run_here(run_settings("model=gpt", "model.batch=true", "batch.poll_s=0.02", "seed=3",
                                               "repeats=2", f"model.base_url={server.url}/v1", ITEMS))
    assert tally.ok == 2
    lines = [json.loads(line) for line in server.batches.files["file-0001"]["content"].decode().splitlines()]
    assert sorted(line["body"]["seed"] for line in lines) == [3, 4]
    assert sorted(r["seed"] for r in records) == [3, 4]


@pytest.mark.parametrize("value, problem", [("-1", "out of range"), ("2147483648", "out of range"),
                                            ("abc", "is not an integer"), ("1.5", "is not an integer")])
def test_a_bad_seed_is_refused_before_any_call(runner, value, problem):
    run = runner(f"seed={value}")
    assert run.code == 2
    assert "seed=" in run.stderr and value in run.stderr and problem in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
