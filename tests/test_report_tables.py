"""report.md's tables and sections in process: escaping, the numbers each column shows, answers side by
side, transcripts, errors and what the run spent (end to end: test_reports.py, test_cells.py)."""
from __future__ import annotations

from runner.analysis import report
from runner.analysis.summary import frame, summarize
from runner.records import Record


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
