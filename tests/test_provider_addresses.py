"""Provider connections never reach a link-local or cloud-metadata address: not through a redirect, not
through a name that resolves to one, not through model.base_url or an SDK's endpoint variable.

Each SDK runs unpatched through the real command line against its loopback fake, which answers 307 or
302 with a Location at a metadata address. The run's process is guarded (tests/no_metadata.py): a
connection to such an address would go to a stand-in metadata service on loopback that answers with a
credential, and the guard would say so on stderr. So each test sees what the user would: the rows, what
the run wrote (no credential anywhere), and that nothing tried to connect.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.metadata import MARK, metadata_stand_in, redirecting
from tests.fakes.ollama_server import ollama_server
from tests.fakes.openai_batches import openai_batch_server
from tests.fakes.openai_server import openai_server
from tests.no_metadata import GUARD_PATH, STAND_IN_ENV

LINK_LOCAL = "a link-local address, where cloud metadata services answer (refused)"
# (status, the Location's host as a URL writes it, what the error row says of it)
REDIRECTS = [
    (307, "169.254.169.254", "169.254.169.254 is " + LINK_LOCAL),
    (302, "169.254.169.254", "169.254.169.254 is " + LINK_LOCAL),
    (307, "[::ffff:169.254.169.254]", "::ffff:169.254.169.254 is 169.254.169.254 in IPv6 form, " + LINK_LOCAL),
    (302, "2852039166", "2852039166 resolves to 169.254.169.254, " + LINK_LOCAL),  # a name, numerically resolved
    (307, "[fd00:ec2::254]", "fd00:ec2::254 is AWS's instance metadata address (refused)"),
    (302, "100.100.100.200", "100.100.100.200 is Alibaba Cloud's instance metadata address (refused)"),
]
ITEMS = "task.inputs=[" + ",".join(f"{{audience: case{i}}}" for i in range(len(REDIRECTS))) + "]"


@pytest.fixture
def stand_in():
    """The stand-in metadata service, and the environment that guards the run's process with it."""
    with metadata_stand_in() as server:
        server.env = {"PYTHONPATH": f"{GUARD_PATH}{os.pathsep}{REPO}", STAND_IN_ENV: server.url.split("//")[1]}
        yield server


def redirect_by_item(request):
    """The fake's answer to a call: the redirect of the item the call is for (caseN in its prompt)."""
    index = int(re.search(rb"case(\d)", request.body).group(1))
    status, host, _ = REDIRECTS[index]
    return redirecting(status, host)(request)


def written(folder: Path) -> list[Path]:
    """Every file under the run's folder that holds something of the metadata service's answer."""
    return [path for path in folder.rglob("*") if path.is_file() and MARK.encode() in path.read_bytes()]


def assert_refused_and_nothing_kept(run, stand_in, tmp_path, rows) -> None:
    assert written(tmp_path) == []  # results.csv/jsonl, report.md/html, history.sqlite, the cache
    assert MARK not in run.stdout + run.stderr
    assert "test guard" not in run.stderr, run.stderr[-2000:]  # nothing tried to connect there
    assert stand_in.received == []
    for row in rows:
        assert row["status"] == "error"


SDKS = {  # the model's overrides, the route its calls take, and the environment pointing it at the fake
    "openai": (openai_server, ["model=gpt"], ("POST", "/v1/chat/completions"),
               lambda url: {"OPENAI_BASE_URL": url + "/v1", "OPENAI_API_KEY": "test-key"}),
    "openai-compatible": (openai_server, ["model=local_server", "model.api_key_env=LOCAL_SERVER_KEY"],
                          ("POST", "/v1/chat/completions"),
                          lambda url: {"RUNNER_TEST_BASE_URL": url + "/v1", "LOCAL_SERVER_KEY": "test-key"}),
    "anthropic": (anthropic_server, ["model=claude"], ("POST", "/v1/messages"),
                  lambda url: {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "test-key"}),
    "google-genai": (gemini_server, ["model=gemini"], ("POST", "/v1beta/models/*"),
                     lambda url: {"GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": "test-key"}),
    "google-generativeai": (gemini_server, ["model=gemini", "model.sdk=generativeai"], ("POST", "/v1beta/models/*"),
                            lambda url: {"GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": "test-key"}),
    "ollama": (ollama_server, ["model=llama"], ("POST", "/api/chat"), lambda url: {"OLLAMA_HOST": url}),
}


