"""dry_run=true: token and dollar estimates per cell and in total, estimate.csv, and no model call at all."""
from __future__ import annotations

import csv
from decimal import Decimal

import pytest
import requests

from runner.calling.costs import library_price
from runner.calling.estimate import MULTI_STEP_NOTE, estimate_rows
from runner.settings import ModelSettings, PromptSettings, RunSettings, TaskSettings
from runner.tasks import TASKS
from runner.tasks.base import Task
from runner.tokens import count_messages
from tests.fakes.openai_server import openai_server
from tests.fakes.server import FakeServer, Reply
from tests.fakes.site import site

JOKE = [{"role": "system", "content": "You are an assistant that is great at telling jokes"},
        {"role": "user", "content": "Tell a light-hearted joke for an audience of Data Scientists"}]


def read(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_dry_run_sweep_estimates_every_job_and_calls_nothing(runner, real_encodings):
    with openai_server() as server:
        run = runner("-m", "model=gpt,local", "dry_run=true", "repeats=2",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    assert server.received == []  # not one request reached the provider
    root = run.root()
    assert not (root / "results.csv").exists() and not (root / "report.md").exists()
    for job in ("0", "1"):
        assert len(read(root / job / "estimate.csv")) == 2
    rows = read(root / "estimate.csv")
    assert [(r["model"], r["repeat"]) for r in rows] == [("gpt", "0"), ("gpt", "1"), ("local", "0"), ("local", "1")]
    gpt = rows[0]
    # input tokens: tiktoken on the messages the run would send (o200k_base for gpt-4.1-mini)
    assert (int(gpt["input_tokens"]), gpt["tokens_source"]) == count_messages(JOKE, "gpt-4.1-mini") == (30, "tiktoken")
    assert int(gpt["output_tokens"]) == 256  # the assumed answer: max_tokens
    expected = library_price("gpt-4.1-mini", "openai", 30, 0, 256)
    assert Decimal(gpt["cost_usd"]) == expected
    assert Decimal(rows[2]["cost_usd"]) == 0  # the local model is free
    # per cell and in total, in dollars
    assert f"${expected}" in run.stdout
    assert f"total: 4 call(s), 120 input tokens, 1024 output tokens, ${2 * expected}" in run.stdout


def test_dry_run_of_a_model_without_a_price_says_so(runner, real_encodings):
    run = runner("model=gpt", "model.id=my-private-model", "dry_run=true", env={"OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    [row] = run.rows("estimate.csv")
    assert row["cost_usd"] == ""
    assert "no known price for gpt (openai/my-private-model)" in run.stdout
    assert "+ 1 call(s) with no known price" in run.stdout


def test_dry_run_without_a_key_still_estimates_and_says_the_model_would_be_skipped(runner, real_encodings):
    run = runner("model=gpt", "dry_run=true")
    assert run.code == 0, run.stderr
    [row] = run.rows("estimate.csv")
    assert Decimal(row["cost_usd"]) > 0
    assert "OPENAI_API_KEY is not set" in row["note"]


class PageTask(Task):
    """A two-step task that scrapes a page in prepare(), like summarize and brochure do."""

    multi_step = True

    options = {}

    async def prepare(self, session) -> None:
        self.pages = {item["url"]: requests.get(item["url"], timeout=10).text for item in self.settings.inputs}

    def messages(self, fields):
        return [{"role": "system", "content": "Summarize the page."},
                {"role": "user", "content": self.pages[fields["url"]]}]

    async def run(self, cell, session) -> None:
        first = await session.call(cell, self.messages(cell.item), step="links")
        await session.call(cell, [{"role": "user", "content": first.text}], step="write")


def test_dry_run_counts_the_pages_a_task_scrapes(monkeypatch, real_encodings):
    page = "Our company builds sailing boats in Brittany. " * 200
    with FakeServer({("GET", "/about"): lambda r: Reply(200, page, {"Content-Type": "text/html"})}) as site:
        monkeypatch.setitem(TASKS, "pages", PageTask)
        run = RunSettings(
            model=ModelSettings(name="claude", provider="openai_compatible", id="claude-sonnet-4-5",
                                base_url="http://127.0.0.1:9/v1",
                                price_provider="anthropic"),
            task=TaskSettings(name="pages", kind="pages", inputs=({"url": site.url + "/about"},)),
            prompt=PromptSettings(name="default"), temperature=0.7, max_tokens=100, repeats=2, cache="off",
            dry_run=True, budget_usd=None, cache_dir=None, history=None)
        rows = estimate_rows(run)
    assert [r.path for r in site.received] == ["/about"]  # prepare() ran once for the job
    expected, source = count_messages([{"role": "system", "content": "Summarize the page."},
                                       {"role": "user", "content": page}], "claude-sonnet-4-5", approximate=True)
    assert source == "tiktoken" and expected > 1000  # the page is in the count
    assert [r["input_tokens"] for r in rows] == [expected, expected]
    assert Decimal(rows[0]["cost_usd"]) == library_price("claude-sonnet-4-5", "anthropic", expected, 0, 100)
    assert MULTI_STEP_NOTE in rows[0]["note"]


def test_dry_run_of_the_summarize_task_reads_the_page_once_and_calls_nothing(runner):
    page = "<html><head><title>Boats</title></head><body><p>We build sailing boats.</p></body></html>"
    with FakeServer({("GET", "/"): lambda r: Reply(200, page, {"Content-Type": "text/html"})}) as site, \
            openai_server() as server:
        run = runner("-m", "model=gpt", "temperature=0,0.7", "task=summarize", f"task.inputs=[{site.url}/]",
                     "dry_run=true",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
        assert run.code == 0, run.stderr[-2000:]
        assert server.received == [] and len(site.received) == 1  # the second job read the snapshot
    rows = read(run.root() / "estimate.csv")
    assert len(rows) == 2 and all(int(r["input_tokens"]) > 0 and r["note"] == "" for r in rows), rows
    assert list((run.root() / "pages").glob("*.json"))


def test_dry_run_of_summarize_counts_the_messages_the_real_run_sends(runner, real_encodings):
    """One code path builds a cell's first messages: the dry run's count is tiktoken's count of what the
    real run then sent (the page's title and text in the task's own template, not the bare item)."""
    with site() as web, openai_server() as ai:
        env = {"OPENAI_BASE_URL": ai.url + "/v1", "OPENAI_API_KEY": "test-key"}
        dry = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/]", "dry_run=true", env=env)
        assert dry.code == 0, dry.stderr
        [estimate] = read(dry.root() / "estimate.csv")
        assert ai.received == []
        real = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/]", env=env)
        assert real.code == 0, real.stderr
    [messages] = [r.json["messages"] for r in ai.requests_to("/v1/chat/completions")]
    assert "Acme Rockets builds reusable launch vehicles" in messages[1]["content"]
    assert (int(estimate["input_tokens"]), estimate["tokens_source"]) == count_messages(messages, "gpt-4.1-mini")
    assert int(estimate["input_tokens"]) > 100  # the page's text is in it


def test_dry_run_shows_the_pages_that_fail_and_exits_1(runner, real_encodings):
    with site() as web, openai_server() as ai:
        run = runner("-m", "model=gpt", "temperature=0,0.7", "task=summarize",
                     f"task.inputs=[{web.url}/about,{web.url}/gone,{web.url}/picture]", "dry_run=true",
                     env={"OPENAI_BASE_URL": ai.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 1, run.stderr
    assert ai.received == []
    gone = f"{web.url}/gone: HTTP 404 Not Found"
    picture = f"{web.url}/picture: the page has no readable text (its content is a PNG image, not HTML)"
    rows = read(run.root() / "estimate.csv")
    assert [(r["item"].rsplit("/", 1)[1], r["error"]) for r in rows] == [("about", ""), ("gone", gone),
                                                                          ("picture", picture)] * 2
    assert all(int(r["input_tokens"]) > 0 for r in rows if not r["error"])
    assert all(r["input_tokens"] == r["cost_usd"] == "" for r in rows if r["error"])
    assert f"could not be estimated: {gone}" in run.stdout  # in the job's table
    assert "4 cell(s) could not be estimated (estimate.csv's error column):" in run.stdout
    assert f"\n    {picture}\n" in run.stdout and run.stdout.count(gone) == 3  # each job's table, once in the end
    assert "total: 2 call(s), " in run.stdout and "(+ 4 cell(s) that could not be estimated)" in run.stdout


def test_dry_run_counts_the_judge_calls_per_judge_and_holds_the_total_against_the_budget(runner, real_encodings):
    """Judging is paid too: answers scored x judges, priced at each judge's list price, apart from answering,
    and in the total compared with budget_usd."""
    with openai_server() as server:
        run = runner("-m", "model=gpt,local", "dry_run=true", "judges=[gpt,claude]", "repeats=2", "budget_usd=0.001",
                     "task.inputs=[{audience: owls}, {audience: cats}]",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key",
                          "ANTHROPIC_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    assert server.received == []
    rows = read(run.root() / "estimate.csv")
    answering = [r for r in rows if r["step"] == ""]
    judging = [r for r in rows if r["step"] == "judge-funny"]
    assert len(answering) == 8 and len(rows) == 8 + 16  # 2 models x 2 items x 2 repeats, each judged by 2 judges
    for judge, model_id, provider in (("gpt", "gpt-4.1-mini", "openai"), ("claude", "claude-haiku-4-5", "anthropic")):
        mine = [r for r in judging if r["model"] == judge]
        assert len(mine) == 8 and {(r["job"], r["item"], r["repeat"]) for r in mine} == \
            {(r["job"], r["item"], r["repeat"]) for r in answering}
        for row in mine:  # the judge reads the rubric, the question and an answer of max_tokens; its verdict is
            # judge.max_tokens long at most
            assert int(row["input_tokens"]) > 256 and int(row["output_tokens"]) == 1024
            assert Decimal(row["cost_usd"]) == library_price(model_id, provider, int(row["input_tokens"]), 0, 1024)
    judged = sum(Decimal(r["cost_usd"]) for r in judging)
    total = sum(Decimal(r["cost_usd"]) for r in rows)
    assert "judging by gpt: 8 call(s)" in run.stdout and "judging by claude: 8 call(s)" in run.stdout
    assert "judging: 16 call(s)" in run.stdout and f"${judged}" in run.stdout
    assert "total: 24 call(s)" in run.stdout and f"${total}" in run.stdout
    assert f"budget_usd=0.001: the estimate (${total}) is over it" in run.stdout


@pytest.mark.parametrize("judge,model_id,key", [("claude", "anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY"),
                                                 ("gemini_flash", "gemini/gemini-3.8-flash", "GEMINI_API_KEY")],
                         ids=["a judge", "a reasoning judge (its rows carry the room for thinking too)"])
def test_dry_run_with_a_judge_without_its_key_estimates_and_says_a_real_run_would_stop(runner, real_encodings,
                                                                                       judge, model_id, key):
    """A real run refuses a judge without its key before any call (exit 2); its dry run still estimates
    (what judging would cost is worth knowing before getting the key), says so on the judge's rows, ends
    with the real run's line and its exit code."""
    with openai_server() as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}
        dry = runner("-m", "model=gpt,local", "dry_run=true", f"judges=[{judge}]", "task.inputs=[{audience: owls}]",
                     env=env)
        rows = read(dry.root() / "estimate.csv")
        real = runner("-m", "model=gpt,local", f"judges=[{judge}]", "task.inputs=[{audience: owls}]", env=env)
        assert server.received == []
    assert real.code == 2 and dry.code == 2, dry.stderr
    judging = [r for r in rows if r["step"] == "judge-funny"]
    assert len(judging) == 2 and all(Decimal(r["cost_usd"]) > 0 for r in judging)
    assert all(f"a real run would stop before any call (exit 2): judge {judge} ({model_id}): {key}" in r["note"]
               for r in judging)
    assert "would skip" not in " ".join(r["note"] for r in judging)
    [line] = real.stderr.strip().splitlines()
    [said] = [said for said in dry.stderr.strip().splitlines() if f"judge {judge}" in said]
    words, would = said.split(": a real run would stop")  # the real run's own words, then what it would do
    assert words in line and would == " before any call (exit 2)", (said, line)
    assert "total: 4 call(s)" in dry.stdout


def test_dry_run_counts_a_pairwise_scorers_calls_over_the_sweeps_cells(runner, real_encodings):
    """Pairwise judging grows with the square of the cells: 3 cells answering 2 items make 3 pairs per item,
    each judged in both orders: 12 calls for one judge, each showing two answers of max_tokens."""
    with openai_server() as server:
        run = runner("-m", "model=gpt,claude,local", "dry_run=true", "scorer=pairwise", "scorer.pairwise.judges=[gpt]",
                     "task.inputs=[{audience: owls}, {audience: cats}]",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key",
                          "ANTHROPIC_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    assert server.received == []
    rows = read(run.root() / "estimate.csv")
    pairs = [r for r in rows if r["step"] == "judge-pairwise@pairs"]
    assert len([r for r in rows if r["step"] == ""]) == 6
    assert len(pairs) == 12 and {r["model"] for r in pairs} == {"gpt"}
    assert all(int(r["input_tokens"]) > 2 * 256 for r in pairs)
    assert "judging by gpt: 12 call(s)" in run.stdout and "total: 18 call(s)" in run.stdout
    assert "counted over the sweep's cells in the combined estimate" in run.stdout


def test_a_single_runs_pairwise_scorer_makes_no_call_in_its_estimate(runner, real_encodings):
    run = runner("dry_run=true", "model=local", "scorer=pairwise", "scorer.pairwise.judges=[local]",
                 "task.inputs=[{audience: owls}]")
    assert run.code == 0, run.stderr
    rows = read(run.root() / "estimate.csv")
    assert [r["step"] for r in rows] == [""] and "total: 1 call(s)" in run.stdout


def test_a_dry_run_states_the_smallest_difference_its_items_can_detect_and_the_items_stats_detect_needs(
        runner, real_encodings):
    from runner.calling import power

    items = "task.inputs=[" + ", ".join(f"{{audience: group{n}}}" for n in range(20)) + "]"
    run = runner("-m", "model=gpt,local", "prompt=default,concise", "dry_run=true", items, "stats.detect=0.1",
                 "stats.assumed_sd=0.4", env={"OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    # 4 cells of one task: 6 pairs, adjusted together in the report
    alone, among = power.detectable_difference(20, 0.4), power.detectable_difference(20, 0.4, 0.05 / 6)
    needed, needed_among = power.items_needed(0.1, 0.4), power.items_needed(0.1, 0.4, 0.05 / 6)
    assert (f"  detectable difference, task joke (20 items, 4 cell(s)): {alone:.2f} between two cells' mean scores "
            f"at 95% confidence with 80% power, {among:.2f} for a pair among the 6 the report adjusts together "
            f"(assuming per-item differences spread with sd 0.4: stats.assumed_sd); stats.detect=0.1 needs about "
            f"{needed} items ({needed_among} among them)\n") in run.stdout
    assert 0.2 < alone < among < 0.5 and 100 < needed < needed_among


def test_bad_stats_settings_are_one_line_and_exit_2_before_any_call(runner):
    for override, said in (("stats.adjust=bonferroni", "stats.adjust='bonferroni' must be one of holm, bh"),
                           ("stats.alpha=0", "stats.alpha=0 must be between 0 and 1"),
                           ("stats.detect=-0.1", "stats.detect=-0.1 is out of range"),
                           ("+stats.level=3", "unknown key 'stats.level'")):
        run = runner("model=gpt", override, env={"OPENAI_API_KEY": "test-key"})
        assert run.code == 2, (override, run.stderr)
        [line] = run.stderr.strip().splitlines()
        assert said in line, (override, line)
