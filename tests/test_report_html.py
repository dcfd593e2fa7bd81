"""report.html, opened in a real headless Chromium: a sweep through the command line against the strict
OpenAI fake, whose answers hold a long text, a markdown table and HTML that would run if it were trusted;
then the page as a reader meets it. And report.md, rendered as GitHub renders it, with nothing that runs."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from runner.records import Record, RecordWriter
from tests import forked
from tests.browser import chromium, screenshot, watched_page  # noqa: F401 - fixtures browser and page
from tests.conftest import clean_env
from tests.fakes.openai_server import _error, openai_server
from tests.html_checks import REPORT_MD_TAGS, Shown, active_content, markdown_renderings

LONG_END = "and that is the end of the long answer."
LONG = "A physicist walks into a bar. " * 300 + LONG_END
TABLE = "Legs by animal:\n\n| animal | legs |\n|---|---|\n| cat | 4 |\n| bird | 2 |\n"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
PAYLOADS = (f"Careful: {IMG} and {SCRIPT} here.\n\n[click me](javascript:alert(3)) "
            "<a href=\"javascript:alert(4)\">or me</a> <iframe src=\"javascript:alert(5)\"></iframe>\n\n"
            "![pic](javascript:alert(6)) <javascript:alert(7)> </details><script>alert(8)</script>\n\n"
            "```\nfenced <script>alert(9)</script>\n```\n\n<svg onload=alert(10)>")
ITEMS = [
    {"id": "physicists", "audience": "physicists", "messages": ["Hi"]},
    {"id": "tables", "audience": "tables", "messages": ["Hi"]},
    {"id": "<script>alert('item')</script>", "audience": "payload",
     "messages": [f"Hello {SCRIPT}", f"{IMG} again"]},
    {"id": "refused", "audience": "refused", "messages": ["refused"]},
]


def answer(messages) -> str:
    last = messages[-1]["content"]
    if "physicists" in last:
        return LONG
    if "tables" in last:
        return TABLE
    if "payload" in last or "<" in last:
        return PAYLOADS
    return f"Answer to: {last}"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A joke and a chat at two temperatures: 4 jobs, with a refused item whose error echoes HTML."""
    cwd = tmp_path_factory.mktemp("report_html")
    inputs = cwd / "items.jsonl"
    inputs.write_text("".join(json.dumps(item) + "\n" for item in ITEMS), encoding="utf-8")
    with openai_server(answer=answer) as server:
        fake = server.fake

        def chat(request):
            if "refused" in request.json["messages"][-1]["content"]:
                return _error(400, f"Refused: {IMG} {SCRIPT}", "invalid_request_error")
            return fake.chat(request)

        server.routes[("POST", "/v1/chat/completions")] = chat
        env = clean_env(OPENAI_BASE_URL=server.url + "/v1", OPENAI_API_KEY="test-key",
                        RUNNER_CACHE_DIR=str(cwd / "cache"))
        done = forked.run([sys.executable, "-m", "runner", "-m", "model=gpt", "task=joke,chat",
                               "temperature=0,1", f"task.inputs={inputs}", "model.max_attempts=1", "max_tokens=4000",
                               "hydra.sweep.dir=outputs/sweeps/html"],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]  # the refused item failed, the rest answered
    return cwd / "outputs/sweeps/html"


