"""report.md's tables and sections in process: escaping, the numbers each column shows, answers side by
side, transcripts, errors and what the run spent (end to end: test_reports.py, test_cells.py)."""
from __future__ import annotations

import random
import re

from runner.analysis import report
from runner.analysis.summary import frame, summarize
from runner.records import Record
from tests.html_checks import REPORT_MD_TAGS, Shown, markdown_renderings


def call(model: str, item: str, repeat: int = 0, status: str = "ok", **extra) -> dict:
    base = dict(run_id="r", model=model, provider="openai", model_id="x", task="joke", prompt="default",
                temperature=0.7, item=item, repeat=repeat, status=status, job="0")
    return Record(**{**base, **extra}).data()


def test_a_cell_is_one_line_with_pipes_and_html_escaped_and_shortened():
    assert report.cell_text("a | b\n\n\nc <i>&") == "a \\| b<br>c &lt;i&gt;&amp;"
    assert report.cell_text("back\\slash\r\n") == "back\\\\slash"
    assert report.cell_text("abcdefghij", 5) == "abcd…" and report.cell_text("abcde", 5) == "abcde"
    assert report.cell_text(None) == "" and report.cell_text(float("nan")) == ""
    assert report.cell_text(report.Markdown("*as is* |")) == "*as is* |"
    # math (GitHub renders $...$, which neither renderer of the tests below knows): every $ escaped, but in
    # the runner's own figures (prices, intervals, changes), which are shown as written: no link in them
    assert report.cell_text("$\\href{http://x}{y}$ $$z$$") == "\\$\\\\href{http:/\\/x}{y}\\$ \\$\\$z\\$\\$"
    assert report.cell_text("$0.10 → $0.12 (+20%)") == "$0.10 → $0.12 (+20%)"
    assert report.cell_text("$1 * $2") == "\\$1 \\* \\$2"
    for figure in ("50% [13%, 87%] (3)", "1.00 s → 2.00 s (+100%)", "$0.02 + 1 n/a", "-0.83 [-1.00, -0.50]"):
        assert report.cell_text(figure) == figure
    assert report.cell_text("[1](2)") == "\\[1\\](2)"  # a link made of figures is escaped all the same
    # what needs no escape keeps report.md readable as a file: words, numbers, snake_case, sentences' dots
    assert report.cell_text("snake_case, 3.14 and __init__. Done.") == "snake_case, 3.14 and \\_\\_init\\_\\_. Done."
    assert report.table([["x|y", 1]], ["a", "b"], ["---", "---:"]) == "| a | b |\n| --- | ---: |\n| x\\|y | 1 |"
    assert report.number(1.234) == "1.23" and report.number(None) == "" and report.number(2.25, 1) == "2.2"


def calls() -> list[dict]:
    return [
        call("gpt", "a", 0, latency_s=1.0, ttft_s=0.5, input_tokens=10, output_tokens=5, cost_usd=0.001,
             spent_usd=0.001, response="Yes"),
        call("gpt", "a", 1, latency_s=3.0, ttft_s=0.7, input_tokens=10, output_tokens=5, cost_usd=0.001,
             spent_usd=0.001, response="No"),
        # a priced model's call that failed without usage paid nothing; one of a model with no known price, unknown
        call("gpt", "b", 0, "error", error="HTTP 500: server error (down)", spent_usd=0.0),
        call("gpt", "b", 1, "error", error="HTTP 500: server error (down)", spent_usd=0.0),
        call("free", "a", 0, latency_s=2.0, input_tokens=1, output_tokens=1, response="Hm"),
    ]


def test_the_summary_table_row_of_a_cell():
    df = frame(calls())
    text = report.summary_table(summarize(df))
    assert "| model | task | prompt | T | calls | ok | err | skip | latency p50 s |" in text
    assert "| --- | --- | --- | --- | ---: |" in text
    assert "| gpt | joke | default | 0.7 | 4 | 2 | 2 | 0 | 2.00 | 2.90 | 0.60 | 20 | 10 | 2.5 | $0.002000 | " \
           "$0.001000 | $1.0000 |" in text
    assert "| free | joke | default | 0.7 | 1 | 1 | 0 | 0 | 2.00 | 2.00 |  | 1 | 1 | 0.5 | n/a | n/a | n/a |" in text


