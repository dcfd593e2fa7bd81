"""`python -m runner.view` as a user meets it: real runs against the strict OpenAI fake, the app started as a
process, then its pages in headless Chromium (the run list, a run's report.html, two runs side by side), a
report.html planted in a run folder (a shared drive, a downloaded run) that must run nothing, and the
requests it refuses."""
from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests import forked
from tests.browser import chromium, screenshot, watched_page  # noqa: F401 - fixtures browser and page
from tests.conftest import CTRL_C_REACHES_IT, clean_env
from tests.fakes.openai_server import openai_server
from tests.html_checks import active_content

SCRIPT = "<script>alert(1)</script>"
TAKES = ["Why did the physicist break up? No chemistry.",
         f"Why did the physicist break up with the chemist? There was no reaction {SCRIPT}."]


def run(cwd: Path, server, *overrides: str) -> None:
    done = forked.run([sys.executable, "-m", "runner", "model=gpt", "cache=false", "task=joke",
                           "task.inputs=[{audience: physicists}, {audience: lawyers}]", *overrides],
                          cwd=cwd, env=clean_env(OPENAI_BASE_URL=server.url + "/v1", OPENAI_API_KEY="test-key"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """Two runs of one sweep (the answers changed between them) in the history, and a run folder whose
    calls went to another history file, with a vote."""
    cwd = tmp_path_factory.mktemp("view")
    with openai_server() as server:
        for name, said in zip(("one", "two"), TAKES):
            server.fake.answer = lambda messages, said=said: said
            run(cwd, server, f"hydra.run.dir=outputs/runs/{name}", *(["scorer=concise"] if name == "two" else []))
        run(cwd, server, "hydra.run.dir=outputs/runs/elsewhere", "history=other.sqlite")
    folder = cwd / "outputs/runs/two"
    (folder / "votes.jsonl").write_text(json.dumps(
        {"run_id": "two", "item": "physicists", "step": "", "winner": "a",
         "a": {"model": "gpt", "prompt": "default", "temperature": 0.7, "variant": ""},
         "b": {"model": "claude", "prompt": "default", "temperature": 0.7, "variant": ""}}) + "\n", encoding="utf-8")
    done = forked.run([sys.executable, "-m", "runner.comparison", str(folder)], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return cwd


class View:
    def __init__(self, cwd: Path, *args: str):
        self.process = subprocess.Popen([sys.executable, "-m", "runner.view", "--port", "0", *args], cwd=cwd,
                                        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        preexec_fn=CTRL_C_REACHES_IT)
        self.line = self.process.stdout.readline()
        assert " at http://127.0.0.1:" in self.line, self.line + self.process.stderr.read()
        self.url = self.line.split(" at ", 1)[1].split(";", 1)[0].strip()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def view(outputs):
    app = View(outputs)
    yield app
    app.stop()


def test_the_run_list_opens_reports_and_compares_two_runs(view, page, outputs):
    assert "3 runs from outputs/history.sqlite and outputs/" in view.line
    tab = page.page
    tab.goto(view.url)
    rows = tab.locator("tr.run")
    expect(rows).to_have_count(3)
    two = rows.filter(has_text="two")
    assert "python -m runner model=gpt cache=false task=joke" in two.text_content()
    assert "2 (2 ok, 0 error, 0 skipped)" in two.text_content() and "$0.0000" in two.text_content()
    assert "1 vote; gpt wins 100%" in two.text_content()
    assert two.locator("td.score").text_content() == "gpt 1.00 [1.00, 1.00]"  # both jokes are under 600 characters
    assert rows.filter(has_text="one").first.locator("td.score").text_content() == ""  # run one was not scored
    assert "not in the history" in rows.filter(has_text="elsewhere").text_content()
    screenshot(tab, "view.png", height=520)
    # a run's report.html, from the run list
    two.locator("a").click()
    tab.wait_for_selector("body[data-ready=true]")
    assert tab.locator("#calls-total").get_attribute("data-count") == "2"
    assert "Human votes" in tab.locator("nav").text_content()
    # the folder the history does not hold opens too
    tab.go_back()
    tab.locator("tr.run", has_text="elsewhere").locator("a").click()
    tab.wait_for_selector("body[data-ready=true]")
    assert tab.locator("#calls-total").get_attribute("data-count") == "2"
    # two runs side by side: what runner.compare prints, and each changed answer as a diff
    tab.go_back()
    rows.filter(has_text="one").first.locator("input").check()
    two.locator("input").check()
    tab.click("#compare")
    assert "Comparing run two" in tab.locator("#changes").text_content()
    assert "gpt 2 of 2 changed" in tab.locator("#changes").text_content()
    diffs = tab.locator("#diffs .diff")
    expect(diffs).to_have_count(2)
    assert diffs.first.locator("del").count() and diffs.first.locator("ins").count()
    assert SCRIPT in diffs.first.text_content()  # the answer's HTML is text
    assert active_content(tab.locator("#diffs").inner_html() + tab.locator("#changes").inner_html()) == []
    assert tab.locator("main script").count() == 0
    assert page.problems == []


def test_a_run_whose_folder_is_gone_is_read_from_the_history(outputs, page, tmp_path):
    moved = tmp_path / "gone"
    (outputs / "outputs/runs/one").rename(moved)
    try:
        app = View(outputs)
        try:
            tab = page.page
            tab.goto(app.url)
            tab.locator("tr.run", has_text="one").locator("a").click()
            tab.wait_for_selector("body[data-ready=true]")
            assert tab.locator("#calls-total").get_attribute("data-count") == "2"
            assert "its folder is gone" in tab.locator(".about").text_content()
        finally:
            app.stop()
    finally:
        moved.rename(outputs / "outputs/runs/one")
    assert page.problems == []


def test_it_answers_only_requests_for_its_own_address(view):
    request = urllib.request.Request(view.url, headers={"Host": "attacker.example:80"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 421
    port = urlsplit(view.url).port
    request = urllib.request.Request(view.url, headers={"Origin": "http://attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:  # a script on another site's page
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        request = urllib.request.Request(view.url, headers={"Host": host, "Origin": f"http://{host}"})
        with urllib.request.urlopen(request, timeout=10) as answered:
            assert answered.status == 200
            assert "script-src" not in answered.headers["Content-Security-Policy"]  # its own pages run no script


def test_ctrl_c_stops_it_with_exit_130(outputs):
    app = View(outputs)
    app.process.send_signal(signal.SIGINT)
    assert app.process.wait(timeout=30) == 130
    assert "Traceback" not in app.process.stderr.read()


PLANTED = """<!DOCTYPE html><html><head><title>A report</title></head><body><h1 id="planted">Comparison</h1>
<script>document.title = "script ran"; fetch("/").then(r => r.text()).then(t => { document.title = "read " + t; });
</script><img src="x" onerror="document.title = 'handler ran'; alert(1)"></body></html>
"""
DATA_BLOCK = re.compile(r'(<script type="application/json" id="report-data">)(.*?)(</script>)', re.S)


def downloaded(outputs: Path, tmp_path: Path) -> Path:
    """A copy of a real run folder under a fresh outputs/, as from a shared drive: its report.html is the
    one to replace."""
    cwd = tmp_path / "shared"
    shutil.copytree(outputs / "outputs/runs/elsewhere", cwd / "outputs/runs/downloaded")
    return cwd / "outputs/runs/downloaded"


def open_report(page, app: View) -> list[str]:
    """Open the downloaded run from the run list; the paths the page requested once the report was asked for."""
    tab = page.page
    tab.goto(app.url)
    asked: list[str] = []
    tab.on("request", lambda r: asked.append(urlsplit(r.url).path))
    tab.locator("tr.run", has_text="downloaded").locator("a").click()
    tab.wait_for_selector("body[data-ready=true]")
    tab.wait_for_timeout(500)  # time for a script or handler that would run
    return asked


def test_a_report_html_planted_in_a_run_folder_runs_nothing(outputs, tmp_path, page):
    """Not runner's report: its script and handlers never run (they would read the viewer's run list); the
    viewer builds the run's report from its data instead."""
    folder = downloaded(outputs, tmp_path)
    (folder / "report.html").write_text(PLANTED, encoding="utf-8")
    app = View(folder.parents[2])
    try:
        asked = open_report(page, app)
    finally:
        app.stop()
    tab = page.page
    assert tab.title() == "Comparison: downloaded" and page.dialogs == []
    assert [path for path in asked if not path.startswith("/runs/")] == []  # nothing read "/"
    assert tab.locator("#planted").count() == 0
    assert tab.locator("#calls-total").get_attribute("data-count") == "2"  # the run's own calls
    assert "not one this version of runner writes" in tab.locator(".about").text_content()
    assert page.problems == []


def test_a_report_html_with_runners_script_but_planted_data_runs_nothing_either(outputs, tmp_path, page):
    """runner's own script, but data that was never sanitized and no policy of its own: served as written,
    under the viewer's policy, where no handler runs, and with an origin of its own."""
    folder = downloaded(outputs, tmp_path)
    written = (folder / "report.html").read_text(encoding="utf-8")
    data = json.loads(DATA_BLOCK.search(written).group(2))
    data["sections"].append({"title": "Planted", "html": "<p id=\"planted\">planted</p><img src=\"x\" "
                                                         "onerror=\"document.title = 'handler ran'; alert(1)\">"})
    payload = json.dumps(data).replace("<", "\\u003c")
    planted = DATA_BLOCK.sub(lambda m: m.group(1) + payload + m.group(3), written)
    planted = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", planted)
    assert planted != written and "Content-Security-Policy" not in planted
    (folder / "report.html").write_text(planted, encoding="utf-8")
    app = View(folder.parents[2])
    try:
        asked = open_report(page, app)
        tab = page.page
        assert tab.locator("#planted").text_content() == "planted"  # served as written: runner's script drew it
        assert tab.title() == data["title"] and page.dialogs == []
        assert [path for path in asked if not path.startswith("/runs/")] == []
        assert tab.evaluate("window.origin") == "null"  # sandboxed: even a script could not read the run list
    finally:
        app.stop()


def test_a_port_in_use_or_a_file_that_is_no_history_is_one_line_and_exit_2(outputs, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "runner.view", "--port", str(port)], cwd=outputs,
                              env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    junk = tmp_path / "history.sqlite"
    junk.write_text("not a database " * 100)
    done = subprocess.run([sys.executable, "-m", "runner.view", "--history", str(junk), "--port", "0"], cwd=outputs,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "cannot be read as a history database" in done.stderr
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(junk).execute("SELECT 1 FROM runs")


def test_the_started_column_is_when_the_first_call_began(tmp_path, page):
    """A call that takes 2.5 s: the run list shows when it began, not when it ended, for a run in the history
    and for a folder the history does not hold."""
    import time
    from datetime import datetime, timezone

    asked = []

    def slow(messages):
        asked.append(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"))
        time.sleep(2.5)
        return "A slow joke"

    with openai_server(answer=slow) as server:
        for name, where in (("slow", "history.sqlite"), ("apart", "other.sqlite")):
            done = forked.run([sys.executable, "-m", "runner", "model=gpt", "cache=false", "task=joke",
                                   "task.inputs=[{audience: owls}]", f"hydra.run.dir=outputs/runs/{name}",
                                   f"history=outputs/{where}"],
                                  cwd=tmp_path, env=clean_env(OPENAI_BASE_URL=server.url + "/v1",
                                                              OPENAI_API_KEY="test-key"),
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
    app = View(tmp_path)
    try:
        tab = page.page
        tab.goto(app.url)
        for name, began in zip(("slow", "apart"), asked):
            shown = tab.locator("tr.run", has_text=name).locator("td.when").text_content()
            assert shown <= began, (name, shown, began)  # the end, 2.5 s later, is a later second
        assert "not in the history" in tab.locator("tr.run", has_text="apart").text_content()
    finally:
        app.stop()
    assert page.problems == []
