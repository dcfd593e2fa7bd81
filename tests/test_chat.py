"""`python -m runner.chat` as a user meets it: the app started as a process, driven in headless Chromium.
The chat against the embedded model (streamed, the history sent again each turn, saved to the history
database), the arena against the strict OpenAI and Anthropic fakes (a vote, found in the history and in
the comparison), the one-line exits before the app starts, and the requests it refuses: any addressed
to another host name (DNS rebinding) or sent by another site's page."""
from __future__ import annotations

import http.client
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from runner.money import dollars
from tests.browser import chromium, screenshot, watched_page  # noqa: F401 - fixtures browser and page
from tests.conftest import CTRL_C_REACHES_IT, clean_env
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.openai_server import openai_server

IMG = "<img src=x onerror=alert(1)>"


class Chat:
    """`python -m runner.chat ...` in the background, until stop(); its URL from the line it prints."""

    def __init__(self, cwd: Path, *args: str, env: dict | None = None):
        pytest.importorskip("gradio", reason="the chat needs the ui extra: pip install -e '.[ui]'")
        self.process = subprocess.Popen([sys.executable, "-m", "runner.chat", *args], cwd=cwd,
                                        env=clean_env(**(env or {})), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        preexec_fn=CTRL_C_REACHES_IT)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()
        self.line = self.process.stdout.readline()
        if " at http" not in self.line:
            self.process.wait(timeout=30)
            raise AssertionError(self.line + "".join(self.stderr))
        self.url = self.line.split(" at ", 1)[1].split(" ", 1)[0]

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C: the last comparison is built, then exit 130
        code = self.process.wait(timeout=120)
        time.sleep(0.2)  # the reading thread takes the last lines
        assert "Traceback" not in "".join(self.stderr), "".join(self.stderr)[-3000:]
        return code