@pytest.mark.parametrize("sdk", list(SDKS))
def test_a_redirect_to_a_metadata_address_is_an_error_row_and_nothing_connects_there(runner, stand_in, tmp_path, sdk):
    fake, overrides, route, env_for = SDKS[sdk]
    with fake() as server:
        server.routes[route] = redirect_by_item
        env = env_for(server.url)
        if "RUNNER_TEST_BASE_URL" in env:
            overrides = [*overrides, f"model.base_url={env.pop('RUNNER_TEST_BASE_URL')}"]
        # not streamed: where the answer of whatever the call reached would end up in the error row
        run = runner(*overrides, ITEMS, "cache=false", "model.stream=false", env={**env, **stand_in.env})
    assert run.code == 1, run.stderr[-3000:]  # the calls failed; the run did not crash
    rows = sorted(run.rows(), key=lambda row: row["item"])
    assert len(rows) == len(REDIRECTS)
    assert_refused_and_nothing_kept(run, stand_in, tmp_path, rows)
    for row, (_, _, reason) in zip(rows, REDIRECTS):
        assert row["error"] == f"not connected: {reason}; nothing was sent to it"
        assert row["retries"] == "0"  # the endpoint's answer, not a passing fault: not tried again
    assert len(server.received) == len(REDIRECTS)  # one call each, all of them to the fake


@pytest.mark.parametrize("step", ["upload", "download"])
def test_a_batch_file_redirected_to_a_metadata_address_is_never_fetched(runner, stand_in, tmp_path, step):
    with openai_batch_server() as server:
        if step == "upload":
            server.routes[("POST", "/v1/files")] = redirecting(307, "169.254.169.254")
        else:  # the answers' file: as if the API sent its download to storage elsewhere
            answer_file = server.routes[("GET", "/v1/files/*")]
            server.routes[("GET", "/v1/files/*")] = lambda request: (
                redirecting(302, "169.254.169.254")(request) if request.path.endswith("/content")
                else answer_file(request))
        run = runner("model=gpt", "model.batch=true", "batch.poll_s=0.02", "batch.retry_failed=none",
                     "task.inputs=[{audience: owls}]",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key", **stand_in.env})
    assert run.code == 1, run.stderr[-3000:]
    [row] = run.rows()
    assert_refused_and_nothing_kept(run, stand_in, tmp_path, [row])
    assert f"not connected: 169.254.169.254 is {LINK_LOCAL}; nothing was sent to it" in row["error"]


@pytest.mark.parametrize("overrides,env,where,reason", [
    (["model=gpt", "model.base_url=http://169.254.169.254/v1"], {}, "model.base_url",
     "169.254.169.254 is " + LINK_LOCAL),
    (["model=gpt"], {"OPENAI_BASE_URL": "http://169.254.169.254/v1"}, "OPENAI_BASE_URL",
     "169.254.169.254 is " + LINK_LOCAL),
    (["model=claude"], {"ANTHROPIC_BASE_URL": "http://[::ffff:a9fe:a9fe]"}, "ANTHROPIC_BASE_URL",
     "::ffff:a9fe:a9fe is 169.254.169.254 in IPv6 form, " + LINK_LOCAL),
    (["model=gemini"], {"GOOGLE_GEMINI_BASE_URL": "http://2852039166"}, "GOOGLE_GEMINI_BASE_URL",
     "2852039166 resolves to 169.254.169.254, " + LINK_LOCAL),
    (["model=llama"], {"OLLAMA_HOST": "169.254.169.254"}, "OLLAMA_HOST",  # Ollama's bare host
     "169.254.169.254 is " + LINK_LOCAL),
    (["model=local_server", "model.base_url='http://[fd00:ec2::254]/v1'"], {}, "model.base_url",
     "fd00:ec2::254 is AWS's instance metadata address (refused)"),
])
def test_an_endpoint_at_a_metadata_address_is_bad_input_before_any_call(runner, stand_in, tmp_path, overrides, env,
                                                                         where, reason):
    keys = {"OPENAI_API_KEY": "test-key", "ANTHROPIC_API_KEY": "test-key", "GEMINI_API_KEY": "test-key"}
    run = runner(*overrides, env={**keys, **env, **stand_in.env})
    assert run.code == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert lines == [f"runner: config error: {where}: {reason}; the runner never connects there"]
    assert "test guard" not in run.stderr and stand_in.received == []
    assert not (tmp_path / "outputs").exists()  # nothing written


def test_a_judge_at_a_metadata_address_is_bad_input_too(runner, stand_in, tmp_path):
    run = runner("model=llama", "judges=[gpt]", env={"OPENAI_API_KEY": "test-key", "OLLAMA_HOST": "127.0.0.1:9",
                                                     "OPENAI_BASE_URL": "http://169.254.169.254/v1", **stand_in.env})
    assert run.code == 2, run.stderr[-3000:]
    assert "OPENAI_BASE_URL: 169.254.169.254 is " + LINK_LOCAL in run.stderr
    assert not (tmp_path / "outputs").exists() and stand_in.received == []
