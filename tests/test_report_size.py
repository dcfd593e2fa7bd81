"""Reports of a large sweep stay a readable size: report.html embeds the calls of the first items only, up
to a cap, and says what it left out; report.md shows the first items' answers and conversations. The totals
count every call. In process, with the cap lowered through its parameter (the 10,000-call page in a browser:
test_report_html.py)."""
from __future__ import annotations

import json
import re

from runner.analysis import report, report_html
from runner.analysis.summary import frame, summarize
from runner.records import Record
from tests.browser import chromium, watched_page  # noqa: F401 - fixtures browser and page


def call(model: str, item: str, **extra) -> dict:
    base = dict(run_id="r", model=model, provider="openai", model_id="x", task="joke", prompt="default",
                temperature=0.7, item=item, repeat=0, status="ok", job="0", response=f"{model} on {item}")
    return Record(**{**base, **extra}).data()


def page_data(path) -> dict:
    text = path.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(block)


def sweep(items: int) -> list[dict]:
    """Two models over `items` items, model by model (as two jobs write them); one error in the last item."""
    rows = [call(model, f"item {i}") for model in ("gpt", "claude") for i in range(items)]
    rows[-1] = call("claude", f"item {items - 1}", status="error", error="HTTP 500: down", response=None)
    return rows


def test_report_html_embeds_whole_items_up_to_the_cap_and_says_what_it_left_out(tmp_path):
    df = frame(sweep(10))
    path = report_html.write(tmp_path, df, summarize(df), [], "python -m runner", "", [], [], max_calls=7)
    data = page_data(path)
    rows = data["calls"]["rows"]
    item = [c["name"] for c in data["calls"]["columns"]].index("item")
    # whole items: 3 items x 2 models fit in 7 calls, each with both models' answers side by side
    assert sorted(r[item] for r in rows) == sorted(f"item {i}" for i in (0, 1, 2) for _ in range(2))
    assert [len(indexes) for _, _, indexes, _pictures in data["items"]] == [2, 2, 2]
    assert data["left_out"] == ("This page holds the calls of the first 3 of 10 items (6 of 20 calls), so that "
                                "it stays quick to open; the tables of totals count every call, and every call "
                                "is in results.csv and the jobs' results.jsonl.")
    # the totals are over every call, the left-out error included
    assert data["counts"]["calls"] == 20 and data["counts"]["error"] == 1
    assert [r[2] for r in data["errors"]["rows"]] == [1]
    assert data["summary"]["rows"][0][4] in ("10", 10)


def test_report_html_under_the_cap_holds_every_call_and_no_note(tmp_path):
    df = frame(sweep(3))
    data = page_data(report_html.write(tmp_path, df, summarize(df), [], "python -m runner", "", [], [],
                                       max_calls=6))
    assert len(data["calls"]["rows"]) == 6 and data["left_out"] is None


def test_one_item_larger_than_the_cap_is_cut_at_the_cap(tmp_path):
    df = frame([call("gpt", "only", repeat=r) for r in range(5)])
    data = page_data(report_html.write(tmp_path, df, summarize(df), [], "python -m runner", "", [], [],
                                       max_calls=3))
    assert len(data["calls"]["rows"]) == 3
    assert "the first 1 of 1 item (3 of 5 calls)" in data["left_out"]


def test_report_md_shows_the_first_conversations_and_counts_the_rest():
    turns = frame([call("gpt", f"topic {i}", step=f"turn-{t}", job=str(i))
                   for i in range(report.ANSWER_ITEMS + 3) for t in (1, 2)])
    text = report.transcripts_section(turns)
    assert text.count("### gpt") == report.ANSWER_ITEMS
    assert text.endswith("*3 more conversations: every turn is in results.csv.*")


def test_report_md_shows_the_first_items_in_order_whatever_order_they_ran_in():
    items = [f"item {i:03d}" for i in range(report.ANSWER_ITEMS + 5)]
    df = frame([call(model, item) for model in ("gpt", "claude") for item in reversed(items)])
    text = report.answers_section(df)
    shown = re.findall(r"^### joke: (.*)$", text, re.M)
    assert shown == items[:report.ANSWER_ITEMS]
    assert text.count("| claude |") == text.count("| gpt |") == report.ANSWER_ITEMS  # both models, each item
    assert text.endswith("*5 more items: every answer is in results.csv.*")


def test_the_page_says_what_it_left_out_where_a_reader_sees_the_calls(tmp_path, page):
    df = frame(sweep(10))
    path = report_html.write(tmp_path, df, summarize(df), [], "python -m runner", "", [], [], max_calls=7)
    view = page.page
    view.goto(path.as_uri())
    view.wait_for_selector("body[data-ready=true]")
    assert view.locator("#counts").text_content().startswith("20 calls: 19 ok, 1 error")
    assert view.locator("#calls-total").get_attribute("data-count") == "6"
    for section in ("#calls", "#side-by-side"):
        note = view.locator(f"{section} .left-out").text_content()
        assert "the first 3 of 10 items (6 of 20 calls)" in note and "results.csv" in note
    assert view.locator("#side-by-side .card").count() == 6
    assert page.problems == []
