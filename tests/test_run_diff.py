"""'Since the previous run' in process: what changed between two runs of a sweep, as the report and
`python -m runner.compare` print it (the end-to-end runs are in test_history.py and test_reports.py)."""
from __future__ import annotations

from runner.analysis.run_diff import describe
from runner.analysis.summary import frame
from runner.records import Record


def call(item: int, response: str = "", status: str = "ok", prompt: str = "default", latency: float = 1.0,
         cost: float = 0.001, error: str = "", out: int = 10, repeat: int = 0) -> dict:
    return Record(run_id="r", model="gpt", provider="openai", model_id="gpt-4o-mini", task="joke", prompt=prompt,
                  temperature=0.7, item=str(item), repeat=repeat, status=status, error=error,
                  response=response if status == "ok" else "", latency_s=latency, ttft_s=latency / 2,
                  cost_usd=cost if status == "ok" else None, spent_usd=cost if status == "ok" else None,
                  input_tokens=20, output_tokens=out, tokens_source="provider").data()


def test_what_changed_since_the_previous_run():
    old = frame([call(0, "Why did the owl cross the road?"), call(1, "Knock knock."), call(2, "A pun."),
                 call(3, status="error", error="HTTP 500: server error (down)")])
    new = frame([call(0, "  why did the OWL\ncross the road? ", latency=2.0, cost=0.002, out=20),
                 call(1, "Two fish in a tank.", latency=2.0, cost=0.002, out=20),
                 call(2, status="error", error="HTTP 429: rate limited (slow down)"),
                 call(3, "Fixed now.", latency=2.0, cost=0.002, out=20), call(0, "New cell.", prompt="concise")])
    text = describe(old, new, "run-1", "run-2")
    assert text.startswith("Comparing run-2 with run-1.")
    # case and whitespace are no change; item 2 failed now, item 3 failed before: only item 1 is compared too
    assert "Answers: gpt 1 of 2 changed." in text
    assert "| gpt | default | 0.7 | 1 | 0 | Knock knock. | Two fish in a tank. |" in text
    assert "Why did the owl" not in text
    assert "New errors: 1." in text
    assert "| gpt | default | 0.7 | 2 | 0 | error | HTTP 429: rate limited (slow down) |" in text
    assert "Fixed since then: 1." in text and "| gpt | default | 0.7 | 3 | 0 | HTTP 500: server error (down) |" in text
    assert "Cells only in the newer run: gpt/joke/concise/T=0.7." in text
    assert "only in the earlier run" not in text
    row = next(line for line in text.splitlines() if line.startswith("| gpt |") and "→" in line)
    assert "| 4 → 5 (+25%) | 1 |" in row  # calls, then failed: unchanged shows one value
    assert "1.00 s → 2.00 s (+100%)" in row and "0.50 s → 1.00 s (+100%)" in row
    assert "$0.001000 → $0.001750 (+75%)" in row  # cost per call: (3 x 0.002 + 0.001) / 4
    assert row.endswith("| 20 | 10 → 18 (+75%) |")  # tokens in unchanged; out: (20 + 20 + 20 + 10) / 4 = 17.5


def test_a_run_with_no_answer_in_common_and_no_errors_says_so():
    old = frame([call(0, "a")])
    new = frame([call(0, "b", prompt="concise")])
    text = describe(old, new, "old", "new")
    assert "No answer in common to compare." in text and "No new or fixed errors." in text
    assert "Cells only in the newer run: gpt/joke/concise/T=0.7." in text
    assert "Cells only in the earlier run: gpt/joke/default/T=0.7." in text


def test_many_changed_answers_list_ten_and_count_the_rest():
    old = frame([call(i, f"old {i}") for i in range(13)])
    new = frame([call(i, f"new {i}") for i in range(13)])
    text = describe(old, new, "old", "new")
    assert "Answers: gpt 13 of 13 changed." in text
    assert "…and 3 more (results.csv of both runs has them all)." in text
    assert text.count("| new ") == 10
    ten = describe(frame([call(i, f"old {i}") for i in range(10)]), frame([call(i, f"new {i}") for i in range(10)]),
                   "old", "new")
    assert ten.count("| new ") == 10 and "more (results.csv" not in ten


def test_a_side_without_a_number_shows_a_dash_and_cached_timing_is_marked():
    old = frame([call(0, status="error", error="HTTP 500")])
    new = frame([{**call(0, "now"), "cache_hit": True}])
    row = next(line for line in describe(old, new, "a", "b").splitlines() if line.startswith("| gpt |"))
    assert "– → 1.00 s (cached)" in row and "– → 0.50 s (cached)" in row  # no ok call before: no latency
    assert "$0.001000" in row and "nan" not in row
    gone = frame([call(0, "x")]).assign(model="claude")
    text = describe(gone, new, "a", "b")
    claude = next(line for line in text.splitlines() if line.startswith("| claude |"))
    assert "(cached)" not in claude and "1 → –" in claude  # a model only in the earlier run


def test_long_answers_and_reasons_are_cut_where_the_table_says():
    answer, reason = "a" * 160, "r" * 200
    text = describe(frame([call(0, "before"), call(1, "x"), call(2, status="error", error="f" * 200)]),
                    frame([call(0, answer), call(1, status="error", error=reason), call(2, "y")]), "a", "b")
    assert f"| {answer} |" in text and f"| {reason} |" in text and f"| {'f' * 200} |" in text
    text = describe(frame([call(0, "before"), call(1, "x"), call(2, status="error", error="f" * 201)]),
                    frame([call(0, answer + "b"), call(1, status="error", error=reason + "s"), call(2, "y")]),
                    "a", "b")
    assert f"| {answer[:159]}… |" in text and f"| {reason[:199]}… |" in text and f"| {'f' * 199}… |" in text
