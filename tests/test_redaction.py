"""Keys never reach disk, even when a server echoes them: every file a run writes is scanned for the keys the
runner held (from the environment and from .env), for a part of them, and for a base_url's password."""
from __future__ import annotations

import base64

import pytest

from runner.providers.base import key_from_env
from runner.redact import redact, redact_value, watch_url
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.openai_server import openai_server

PASSWORD = "hunter2-Rd4c-pw"
# obviously fake, yet shaped like each provider's keys, and distinctive enough to search for
KEYS = {"gpt": "sk-proj-FAKE-Rd4c-oa-5512", "claude": "sk-ant-FAKE-Rd4c-an-5512", "gemini": "AIzaFAKE-Rd4c-gm-5512"}


def needles(key: str) -> dict[str, bytes]:
    return {"the key": key.encode(), "part of the key": key[8:].encode(), "the password": PASSWORD.encode(),
            "the Basic auth token": base64.b64encode(f"runner:{PASSWORD}".encode())}


@pytest.mark.parametrize("model,fake,path,password", [
    ("gpt", openai_server, "/v1", False),  # the key comes from .env, under a name of the user's choosing
    ("claude", anthropic_server, "", False),  # its SDK sends the key as Authorization, which a password replaces
    ("gemini", gemini_server, "", True),
])
def test_a_key_a_server_echoes_never_reaches_any_file(runner, tmp_path, model, fake, path, password):
    key = KEYS[model]
    env = {}
    if model == "gpt":
        (tmp_path / ".env").write_text(f"LLM_GATEWAY={key}\n")
        extra = ["model.api_key_env=LLM_GATEWAY"]
    else:
        env = {"ANTHROPIC_API_KEY": key} if model == "claude" else {"GEMINI_API_KEY": key}
        extra = []
    with fake(echo_key=True) as server:  # its key is test-key: ours is rejected, and repeated in the reason
        url = server.url.replace("http://", f"http://runner:{PASSWORD}@") if password else server.url
        run = runner("-m", f"model={model}", f"model.base_url={url}{path}", "temperature=0,0.5", "budget_usd=1",
                     *extra, env=env)
        sent = [request.headers for request in server.received]
    assert run.code == 1, run.stderr
    assert len(sent) == 2 and any(key in value for headers in sent for value in headers.values())

    rows = run.rows()
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "error" and "key rejected" in row["error"] and "[redacted]" in row["error"], row
        assert row["base_url"] == (f"{server.url.replace('http://', 'http://runner:***@')}{path}" if password
                                   else f"{server.url}{path}")
    if password:  # Hydra's launcher logs each job's overrides: the line is there, without the password
        assert "***@127.0.0.1" in run.stdout

    assert_nowhere(key, run, {"budget.sqlite", "config.yaml", "overrides.yaml", "hydra.yaml", "multirun.yaml"})


def assert_nowhere(key: str, run, expected: set[str]) -> None:
    """Neither the key, nor a part of it, nor the password, in any file under the run's folder or its output."""
    written = [p for p in run.cwd.rglob("*") if p.is_file() and p != run.cwd / ".env"]
    names = {p.name for p in written}
    assert expected | {"results.csv", "results.jsonl", "report.md", "history.sqlite", "responses.sqlite",
                       "runner.log"} <= names, names
    for what, needle in needles(key).items():
        for p in written:
            assert needle not in p.read_bytes(), f"{what} found in {p.relative_to(run.cwd)}"
        assert needle.decode() not in run.stdout + run.stderr, f"{what} found in the run's output"


def test_an_answer_that_quotes_the_key_is_written_redacted(runner, tmp_path):
    key = KEYS["gpt"]
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={key}\n")
    with openai_server(key=key, answer=lambda messages: f"The key you sent is {key}, keep it safe") as server:
        run = runner("model=gpt", f"model.base_url={server.url}/v1", "repeats=2")
    assert run.code == 0, run.stderr
    assert [row["response"] for row in run.rows()] == ["The key you sent is [redacted], keep it safe"] * 2
    assert_nowhere(key, run, set())