def test_the_cost_table_and_what_was_spent():
    df = frame(calls())
    text = report.cost_table(df)
    assert "| gpt | joke | 4 | 4 | $0.002000 | $1.0000 | $0.002000 | 2.5 |" in text  # 4 cells, 2 of them priced
    assert "| free | joke | 1 | 1 | n/a | n/a | n/a | 0.5 |" in text
    assert report.spent_text(df) == "$0.002000 + n/a for 1 call with no known price"
    assert report.spent_text(frame([c for c in calls() if c["model"] == "free"])) == "n/a (no known price)"
    assert report.spent_text(frame([c for c in calls() if c["model"] == "gpt"])) == "$0.002000"
    assert report.spent_text(frame([])) == "$0"


def test_repeats_spread_and_answers_side_by_side():
    df = frame(calls())
    spread = report.spread_table(summarize(df))
    assert "| gpt | joke | default | 0.7 | 2 | 0.5 | 50% |" in spread  # "Yes"/"No": lengths 3 and 2
    answers = report.answers_section(df)
    assert answers.startswith("The first repeat of each variant is shown")
    assert "### joke: a" in answers and "### joke: b" in answers
    assert "| free | default | 0.7 | 1 | Hm |" in answers and "| gpt | default | 0.7 | 2 | Yes |" in answers
    assert "| gpt | default | 0.7 |  | *error: HTTP 500: server error (down)* |" in answers
    reason = "x" * 200  # a failed call's reason is shown up to 200 characters
    assert f"*error: {reason}*" in report.answers_section(frame([call("gpt", "a", status="error", error=reason)]))
    assert f"*error: {reason[:199]}…*" in report.answers_section(frame([call("gpt", "a", status="error",
                                                                            error=reason + "y")]))
    answer = "y" * 400  # an answer is shown up to 400 characters
    assert f"| {answer} |" in report.answers_section(frame([call("gpt", "a", response=answer)]))
    assert f"| {answer[:399]}… |" in report.answers_section(frame([call("gpt", "a", response=answer + "z")]))
    single = report.answers_section(frame([call("gpt", "a", response="Yes")]))
    assert "distinct" not in single and "| gpt | default | 0.7 | Yes |" in single
    assert report.spread_table(summarize(frame([call("gpt", "a", response="Yes")]))) is None


def test_only_the_first_fifty_items_are_shown():
    many = report.answers_section(frame([call("gpt", str(i), response="x") for i in range(report.ANSWER_ITEMS + 2)]))
    assert many.count("### joke:") == report.ANSWER_ITEMS
    assert many.endswith("*2 more items: every answer is in results.csv.*")


def test_errors_name_crashed_jobs_and_count_reasons():
    df = frame(calls())
    text = report.errors_section(df, ["3"])
    assert text.startswith("- job `3` crashed before it finished: its traceback is in `3/job_error.txt`")
    assert "| gpt | error | 2 | HTTP 500: server error (down) |" in text
    assert report.errors_section(frame([call("gpt", "a", response="ok")]), []) is None


def test_a_conversation_is_a_transcript_turn_by_turn():
    turns = frame([call("gpt", "topic", step="turn-1", response="Hello", input_tokens=3, output_tokens=2,
                        cost_usd=0.5),
                   call("claude", "topic", step="turn-2", response="Hi", details={"speaker": "Claude"})])
    text = report.transcripts_section(turns)
    assert text.startswith("### gpt vs claude · topic (prompt default, T=0.7, repeat 0)")
    assert "| turn-1 | gpt | Hello | 3 | 2 | $0.5000 |" in text and "| turn-2 | Claude | Hi |  |  | n/a |" in text
    assert report.transcripts_section(frame(calls())) is None
    later_first = frame([call("gpt", "zebra", step="turn-1", response="1", job="1"),
                         call("gpt", "apple", step="turn-1", response="2", job="0")])
    text = report.transcripts_section(later_first)
    assert text.index("zebra") < text.index("apple")  # conversations in the order they were recorded
    assert report.answers_section(turns).startswith("*no answers")