def csv_rows(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_report_md_as_github_renders_it_holds_nothing_that_runs(sweep):
    """As GitHub's own parser renders it, and as markdown-it with linkify does: no link, no image but the
    run's plots, no tag but those report.md writes itself."""
    report = (sweep / "report.md").read_text(encoding="utf-8")
    assert "javascript:alert(3)" in report or "alert(2)" in report  # the payloads are in it, as text
    for renderer, html in markdown_renderings(report).items():
        assert active_content(html) == [], renderer
        shown = Shown(html)
        assert [attrs for tag, attrs in shown.tags if tag == "a"] == [], renderer
        assert {attrs["src"] for tag, attrs in shown.tags if tag == "img"} == {p.name for p in sweep.glob("*.png")}
        assert {tag for tag, _ in shown.tags} <= REPORT_MD_TAGS, renderer


def open_report(page, folder: Path):
    page.page.goto((folder / "report.html").as_uri())
    page.page.wait_for_selector("body[data-ready=true]")
    return page.page


def test_report_html_has_every_call_and_sorts_and_filters_them(sweep, page):
    rows = csv_rows(sweep)
    view = open_report(page, sweep)
    assert view.locator("#calls-total").get_attribute("data-count") == str(len(rows))
    view.select_option("#page-size", "500")
    assert view.locator("tr.call").count() == len(rows)
    # sort by latency, then the other way
    column = view.locator("table.calls thead th").all_text_contents().index("latency s")
    view.click('th[data-column="latency s"]')
    shown = [float(t) for t in view.locator(f"tr.call td:nth-child({column + 1})").all_text_contents() if t]
    assert len(shown) > 3 and shown == sorted(shown)
    view.click('th[data-column="latency s"]')
    shown = [float(t) for t in view.locator(f"tr.call td:nth-child({column + 1})").all_text_contents() if t]
    assert shown == sorted(shown, reverse=True)
    # filters: task, temperature and status, as results.csv counts them
    view.select_option('select[data-filter="task"]', "chat")
    assert view.locator("tr.call").count() == sum(r["task"] == "chat" for r in rows)
    view.select_option('select[data-filter="T"]', "1")
    assert view.locator("tr.call").count() == sum(r["task"] == "chat" and float(r["temperature"]) == 1 for r in rows)
    view.select_option('select[data-filter="task"]', "")
    view.select_option('select[data-filter="T"]', "")
    view.select_option('select[data-filter="status"]', "error")
    errors = [r for r in rows if r["status"] == "error"]
    assert errors and view.locator("tr.call").count() == len(errors)
    assert f"{len(errors)} of {len(rows)} calls" == view.locator("#calls-shown").text_content()
    view.select_option('select[data-filter="status"]', "")
    view.fill("#search", "end of the long answer")
    expect(view.locator("tr.call")).to_have_count(2)  # one per temperature
    assert page.problems == []


def test_report_html_shows_whole_answers_rendered_and_model_html_as_text(sweep, page):
    view = open_report(page, sweep)
    cards = view.locator("#side-by-side .card")
    # the long answer in full, not cut at report.md's 400 characters
    long_card = cards.filter(has_text="A physicist walks into a bar.").first
    assert LONG_END in long_card.text_content() and len(long_card.text_content()) > len(LONG)
    # the same answer in full under its call's row
    view.fill("#search", "end of the long answer")
    expect(view.locator("tr.call")).to_have_count(2)
    view.locator("tr.call").first.click()
    assert LONG_END in view.locator("tr.detail .answer").text_content()
    # a markdown table is a table
    table = cards.filter(has_text="Legs by animal").first.locator("table")
    assert table.count() == 1 and table.locator("td").all_text_contents() == ["cat", "4", "bird", "2"]
    # HTML in an answer, an error and an item name is text: shown, never run, never an element
    payload_card = cards.filter(has_text="Careful:").first
    assert IMG in payload_card.text_content() and SCRIPT in payload_card.text_content()
    for selector in ("#report img:not(.plots img)", "#report script", "#report iframe", "#report svg",
                     "#report a[href^='javascript']"):
        assert view.locator(selector).count() == 0, selector
    assert view.locator("#side-by-side h3", has_text="<script>alert('item')</script>").count() == 1
    assert IMG in view.locator("#errors").text_content()
    # conversations as bubbles: the user's line, then the model's answer, both as text
    bubbles = view.locator("#conversations .bubble")
    assert bubbles.filter(has_text=f"Hello {SCRIPT}").count() >= 1
    assert bubbles.filter(has_text=f"{IMG} again").count() >= 1
    assert view.locator("#conversations .bubble.user").count() >= 2 and view.locator(".bubble.model").count() >= 2
    view.wait_for_timeout(200)  # an onerror would have fired by now
    assert page.problems == []
    view.goto((sweep / "report.html").as_uri())
    view.click("nav >> text=Answers side by side")
    screenshot(view, "report.png", height=640)


LINKS = ("Sources: [the file](ftp://files.example.com/owls.txt), [a picture](data:image/png;base64,iVBORw0KGgo=), "
         "![inline](data:image/png;base64,iVBORw0KGgo=), <mailto:owls@example.com> and "
         "[the docs](https://example.com/owls).")


def test_an_answers_links_keep_only_web_and_mail_addresses_and_open_away_from_the_report(tmp_path, page):
    """Markdown links in an answer: http(s) and mailto stay links, each opened with no access to the report
    (rel noopener noreferrer nofollow); ftp: and data: addresses are dropped, their words kept."""
    with RecordWriter(tmp_path) as writer:
        writer.write(Record(run_id="links", model="gpt", provider="openai", model_id="m", task="joke",
                            prompt="default", temperature=0.7, item="owls", repeat=0, response=LINKS,
                            input_tokens=10, output_tokens=20, latency_s=0.5, started_at="2026-11-30T10:00:00+00:00"))
    done = forked.run([sys.executable, "-m", "runner.comparison", str(tmp_path), "--history",
                           str(tmp_path / "history.sqlite")], env=clean_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    card = open_report(page, tmp_path).locator("#side-by-side .card", has_text="Sources:")
    expect(card).to_have_count(1)
    links = card.locator("a[href]")
    assert sorted(links.evaluate_all("found => found.map(a => a.getAttribute('href'))")) == [
        "https://example.com/owls", "mailto:owls@example.com"]
    assert set(links.evaluate_all("found => found.map(a => a.getAttribute('rel'))")) == {"noopener noreferrer nofollow"}
    for words in ("the file", "a picture", "[image: inline]", "the docs"):
        assert words in card.text_content()
    assert page.problems == []


def test_line_breaks_the_report_puts_in_its_tables_are_line_breaks_not_text(tmp_path, page):
    """report.md breaks a cell's lines with <br> (markdown cells hold one line); report.html renders them as
    breaks. Here in "Since the previous run", whose cells hold each run's answer."""
    for name, said, at in (("one", "Roses are red,\nviolets are blue.", "2026-11-30T10:00:00+00:00"),
                           ("two", "Roses are red,\nskies are blue.", "2026-12-01T10:00:00+00:00")):
        with RecordWriter(tmp_path / name) as writer:
            writer.write(Record(run_id=name, model="gpt", provider="openai", model_id="m", task="joke",
                                prompt="default", temperature=0.7, item="owls", repeat=0, response=said,
                                input_tokens=10, output_tokens=20, latency_s=0.5, started_at=at))
        done = forked.run([sys.executable, "-m", "runner.comparison", str(tmp_path / name), "--history",
                               str(tmp_path / "history.sqlite")], env=clean_env(), capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    view = open_report(page, tmp_path / "two")
    section = view.locator("section", has=view.locator("h2", has_text="Since the previous run"))
    cell = section.locator("td", has_text="skies are blue").first
    assert cell.locator("br").count() == 1 and cell.inner_text() == "Roses are red,\nskies are blue."
    assert "<br>" not in section.text_content()
    assert page.problems == []

def test_ten_thousand_calls_open_a_page_at_a_time(tmp_path, page):
    """10,000 calls: the page holds all of them and draws one page of rows, so it opens at once."""
    with RecordWriter(tmp_path) as writer:
        for i in range(10_000):
            writer.write(Record(run_id="big", model=("gpt", "claude")[i % 2], provider="openai", model_id="m",
                                task="tutor", prompt="default", temperature=0.7, item=f"item {i // 2}", repeat=0,
                                response=f"Answer **{i}**", input_tokens=10, output_tokens=20, latency_s=i / 1000,
                                started_at="2026-11-30T10:00:00+00:00"))
    done = forked.run([sys.executable, "-m", "runner.comparison", str(tmp_path), "--history",
                           str(tmp_path / "history.sqlite")], env=clean_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    view = open_report(page, tmp_path)
    assert view.locator("#calls-total").get_attribute("data-count") == "10000"
    assert view.locator("tr.call").count() == 100  # one page in the document, not 10,000 rows
    view.select_option('select[data-filter="model"]', "claude")
    assert view.locator("#calls-shown").text_content() == "5000 of 10000 calls"
    view.click('th[data-column="latency s"]')
    view.click('th[data-column="latency s"]')
    assert view.locator("tr.call td.num").first.text_content() == "9.999" or \
        view.locator("tr.call").first.get_attribute("data-index") == "9999"
    assert page.problems == []


def test_report_html_shows_the_tool_use_table_of_a_tools_task(runner, page):
    """task=airline on gpt: report.html has the Tool use section, the cell's tool_called pass rate with its interval
    beside its turns per item, calls and failed tools, as report.md has it."""
    with openai_server() as server:
        run = runner("model=gpt", "task=airline", env={"OPENAI_BASE_URL": server.url + "/v1",
                                                       "OPENAI_API_KEY": "test-key"})
        assert run.code == 0, run.stderr[-3000:]
    view = open_report(page, run.root())
    section = view.locator("section", has=view.locator("h2", has_text="Tool use"))
    expect(section).to_have_count(1)
    heads = [h.strip() for h in section.locator("th").all_inner_texts()]
    row = section.locator("tr", has=view.locator("td", has_text="gpt")).first
    cells = dict(zip(heads, (c.strip() for c in row.locator("td").all_inner_texts())))
    assert cells["called: pass rate [95% CI] (scored)"] == "100% [51%, 100%] (4)", cells
    assert (cells["turns per item"], cells["tool calls"], cells["tools that failed"]) == ("1.8", "4", "1"), cells
    assert page.problems == []