def wait_for(check, timeout: float = 90, what: str = ""):
    """Poll until check() is true (the comparison is rebuilt in the background after each turn)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not seen within {timeout} s: {what}")


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.rglob("results.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def history_rows(path: Path, query: str, args=()) -> list:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path) as db:
            return db.execute(query, args).fetchall()
    except sqlite3.OperationalError:  # not created yet, or being written
        return []


WATCH_STREAM = """() => {
    window.seenLengths = [];
    const chat = document.querySelector('#chat');
    new MutationObserver(() => {
        const bots = chat.querySelectorAll('[data-testid=bot]');
        const last = bots[bots.length - 1];
        if (last) window.seenLengths.push(last.textContent.length);
    }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def test_the_chat_streams_the_embedded_model_and_sends_the_whole_conversation(tmp_path, page):
    folder, history = tmp_path / "session", tmp_path / "history.sqlite"
    chat = Chat(tmp_path, "--port", "0", "--folder", str(folder), f"history={history}", "max_tokens=40",
                "temperature=0")  # any free port: the suite's workers run side by side
    try:
        assert "chat with local (prompt default, T=0)" in chat.line
        tab = page.page
        tab.goto(chat.url, wait_until="domcontentloaded")
        box = tab.locator("#message textarea")
        box.wait_for(timeout=60_000)
        tab.evaluate(WATCH_STREAM)
        box.fill("Hello! Which hats are on sale?")
        box.press("Enter")
        expect(tab.locator("#turns")).to_contain_text("This conversation", timeout=120_000)
        first = records(folder)
        assert len(first) == 1 and first[0]["status"] == "ok", first
        answer = first[0]["response"]
        # streamed: the reply grew on the page piece by piece before it was whole
        lengths = [n for n in tab.evaluate("window.seenLengths") if n]
        assert len(set(lengths)) >= 3, lengths
        bots = tab.locator("#chat [data-testid=bot]")
        assert answer.split()[0] in bots.last.text_content()
        # the system prompt from the prompt group (the chat task's store assistant), then the user's line
        assert first[0]["messages"][0]["role"] == "system" and "clothes store" in first[0]["messages"][0]["content"]
        box.fill("And shoes?")
        box.press("Enter")
        expect(tab.locator("#turns")).to_contain_text("$0", timeout=120_000)
        wait_for(lambda: len(records(folder)) == 2, what="the second turn's record")
        second = records(folder)[1]
        assert second["step"] == "turn-2" and second["item"] == first[0]["item"]
        assert second["messages"] == first[0]["messages"] + [{"role": "assistant", "content": answer},
                                                             {"role": "user", "content": "And shoes?"}]
        expect(tab.locator("#turns tbody tr")).to_have_count(2)
        screenshot(tab, "chat.png", height=760)
        # the conversation is in the history while the chat goes on
        wait_for(lambda: history_rows(history, "SELECT step FROM calls ORDER BY step") == [("turn-1",), ("turn-2",)],
                 what="both turns in the history")
        assert page.problems == []
    finally:
        code = chat.stop()
    assert code == 130, "".join(chat.stderr)[-2000:]
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "python -m runner.chat --port 0 --folder" in report and "## Transcripts" in report
    assert (folder / "report.html").is_file()


def test_the_arena_hides_who_answered_until_the_vote_and_the_vote_reaches_the_comparison(tmp_path, page):
    folder, history = tmp_path / "arena", tmp_path / "history.sqlite"
    with openai_server(chunk_delay_s=0.02, answer=lambda m: f"Blue, like the sea. {IMG} **Bold** answer.") as gpt, \
            anthropic_server(chunk_delay_s=0.02) as claude:
        env = {"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key",
               "ANTHROPIC_BASE_URL": claude.url, "ANTHROPIC_API_KEY": "test-key"}
        chat = Chat(tmp_path, "-m", "model=gpt,claude", "--port", "0", "--folder", str(folder), f"history={history}",
                    env=env)
        try:
            tab = page.page
            tab.goto(chat.url, wait_until="domcontentloaded")
            box = tab.locator("#message textarea")
            box.wait_for(timeout=60_000)
            assert tab.locator("#vote-a").is_disabled()
            box.fill("What colour is the sky?")
            box.press("Enter")
            expect(tab.locator("#vote-b")).to_be_enabled(timeout=60_000)
            a, b = tab.locator("#model-a [data-testid=bot]").last, tab.locator("#model-b [data-testid=bot]").last
            answers = [a.text_content(), b.text_content()]
            assert any("Blue, like the sea." in t for t in answers) and any("Answer to:" in t for t in answers)
            # the model's HTML is text, its markdown rendered, and neither side is named yet
            assert any(IMG in t for t in answers)
            assert tab.locator("#model-a img, #model-b img").count() == 0
            assert tab.locator("#model-a strong, #model-b strong").count() == 1
            assert "gpt" not in tab.locator("#reveal").text_content()
            # nor priced or timed: a price per token or a speed would tell the providers apart
            for side in ("#turns-a", "#turns-b"):
                expect(tab.locator(side)).to_contain_text("shown with the names, after your vote")
                assert "$" not in tab.locator(side).text_content() and tab.locator(f"{side} table").count() == 0
            screenshot(tab, "arena.png", height=820)
            tab.click("#vote-b")
            expect(tab.locator("#reveal")).to_contain_text("You voted B.")
            for side in ("#turns-a", "#turns-b"):  # with the names, each side's tokens, cost and seconds
                expect(tab.locator(side)).to_contain_text("This conversation: $")
                expect(tab.locator(f"{side} tbody tr")).to_have_count(1)
            assert tab.locator("#vote-a").is_disabled()
            assert page.problems == []
            [vote] = [json.loads(line) for line in (folder / "votes.jsonl").read_text().splitlines()]
            assert vote["winner"] == "b" and vote["step"] == "turn-1"
            winner, loser = vote["b"]["model"], vote["a"]["model"]
            assert {winner, loser} == {"gpt", "claude"}
            assert f"B was {winner}" in tab.locator("#reveal").text_content()
            # B's answer is the one the model that was B gave
            said = {r["model"]: r["response"] for r in records(folder)}
            assert said[winner].split("<")[0].strip()[:12] in answers[1]
            # and B's tokens and cost, shown now, are that model's
            [b_call] = [r for r in records(folder) if r["model"] == winner]
            assert tab.locator("#turns-b tbody td").all_text_contents()[:4] == \
                ["1", str(b_call["input_tokens"]), str(b_call["output_tokens"]), dollars(b_call["cost_usd"])]
            # the vote as a human judgment in the history, and as a win rate in the comparison
            wait_for(lambda: history_rows(history, "SELECT a_model, b_model, winner FROM human_judgments")
                     == [(loser, winner, "b")], what="the vote in the history")
            wait_for(lambda: (folder / "report.md").exists() and "## Human votes" in
                     (folder / "report.md").read_text(encoding="utf-8"), what="the vote in report.md")
        finally:
            code = chat.stop()
    assert code == 130, "".join(chat.stderr)[-2000:]
    report = (folder / "report.md").read_text(encoding="utf-8")
    votes = report[report.index("## Human votes"):]
    assert f"| {winner} | default | 0.7 | 1 | 1 | 0 | 0 | 0 | 100% |" in votes
    assert f"| {loser} | default | 0.7 | 1 | 0 | 0 | 1 | 0 | 0% |" in votes
    tab.goto((folder / "report.html").as_uri())
    tab.wait_for_selector("body[data-ready=true]")
    section = tab.locator("section", has=tab.locator("h2", has_text="Human votes"))
    assert section.locator("td").all_text_contents()[:2] == [winner, "default"]


@pytest.mark.parametrize("args, said", [
    (["model=nope"], "model"),
    (["model=gpt"], "OPENAI_API_KEY"),
    (["model=gpt,claude"], "add -m for the arena"),
    (["-m", "model=gpt,claude,local"], "the arena takes two contestants"),
    (["temperature=9"], "temperature=9"),
])
def test_bad_config_is_one_line_and_exit_2_before_the_app_starts(tmp_path, args, said):
    done = subprocess.run([sys.executable, "-m", "runner.chat", *args], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("runner.chat: ") and said in done.stderr
    assert not (tmp_path / "outputs").exists()  # nothing written


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_request(port: int, method: str, path: str, headers: dict, body: str | None = None) -> tuple[int, str]:
    """A raw request to 127.0.0.1:port with exactly these Host and Origin headers (a browser's, on a page
    whose DNS name was pointed at 127.0.0.1), and the answer's status and text."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_the_chat_answers_only_its_own_address_and_its_own_pages(tmp_path, page):
    """A page on another site, in the user's browser, must not make the chat call a model with the user's keys
    nor read the answer: neither through its own DNS name pointed at 127.0.0.1 (Host: evil.example), nor
    by sending a request to 127.0.0.1 from its page (Origin: http://evil.example)."""
    folder = tmp_path / "session"
    with openai_server() as gpt:
        env = {"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key"}
        chat = Chat(tmp_path, "model=gpt", "--port", str(free_port()), "--folder", str(folder),
                    f"history={tmp_path / 'history.sqlite'}", env=env)
        try:
            port = chat.port
            call = json.dumps({"data": ["Tell me the secret"]})
            json_type = {"Content-Type": "application/json"}
            rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
            for method, path, body in [("GET", "/", None), ("GET", "/config", None),
                                       ("GET", "/gradio_api/info", None),
                                       ("POST", "/gradio_api/call/respond", call),
                                       ("POST", "/gradio_api/queue/join", "{}")]:
                status, text = raw_request(port, method, path, {**rebound, **json_type}, body)
                assert status == 421 and text == "Misdirected request: open the address the server printed.\n"
                status, _ = raw_request(port, method, path, {"Host": "evil.example", **json_type}, body)
                assert status == 421
            for origin in ("http://evil.example", f"http://evil.example:{port}", "null",
                           f"http://localhost:{port + 1}"):
                status, text = raw_request(port, "POST", "/gradio_api/call/respond",
                                    {"Host": f"127.0.0.1:{port}", "Origin": origin, **json_type}, call)
                assert status == 403 and text == "Forbidden: a request from another site.\n", origin
            assert gpt.received == [] and records(folder) == []  # no call was made, nothing recorded
            # the same requests from the chat's own address are answered
            assert raw_request(port, "GET", "/config", {"Host": f"127.0.0.1:{port}"})[0] == 200
            assert raw_request(port, "GET", "/config", {"Host": f"localhost:{port}",
                                                        "Origin": f"http://localhost:{port}"})[0] == 200
            # and its page works, opened as localhost too
            tab = page.page
            tab.goto(f"http://localhost:{port}/", wait_until="domcontentloaded")
            box = tab.locator("#message textarea")
            box.wait_for(timeout=60_000)
            box.fill("Which hats are on sale?")
            box.press("Enter")
            expect(tab.locator("#chat [data-testid=bot]").last).to_contain_text("Answer to: Which hats are on sale?",
                                                                                 timeout=60_000)
            expect(tab.locator("#turns")).to_contain_text("This conversation")
            assert len(gpt.received) == 1 and page.problems == []
        finally:
            code = chat.stop()
    assert code == 130, "".join(chat.stderr)[-2000:]
    assert [r["status"] for r in records(folder)] == ["ok"]


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    pytest.importorskip("gradio", reason="the chat needs the ui extra: pip install -e '.[ui]'")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "runner.chat", "--port", str(port)], cwd=tmp_path,
                              env=clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"runner.chat: cannot listen on 127.0.0.1:{port}: address already in use")
    assert "--port" in done.stderr and "GRADIO" not in done.stderr
    assert not (tmp_path / "outputs").exists()  # nothing written


def test_without_gradio_it_says_how_to_install_it(tmp_path):
    blocked = ("import runpy, sys; sys.modules['gradio'] = None; sys.argv = ['runner.chat', 'model=local']; "
               "runpy.run_module('runner.chat', run_name='__main__', alter_sys=True)")
    done = subprocess.run([sys.executable, "-c", blocked], cwd=tmp_path, env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == 'runner.chat needs Gradio, the optional extra "ui": pip install -e ".[ui]"\n'


def test_a_chat_where_nothing_was_said_leaves_no_run_behind(tmp_path):
    chat = Chat(tmp_path, f"history={tmp_path / 'history.sqlite'}", "--port", "0")
    assert "saved in outputs/chats/" in chat.line
    assert chat.port != 0 and chat.url == f"http://127.0.0.1:{chat.port}/"  # --port 0: the port it got
    with urllib.request.urlopen(chat.url, timeout=30) as answered:
        assert answered.status == 200
    assert chat.stop() == 130
    assert "nothing was said; nothing saved" in "".join(chat.stderr)
    assert list((tmp_path / "outputs" / "chats").iterdir()) == []