def test_every_table_has_as_many_alignments_and_cells_as_columns():
    df = frame(calls())
    summary = summarize(df)
    for text in (report.summary_table(summary), report.cost_table(df), report.spread_table(summary),
                 report.answers_section(df), report.errors_section(df, [])):
        for block in text.split("\n\n"):
            rows = [line for line in block.splitlines() if line.startswith("| ")]
            widths = {len(line.replace("\\|", "").split(" | ")) for line in rows}
            assert len(widths) <= 1, block


def test_the_whole_report_in_order_with_its_notes_only_when_they_apply(tmp_path):
    df = frame(calls())
    path = report.write(tmp_path, df, summarize(df), [tmp_path / "cost_per_call.png"], "python -m runner -m x=1",
                        "model: gpt\n", ["2"], ["a warning"], [("Since the previous run", "nothing")],
                        ["run id: r"])
    text = path.read_text(encoding="utf-8")
    order = ["# Comparison: ", "5 calls: 3 ok, 2 error, 0 skipped; spent $0.002000 + n/a for 1 call",
             "- run id: r", "```\npython -m runner -m x=1\n```", "> **Warning:** a warning", "## Summary",
             "*n/a*: calls of a model with no known price", "## Cost by model and task",
             "## Spread of repeated answers", "## Plots", "![cost per call](cost_per_call.png)",
             "## Since the previous run", "## Answers side by side", "## Errors", "- job `2` crashed",
             "## Config", "```yaml\nmodel: gpt\n```"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "(cached)" not in text and "## Transcripts" not in text
    priced = frame([c for c in calls() if c["model"] == "gpt"])
    text = report.write(tmp_path, priced, summarize(priced), [], "c", "", [], []).read_text(encoding="utf-8")
    assert "*n/a*" not in text and "## Plots" not in text and "## Errors" in text and "Warning" not in text
    one = frame([call("gpt", "a", response="Yes", cost_usd=0.1, spent_usd=0.1)])
    text = report.write(tmp_path, one, summarize(one), [], "c", "", [], []).read_text(encoding="utf-8")
    assert "1 call: 1 ok, 0 error, 0 skipped; spent $0.1000." in text and "## Errors" not in text
    assert "## Spread" not in text


# What a model or a page may answer to plant a tracking pixel, a link or HTML in report.md, or break its tables
HOSTILE = [
    "![pixel](http://tracker.test/p.png?u=1) and ![ref pixel][p]",
    "[click](javascript:alert(1)) [site](http://evil.test/) [ref][p] [^1]",
    "<http://evil.test/auto> <mailto:ada@evil.test>",
    "see www.evil.test, http://evil.test/x, ftp://evil.test, //evil.test/y, evil.test/z, ada@evil.test, "
    "mailto:bob@evil.test and xmpp:eve@evil.test",
    "<img src=x onerror=alert(1)> <script>alert(2)</script> <a href='http://evil.test'>a</a> <br> "
    "&lt;b&gt; &#x3C;i&#x3E; &amp;",
    "a | b | c\n---|---|---\n| d | e |",
    "$\\href{http://evil.test}{x}$ and $$x$$ and ~~gone~~ ~gone~",
    "line one\n\n\n    indented\n[p]: http://tracker.test/ref.png",
]
# Ordinary answers: code, a list, emphasis and arithmetic read as the model wrote them
ORDINARY = [
    "Here is the code:\n```python\ndef total(books):\n    return sum(b['pages'] for b in books)  # 2 * 3\n```",
    "- **Fast**: O(n)\n- uses `sum`\n1. snake_case_name and __init__\n2. 3.14 costs $5, e.g. 2 * 3 * 4 = 24",
]


def test_answers_errors_reasons_and_items_in_report_md_show_as_the_text_they_are(tmp_path):
    """report.md rendered as GitHub renders it and as a linkifying viewer does: whatever a model, a page or
    a judge wrote is no link, image, raw HTML, emphasis or code, and its table holds exactly that text."""
    texts = HOSTILE + ORDINARY
    rows = [call("gpt", f"item {i}", response=text) for i, text in enumerate(texts)]
    rows += [call("claude", f"item {i}", status="error", error=text) for i, text in enumerate(HOSTILE)]
    rows += [call("gpt", text, step="turn-1", response=text) for text in HOSTILE]  # a transcript, items too
    df = frame(rows)
    notes = {("gpt", "", "default", 0.7, "joke", f"item {i}", 0): f"judge: 0.50 fail: {text}"
             for i, text in enumerate(HOSTILE)}
    path = report.write(tmp_path, df, summarize(df), [tmp_path / "cost_per_call.png"], "python -m runner",
                        "model: gpt\n", [], [], answer_notes=notes)
    markdown = path.read_text(encoding="utf-8")
    assert "tracker" in markdown and "javascript:alert(1)" in markdown  # the payloads are there, as text
    for renderer, html in markdown_renderings(markdown).items():
        shown = Shown(html)
        links = [attrs for tag, attrs in shown.tags if tag == "a"]
        images = [attrs.get("src") for tag, attrs in shown.tags if tag == "img"]
        raw = {tag for tag, _ in shown.tags} - REPORT_MD_TAGS
        assert (links, images, raw) == ([], ["cost_per_call.png"], set()), renderer
        for text in texts:  # each answer: one cell, its lines kept, blank lines as one break, nothing lost
            assert _as_shown(text) in shown.cells, (renderer, text)
        for text in HOSTILE:  # the judges' reasons, the errors and the transcript's turns the same
            assert _as_shown(f"judge: 0.50 fail: {text}") in shown.cells, (renderer, text)
            assert shown.cells.count(_as_shown(text)) >= 3, (renderer, text)  # answer, error, turn
        tables = _tables(html)
        assert len(tables) >= 5  # summary, cost, answers per item, transcripts, errors: every row whole
        assert all(len({len(row) for row in rows}) == 1 for rows in tables), renderer


def test_every_line_of_any_text_reads_back_exactly_and_links_nowhere():
    """A seeded mix of every character markdown gives a meaning to, links of every kind and HTML: each
    cell, rendered both ways, holds exactly its text and no tag."""
    pieces = list("`*_~[]()<>!&|\\$:/.@#-+=\"' \n\tab1") + [
        "http://", "HTTPS://", "ftp://", "www.", "WWW.", "javascript:", "mailto:", "xmpp:", "a@b.com", ".com",
        "e.co", "://", "&amp;", "&#64;", "<img src=x>", "![x](y)", "<http://a.b>", "xn--", "[^1]", "~~", "**",
        "$$", "<br>", "<!--", "\u3002", "\uff0e", "\u2060", "\xa0", "localhost", "127.0.0.1", ":8080", "?a=b"]
    generator = random.Random(5)
    for _ in range(400):
        text = "".join(generator.choice(pieces) for _ in range(generator.randint(1, 24)))
        markdown = report.table([[text, "x"]], ["a", "b"])
        for renderer, html in markdown_renderings(markdown).items():
            shown = Shown(html)
            assert {tag for tag, _ in shown.tags} <= TABLE_TAGS | {"br"}, (renderer, text, markdown)
            assert shown.cells[2:] == [_as_shown(text), "x"], (renderer, text, markdown)


TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td"}


def _as_shown(text: str) -> str:
    """What a reader should see of a text in a cell: its lines without blank ones, indentation kept (tabs
    as four spaces), no character added or lost."""
    text = re.sub(r"\n\s*\n+", "\n", text.replace("\r", "").strip())
    text = re.sub(r"(?m)^[ \t]+", lambda m: m.group(0).replace("\t", "    "), text)
    return text.replace("\u2060", "").replace("\xa0", " ")


def _tables(html: str) -> list[list[list[str]]]:
    """Each table's rows, each row its cells' opening tags."""
    return [[re.findall(r"<t[dh][^>]*>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
            for table in re.findall(r"<table>(.*?)</table>", html, re.S)]
