"""Token counts without provider usage: tiktoken's real encodings offline, else the 4-characters estimate."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import pytest

from runner.tokens import count_messages, count_text, encoding_name, estimate
from tests.conftest import clean_env
from tests.fakes.openai_server import openai_server

TEXT = "Bonjour, ça va? 日本語のテキスト"
JOKE = [{"role": "system", "content": "You are an assistant that is great at telling jokes"},
        {"role": "user", "content": "Tell a light-hearted joke for an audience of Data Scientists"}]


@pytest.mark.parametrize("model_id,encoding", [
    ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"), ("gpt-4.1-mini", "o200k_base"),
    ("gpt-5", "o200k_base"), ("gpt-5-nano", "o200k_base"), ("o3-mini", "o200k_base"),
    ("openai/gpt-4.1", "o200k_base"), ("gpt-4", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"), ("claude-sonnet-4-5", None), ("gemini-2.5-flash", None),
    ("SmolLM2-135M-Instruct", None),
])
def test_encoding_follows_the_model_family(model_id, encoding):
    assert encoding_name(model_id) == encoding


def test_real_encodings_count_offline(real_encodings):
    # o200k_base and cl100k_base split this text differently: 11 and 13 tokens
    assert count_text(TEXT, "gpt-4o") == (11, "tiktoken")
    assert count_text(TEXT, "gpt-5-mini") == (11, "tiktoken")
    assert count_text(TEXT, "gpt-4") == (13, "tiktoken")
    assert count_text("tiktoken is great!", "gpt-3.5-turbo") == (6, "tiktoken")
    # chat framing: 3 tokens per message and 3 to prime the reply, as OpenAI bills them
    assert count_messages(JOKE, "gpt-4.1-mini") == (10 + 11 + 2 * 3 + 3, "tiktoken")


def test_other_families_are_estimated_at_four_characters_a_token(real_encodings):
    assert count_text("x" * 40, "claude-sonnet-4-5") == (10, "estimate")
    assert count_messages(JOKE, "gemini-2.5-flash") == (estimate(JOKE[0]["content"]) + estimate(JOKE[1]["content"]),
                                                        "estimate")
    # a dry run counts them with o200k_base as an approximation
    assert count_messages(JOKE, "claude-sonnet-4-5", approximate=True) == (30, "tiktoken")


def test_a_tool_loops_calls_are_counted_as_input_too(real_encodings):
    """The calls an assistant turn made go back with the conversation: counted where the server reports no usage."""
    call = {"id": "call_1", "name": "get_ticket_price", "arguments": {"destination_city": "London"}}
    loop = [*JOKE, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "name": "get_ticket_price", "content": "$799"}]
    without = [*JOKE, {"role": "assistant", "content": None}, loop[-1]]
    said = count_text('get_ticket_price {"destination_city": "London"}', "gpt-4.1-mini")[0]
    assert count_messages(loop, "gpt-4.1-mini")[0] == count_messages(without, "gpt-4.1-mini")[0] + said
    assert count_messages(loop, "gemini-2.5-flash")[0] > count_messages(without, "gemini-2.5-flash")[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentProxy:
    """A loopback proxy that accepts connections and never answers: a network that drops packets."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


def offline_env(tmp_path, proxy_port: int) -> dict:
    """No cached encodings, and https traffic sent to a loopback proxy instead of the internet."""
    empty = tmp_path / "empty-tiktoken-cache"
    empty.mkdir()
    proxy = f"http://127.0.0.1:{proxy_port}"
    return clean_env(TIKTOKEN_CACHE_DIR=str(empty), HTTPS_PROXY=proxy, https_proxy=proxy,
                     NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")


LOAD = ("import json, logging, sys; logging.basicConfig(level=logging.WARNING, stream=sys.stdout)\n"
        "from runner.tokens import load_encoding\n"
        "print(json.dumps(load_encoding('o200k_base', timeout_s=float(sys.argv[1])) is None))")
COUNT = ("import json, logging, sys; logging.basicConfig(level=logging.WARNING, stream=sys.stdout)\n"
         "from runner.tokens import count_text\n"
         "print(json.dumps(count_text('x' * 40, 'gpt-4o')))")


def test_without_network_counting_falls_back_to_the_estimate_at_once(tmp_path):
    proc = subprocess.run([sys.executable, "-c", COUNT], env=offline_env(tmp_path, closed_port()),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [10, "estimate"]
    # it gave up on the refused connection, not by waiting out the time bound
    assert "ProxyError" in proc.stdout or "ConnectionError" in proc.stdout
    assert "no answer within" not in proc.stdout


def test_a_download_that_hangs_is_abandoned_after_the_bound(tmp_path):
    proxy = SilentProxy()
    try:
        proc = subprocess.run([sys.executable, "-c", LOAD, "1"], env=offline_env(tmp_path, proxy.port),
                              capture_output=True, text=True, timeout=300)
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) is True  # no encoding: counts will be estimates
    assert "no answer within 1 s" in proc.stdout
    assert proxy.held, "tiktoken did try to download through the proxy"


def test_a_run_without_provider_usage_counts_with_tiktoken(runner, real_encodings):
    with openai_server(usage_in_stream=False) as server:
        run = runner("model=gpt", "cache=false",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    [row] = run.rows()
    assert row["tokens_source"] == "tiktoken"
    assert int(row["input_tokens"]) == 30  # JOKE on o200k_base (gpt-4.1-mini's encoding), with chat framing
    assert (int(row["output_tokens"]), "tiktoken") == count_text(row["response"], "gpt-4.1-mini")


def test_a_run_offline_without_tiktoken_files_estimates_instead_of_failing(runner, tmp_path):
    with openai_server(usage_in_stream=False) as server:
        env = offline_env(tmp_path, closed_port())
        run = runner("model=gpt", "cache=false",
                     env={k: env[k] for k in ("TIKTOKEN_CACHE_DIR", "HTTPS_PROXY", "https_proxy", "NO_PROXY",
                                              "no_proxy")} | {"OPENAI_BASE_URL": server.url + "/v1",
                                                              "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    [row] = run.rows()
    assert row["tokens_source"] == "estimate"
    assert int(row["input_tokens"]) == estimate(JOKE[0]["content"]) + estimate(JOKE[1]["content"])
    assert float(row["cost_usd"]) > 0  # estimated usage is still priced