def test_redaction_replaces_url_credentials_and_held_secrets(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-Rd4c-123456")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to be a key: replacing it would garble text
    watch_url("http://me:pa%40ss-Rd4c@proxy.example:4000")
    basic = base64.b64encode(b"me:pa@ss-Rd4c").decode()  # what an HTTP client sends for that URL
    text = ("GET https://user:s3cr3t@host.example/v1?key=AIzaXYZ&x=1 with tok-Rd4c-123456 and abc "
            f"(Basic {basic}, pa@ss-Rd4c) #0 : model.base_url=http\\://u\\:pw@h")
    assert redact(text) == ("GET https://user:***@host.example/v1?key=***&x=1 with [redacted] and abc "
                            "(Basic [redacted], [redacted]) #0 : model.base_url=http\\://u\\:***@h")
    messages = [{"role": "user", "content": "nothing to hide"}]
    assert redact_value(messages) is messages  # unchanged values are not copied
    assert redact_value({"m": [{"c": "tok-Rd4c-123456"}]}) == {"m": [{"c": "[redacted]"}]}


def test_a_variable_read_as_a_key_is_a_secret_whatever_its_name(monkeypatch):
    monkeypatch.setenv("TEAM_GATEWAY", "gw-Rd4c-777777")  # model.api_key_env=TEAM_GATEWAY
    assert redact("echo gw-Rd4c-777777") == "echo gw-Rd4c-777777"  # nothing says it is a key, yet
    key_from_env(("TEAM_GATEWAY",))
    assert redact("echo gw-Rd4c-777777") == "echo [redacted]"


def test_an_endpoint_variable_is_no_secret_but_its_password_is(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.example:4000/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://team:Rd4c-pw-2468@gateway.example")
    assert redact("base_url http://proxy.example:4000/v1") == "base_url http://proxy.example:4000/v1"
    assert redact("rejected Rd4c-pw-2468") == "rejected [redacted]"


# a secret with every character that quoting changes: a backslash, quotes, a space, '/', '+', '&', non-ASCII
ODD = 'tok-Rd4c\\x "q" é/+&=9'


@pytest.mark.parametrize("form", [
    'tok-Rd4c\\\\x "q" \\xe9/+&=9',  # backslash escapes (unicode_escape): the backslash doubled
    'tok-Rd4c\\\\x "q" é/+&=9',  # Python's repr of the text
    'tok-Rd4c\\\\x "q" \\xc3\\xa9/+&=9',  # the repr of its bytes, as httpx shows a header it refuses
    'tok-Rd4c\\\\x \\"q\\" \\u00e9/+&=9',  # JSON, ASCII only
    'tok-Rd4c\\\\x \\"q\\" é/+&=9',  # JSON, as written with ensure_ascii=False
    "tok-Rd4c%5Cx%20%22q%22%20%C3%A9%2F%2B%26%3D9",  # URL-encoded (quote, safe="")
    "tok-Rd4c%5Cx%20%22q%22%20%C3%A9/%2B%26%3D9",  # quote's default keeps '/'
    "tok-Rd4c%5Cx+%22q%22+%C3%A9%2F%2B%26%3D9",  # quote_plus: a space as '+'
])
def test_a_secret_is_redacted_in_its_escaped_and_encoded_forms(monkeypatch, form):
    monkeypatch.setenv("ODD_SERVICE_TOKEN", ODD)
    assert redact(f"the server said: {form}!") == "the server said: [redacted]!"
    assert redact(f"raw: {ODD}") == "raw: [redacted]"


def test_a_key_with_a_newline_is_redacted_as_httpx_quotes_it(monkeypatch):
    """httpx refuses a header with a newline and quotes it in its message with the newline escaped."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-Rd4c-first\nsecondline")
    message = "Illegal header value b'Bearer sk-Rd4c-first\\nsecondline'"
    assert redact(message) == "Illegal header value b'Bearer [redacted]'"
    assert redact('{"error": "sk-Rd4c-first\\nsecondline"}') == '{"error": "[redacted]"}'  # in a JSON body
    assert redact("?key=x&k=sk-Rd4c-first%0Asecondline") == "?key=x&k=[redacted]"  # in a URL


def test_escaped_forms_are_worked_out_once_per_set_of_secrets(monkeypatch):
    """redact runs on every record: the forms of a set of secrets are worked out when the set changes."""
    from runner import redact as module

    worked_out = []
    forms = module.escaped_forms
    monkeypatch.setattr(module, "escaped_forms", lambda value: worked_out.append(value) or forms(value))
    monkeypatch.setenv("ONCE_SERVICE_TOKEN", "tok-Rd4c-once/+7")  # a set of secrets not seen before
    for _ in range(50):
        assert redact("tok-Rd4c-once%2F%2B7") == "[redacted]"
    assert worked_out.count("tok-Rd4c-once/+7") == 1
