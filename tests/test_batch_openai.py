"""Batch runs through OpenAI's Batch API: the real command line and the real openai SDK against a strict fake of
files + batches (tests/fakes/openai_batches.py), which logs every request so a test can count submissions."""
from __future__ import annotations

import csv
import itertools
import json
import time
from decimal import Decimal

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from tests.conftest import clean_env
from tests.fakes.openai_batches import openai_batch_server
from tests.fakes.server import Reply

ITEMS = "task.inputs=[{audience: data scientists}, {audience: sailors}, {audience: owls}]"
FAST = "batch.poll_s=0.02"


def env_for(server) -> dict:
    return {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}


def price(row: dict, processing: str | None) -> Decimal:
    usage = PriceUsage(input_tokens=int(row["input_tokens"]), cache_read_tokens=int(row["cached_tokens"]) or None,
                       output_tokens=int(row["output_tokens"]))
    context = {"processing": processing} if processing else None
    return calc_price(usage, row["model_id"], provider_id="openai", price_context=context).total_price


def ledger(tmp_path) -> list:
    folder = tmp_path / "cache" / "batches"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def test_a_batch_run_answers_every_cell_at_the_batch_price_with_one_submission(runner, tmp_path):
    with openai_batch_server() as server:
        run = runner("model=gpt", "model.batch=true", FAST, ITEMS, "repeats=2", env=env_for(server))
    assert run.code == 0, run.stderr
    rows = run.rows()
    assert len(rows) == 6 and {row["status"] for row in rows} == {"ok"}
    assert len(server.batches.submissions(server)) == 1  # six calls, one batch
    assert not server.requests_to("/v1/chat/completions")  # nothing went directly
    for row in rows:
        assert Decimal(row["cost_usd"]) == price(row, "batch")  # genai-prices' batch price, to the last digit
        assert Decimal(row["spent_usd"]) == price(row, "batch")
        assert price(row, "batch") < price(row, None)
        assert row["ttft_s"] == "" and float(row["latency_s"]) >= 0  # the batch's turnaround, no first token
        assert "batch batch_0001: latency is its turnaround" in row["note"]
        assert row["response"].startswith("Answer to: A joke") or row["response"].startswith("Answer to:")
    saved = json.loads((run.root() / "batch.json").read_text(encoding="utf-8"))
    [batch] = saved["batches"]
    assert batch["batch_id"] == "batch_0001" and len(batch["custom_ids"]) == 6 and batch["state"] == "collected"
    assert {cell["item"] for cell in batch["cells"].values()} == {"data scientists", "sailors", "owls"}
    assert ledger(tmp_path) == []  # collected: nothing left for a later run to attach to
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    assert "batch run: 6 of its calls went through the providers' batch APIs" in report
    assert "Batch runs" in (run.root() / "report.html").read_text(encoding="utf-8")
    section = report.split("## Batch runs", 1)[1].split("\n## ", 1)[0]
    at_batch = sum(price(row, "batch") for row in rows)
    at_direct = sum(price(row, None) for row in rows)
    [line] = [line for line in section.splitlines() if line.startswith("| gpt")]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[1:4] == ["1", "6", "6"]
    assert Decimal(cells[4].lstrip("$")) == at_batch.quantize(Decimal(cells[4].lstrip("$")))
    assert Decimal(cells[6].lstrip("$")) == (at_direct - at_batch).quantize(Decimal(cells[6].lstrip("$")))


def test_the_submitted_file_is_what_a_direct_call_would_send(runner):
    with openai_batch_server() as server:
        run = runner("model=gpt", "model.batch=true", FAST, "task.inputs=[{audience: owls}]", "temperature=0.3",
                     env=env_for(server))
    assert run.code == 0, run.stderr
    upload = server.requests_to("/v1/files")[0]
    assert b'name="purpose"' in upload.body and b"batch" in upload.body
    content = server.batches.files["file-0001"]["content"].decode()
    [line] = [json.loads(text) for text in content.splitlines()]
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    assert line["body"]["temperature"] == 0.3 and line["body"]["model"] == "gpt-4.1-mini"
    assert "stream" not in line["body"]


def test_kill_9_while_polling_then_the_same_command_collects_without_a_second_batch(runner, tmp_path, start_python):
    with openai_batch_server() as server:
        server.batches.hold.set()  # the batch stays in progress until the first run is dead
        env = {"RUNNER_CACHE_DIR": str(tmp_path / "cache"), **env_for(server)}
        first = start_python(["-m", "runner", "model=gpt", "model.batch=true", FAST, ITEMS], tmp_path, clean_env(**env))
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                polls = [r for r in server.requests_to("/v1/batches/") if r.method == "GET"]
                if len(polls) >= 2:
                    break
                time.sleep(0.05)
            assert len(polls) >= 2, "the first run never polled its batch"
            assert list((tmp_path / "outputs").glob("runs/*/batch.json")), "batch.json not written before polling"
            assert len(ledger(tmp_path)) == 1
        finally:
            first.kill()  # SIGKILL on POSIX: no handler runs, nothing is flushed
            first.wait(timeout=30)
        server.batches.hold.clear()
        second = runner("model=gpt", "model.batch=true", FAST, ITEMS, env=env_for(server))
    assert second.code == 0, second.stderr
    assert len(server.batches.submissions(server)) == 1  # the provider received one batch, ever
    assert len([r for r in server.requests_to("/v1/files") if r.method == "POST"]) == 1
    rows = second.rows()
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    assert all("batch_0001" in row["note"] for row in rows)
    assert "attaching to batch batch_0001" in second.stdout + second.stderr
    assert ledger(tmp_path) == []


def test_wait_false_submits_and_exits_0_then_the_same_command_collects(runner, tmp_path):
    with openai_batch_server() as server:
        server.batches.hold.set()
        first = runner("model=gpt", "model.batch=true", "batch.wait=false", FAST, ITEMS, env=env_for(server))
        assert first.code == 0, first.stderr
        assert "run the same command again to collect" in first.stderr
        assert first.rows() == []  # nothing answered yet: no row pretends otherwise
        saved = json.loads((first.root() / "batch.json").read_text(encoding="utf-8"))
        assert saved["pending"] is True and saved["batches"][0]["state"] == "submitted"
        server.batches.hold.clear()
        server.batches.finish()  # the next day
        second = runner("model=gpt", "model.batch=true", "batch.wait=false", FAST, ITEMS, env=env_for(server))
    assert second.code == 0, second.stderr
    assert "run the same command again" not in second.stderr
    rows = second.rows()
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    assert len(server.batches.submissions(server)) == 1
    assert ledger(tmp_path) == []


# In this process from here on (the process boundary adds nothing): the same engine, SDK and fake.

@pytest.fixture
def here(run_settings, run_here, monkeypatch, tmp_path):
    """here(server, *overrides, items=ITEMS) runs a batch job of model=gpt in this process; (records, tally)."""
    runs = iter(range(1000))

    def run(server, *overrides, items=ITEMS, batch=True):
        monkeypatch.setenv("OPENAI_API_KEY", server.fake.key)
        settings = run_settings("model=gpt", f"model.batch={str(batch).lower()}", FAST,
                                f"model.base_url={server.url}/v1", items, *overrides)
        return run_here(settings, tmp_path / f"run{next(runs)}")

    return run


def by_item(records: list[dict]) -> dict[str, dict]:
    return {record["item"]: record for record in records}


def dollars(value: float) -> Decimal:
    return Decimal(str(value))  # as results.csv writes it: the float's shortest digits


def test_a_batch_answer_is_cached_for_a_later_batch_run_not_for_a_direct_one(here):
    """A later batch run of the same cells costs nothing; a direct run measures what a batch does not (the
    call's own latency, its time to first token), so it asks again."""
    with openai_batch_server() as server:
        here(server)
        submitted = len(server.batches.submissions(server))
        records, _ = here(server)
        assert {r["cache_hit"] for r in records} == {True} and {r["spent_usd"] for r in records} == {0}
        assert len(server.batches.submissions(server)) == submitted
        direct, _ = here(server, batch=False)
    assert {r["cache_hit"] for r in direct} == {False} and all(r["ttft_s"] for r in direct)
    assert len(server.requests_to("/v1/chat/completions")) == len(direct)


def test_an_expired_batch_is_submitted_again_once_with_a_warning(here, caplog):
    with openai_batch_server(expire=1, expire_keep=1) as server:
        records, tally = here(server)
    assert tally.ok == 3
    assert "expired before they were answered; submitting them again, once" in caplog.text
    assert len(server.batches.submissions(server)) == 2
    second_file = server.batches.files["file-0003"]["content"].decode()  # file-0002: the first batch's output
    assert len(second_file.splitlines()) == 2  # only the two requests the first batch did not answer
    assert sorted(r["note"].split(":")[0] for r in records) == ["batch batch_0001", "batch batch_0002",
                                                                "batch batch_0002"]


def test_an_expired_batch_is_resubmitted_only_once(here):
    with openai_batch_server(expire=2) as server:
        records, tally = here(server, "batch.retry_failed=none")
    assert tally.error == 3
    assert len(server.batches.submissions(server)) == 2
    assert all("could not be executed before the completion window expired" in r["error"] for r in records)


def owls_fail(body: dict) -> str | None:
    return "This model cannot talk about owls." if "owls" in body["messages"][-1]["content"] else None


def test_a_request_the_batch_failed_is_an_error_row_with_the_providers_reason(here):
    with openai_batch_server(fail=owls_fail) as server:
        records, _ = here(server, "batch.retry_failed=none")
    rows = by_item(records)
    assert rows["owls"]["status"] == "error" and "This model cannot talk about owls." in rows["owls"]["error"]
    assert rows["sailors"]["status"] == "ok"
    assert not server.requests_to("/v1/chat/completions")


def test_a_failed_batchs_reason_is_one_short_line_without_the_key(here):
    key = 'sk-Zq9x/batch+key="7788"'
    with openai_batch_server(key=key) as server:
        check = server.batches._check_lines  # the fake's validation, refusing the file with a long story
        story = f"Invalid file: the key {json.dumps(key)} may not " + "repeat this at length " * 3000
        server.batches._check_lines = lambda *args: (check(*args)[0], [{"code": "invalid_request", "message": story,
                                                                         "param": None, "line": 1}])
        records, _ = here(server, "batch.retry_failed=none")
    for record in records:
        assert record["error"].startswith("batch batch_0001 failed without answering this request: Invalid file: "
                                          "the key \"[redacted]\" may not repeat")
        assert len(record["error"]) < 400 and json.dumps(key)[1:-1] not in record["error"]


def test_retry_failed_direct_calls_the_failed_requests_directly_at_the_direct_price(here):
    with openai_batch_server(fail=owls_fail) as server:
        records, tally = here(server, "batch.retry_failed=direct")
    assert tally.ok == 3
    assert len(server.requests_to("/v1/chat/completions")) == 1
    rows = by_item(records)
    assert "turnaround" not in rows["owls"]["note"]  # a direct call's latency, not a batch's
    assert rows["owls"]["note"] == "the batch failed it (HTTP 400: This model cannot talk about owls.); sent directly"
    assert dollars(rows["owls"]["cost_usd"]) == price(rows["owls"], None)
    assert dollars(rows["sailors"]["cost_usd"]) == price(rows["sailors"], "batch")


def test_retry_failed_batch_sends_the_failed_requests_in_one_more_batch(here):
    with openai_batch_server(fail=owls_fail) as server:
        records, tally = here(server, "batch.retry_failed=batch")
    assert tally.error == 1  # the owls fail again, and there is no third try
    assert len(server.batches.submissions(server)) == 2
    assert not server.requests_to("/v1/chat/completions")
    assert "batch_0002" in by_item(records)["owls"]["note"]


def test_the_budget_reserves_the_batch_price(here):
    # max_tokens 1000 at gpt-4.1-mini: about $0.0016 a call direct, $0.0008 batched: three fit in $0.003 only batched
    with openai_batch_server() as server:
        _, tally = here(server, "max_tokens=1000", "budget_usd=0.003")
    assert tally.ok == 3


def test_a_budget_that_runs_out_skips_the_rest_of_a_batch_round_at_once(here):
    # about $0.0008 a call at the batch price: two fit in $0.002, the third is skipped, not waited for
    with openai_batch_server() as server:
        records, _ = here(server, "max_tokens=1000", "budget_usd=0.002")
    assert sorted(r["status"] for r in records) == ["ok", "ok", "skipped"]
    [submission] = server.batches.submissions(server)
    assert len(server.batches.files["file-0001"]["content"].splitlines()) == 2


def test_a_chat_task_sends_each_turn_as_one_batch_after_the_previous(here):
    with openai_batch_server() as server:
        _, tally = here(server, "task=chat",
                        items="task.inputs=[{messages: [hi, how are you]}, {messages: [hello, bye]}]")
    assert tally.ok == 4
    assert len(server.batches.submissions(server)) == 2  # turn 1 of both cells, then turn 2 of both
    second = [json.loads(line) for line in server.batches.files["file-0003"]["content"].decode().splitlines()]
    assert len(second) == 2
    for line in second:  # the second turn carries the first turn's answer from the first batch
        assert any(m["role"] == "assistant" and m["content"].startswith("Answer to:") for m in line["body"]["messages"])


@pytest.mark.parametrize("model", ["local", "llama", "mistral"])
def test_batch_on_a_provider_without_a_batch_api_is_refused_before_any_call(runner, model):
    run = runner(f"model={model}", "model.batch=true")
    assert run.code == 2
    assert "has no batch API" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (run.cwd / "outputs").exists() or not list((run.cwd / "outputs").glob("*/*/results.csv"))


def test_a_bad_batch_setting_is_refused_before_any_call(runner):
    run = runner("model=gpt", "model.batch=true", "batch.retry_failed=sometimes")
    assert run.code == 2 and "batch.retry_failed='sometimes' must be one of direct, batch, none" in run.stderr


def test_a_batch_left_uncollected_for_days_is_forgotten_not_reported_as_new(runner, tmp_path):
    with openai_batch_server() as server:
        server.batches.hold.set()
        first = runner("model=gpt", "model.batch=true", "batch.wait=false", FAST, ITEMS, env=env_for(server))
        assert first.code == 0, first.stderr
        [entry] = ledger(tmp_path)
        saved = json.loads(entry.read_text(encoding="utf-8"))
        saved["submitted_at"] -= 7 * 24 * 3600  # last week's, never collected
        entry.write_text(json.dumps(saved), encoding="utf-8")
        server.batches.hold.clear()
        second = runner("model=gpt", "model.batch=true", FAST, ITEMS, env=env_for(server))
    assert second.code == 0, second.stderr
    assert "never collected: forgotten" in second.stdout + second.stderr
    assert len(server.batches.submissions(server)) == 2
    assert all("batch_0002" in row["note"] for row in second.rows())


def test_a_password_in_base_url_never_reaches_the_batch_files_and_the_batch_is_still_found(tmp_path, monkeypatch):
    from runner.calling.batch_files import JobFile, Ledger, new_entry
    from runner.redact import watch_url

    url = "http://user:hunter2secret@127.0.0.1:9/v1"
    watch_url(url)  # as every provider does with its base_url
    entry = new_entry("openai", "gpt-4.1-mini", url, "batch_1", ["k1", "k2"])
    Ledger(tmp_path / "cache").add(entry)
    monkeypatch.setenv("SOME_API_KEY", "sk-itemsecret-123456")  # an item that quotes a key
    JobFile(tmp_path / "job").add(entry, {"k1": {"item": "owls sk-itemsecret-123456", "repeat": 0, "step": ""}})
    for path in [*(tmp_path / "cache" / "batches").glob("*.json"), tmp_path / "job" / "batch.json"]:
        written = path.read_text(encoding="utf-8")
        assert "hunter2secret" not in written and "user:***@" in written
        assert "sk-itemsecret-123456" not in written
    [found] = Ledger(tmp_path / "cache").find("openai", url, {"k2"})
    assert found["batch_id"] == "batch_1"


def test_a_round_over_the_providers_limits_is_split_and_a_request_too_large_is_not_sent(here, monkeypatch):
    from runner.providers.openai import OpenAIProvider

    monkeypatch.setattr(OpenAIProvider, "batch_limits", (2, 1000))  # two requests (about 400 bytes each) a batch
    items = "task.inputs=[{audience: owls}, {audience: cats}, {audience: dogs}, {audience: " + "very " * 200 + "long}]"
    with openai_batch_server() as server:
        records, _ = here(server, items=items)
    assert len(server.batches.submissions(server)) == 2
    files = [server.batches.files[name]["content"].decode() for name in ("file-0001", "file-0002")]
    assert sorted(len(content.splitlines()) for content in files) == [1, 2]
    too_large = [r for r in records if r["status"] == "error"]
    assert len(too_large) == 1 and "over the batch API's limit of 1000 bytes" in too_large[0]["error"]
    assert "very very" not in "".join(files)  # never sent


def test_a_request_exactly_as_large_as_a_whole_batch_may_be_is_sent(here, monkeypatch):
    from runner.providers.openai import OpenAIProvider

    # a fixed seed: a fresh random one per run is sent in the request, and its digits change the line's size
    with openai_batch_server() as server:
        here(server, "seed=7", items="task.inputs=[{audience: owls}]")
        size = len(server.batches.files["file-0001"]["content"])  # the one request's line and its newline
        monkeypatch.setattr(OpenAIProvider, "batch_limits", (10, size))
        records, tally = here(server, "cache=false", "seed=7", items="task.inputs=[{audience: owls}]")
        assert tally.ok == 1 and len(server.batches.submissions(server)) == 2, records
        monkeypatch.setattr(OpenAIProvider, "batch_limits", (10, size - 1))
        records, tally = here(server, "cache=false", "seed=7", items="task.inputs=[{audience: owls}]")
    assert tally.error == 1 and f"over the batch API's limit of {size - 1} bytes" in records[0]["error"]


def test_a_batch_never_holds_more_requests_than_the_provider_allows(here, monkeypatch):
    from runner.providers.openai import OpenAIProvider

    monkeypatch.setattr(OpenAIProvider, "batch_limits", (2, 200 * 1024 * 1024))  # two requests a batch; bytes plenty
    with openai_batch_server() as server:
        records, _ = here(server)  # three calls in one round
    assert len(records) == 3 and {r["status"] for r in records} == {"ok"}
    files = [server.batches.files[name]["content"].decode() for name in sorted(server.batches.files)
             if server.batches.files[name]["meta"]["purpose"] == "batch"]
    assert sorted(len(content.splitlines()) for content in files) == [1, 2]
    assert len(server.batches.submissions(server)) == 2


def test_a_dry_run_of_a_batch_run_is_priced_at_the_batch_price(run_settings, tmp_path, capsys):
    from runner.calling.estimate import estimate_job

    totals = {}
    for batch in ("false", "true"):
        settings = run_settings("model=gpt", f"model.batch={batch}", ITEMS, dry_run=True)
        folder = tmp_path / batch
        folder.mkdir()
        estimate_job(settings, folder, "run", "", folder)
        with open(folder / "estimate.csv", encoding="utf-8") as handle:
            totals[batch] = sum(Decimal(row["cost_usd"]) for row in csv.DictReader(handle))
    assert totals["true"] * 2 == totals["false"]


def test_a_batch_answers_latency_is_the_batch_turnaround_by_the_providers_clock(here):
    with openai_batch_server() as server:
        records, _ = here(server)
        batch = server.batches.batches["batch_0001"]
    assert {r["latency_s"] for r in records} == {float(batch["completed_at"] - batch["created_at"])}
    assert {r["ttft_s"] for r in records} == {None}


def test_a_batch_is_collected_through_four_failed_status_checks_in_a_row(here):
    """A network blip is not an outage: after a status check that worked, four that fail in a row still leave
    the batch waited for and collected, not given up."""
    with openai_batch_server() as server:
        server.batches.status_blips = [None, 500, 500, 500, 500]
        records, tally = here(server, "batch.retry_failed=direct")
        polls = [r for r in server.requests_to("/v1/batches/") if r.method == "GET"]
    assert tally.ok == 3 and {r["status"] for r in records} == {"ok"}, records
    assert len(polls) > 5 and not server.requests_to("/v1/chat/completions")  # polled on; nothing went directly


@pytest.mark.slow  # a batch kept in progress for 3 s
def test_the_pause_between_status_checks_grows_by_half_each_time(here):
    """A batch that takes a while is not polled ever faster: from 0.02 s, 1.5 times longer each time."""
    import threading

    def polls() -> list[float]:
        return [r.at for r in server.requests_to("/v1/batches/") if r.method == "GET"]

    def release() -> None:  # the batch stays in progress for 3 s from its first status check
        while not polls():
            time.sleep(0.005)
        time.sleep(3)
        server.batches.hold.clear()

    with openai_batch_server() as server:
        server.batches.hold.set()
        threading.Thread(target=release, daemon=True).start()
        records, tally = here(server)
        polls = polls()
    assert tally.ok == 3, records
    # 0.02 s * (1 + 1.5 + 1.5**2 + ...) passes 3 s after 11 pauses, the last of them about 1 s (a busy
    # machine makes each check slower: fewer of them); pauses that shrank instead would poll some 50 times
    gaps = [b - a for a, b in zip(polls, polls[1:])]
    assert 5 <= len(polls) <= 18 and max(gaps) > 0.5, gaps

def test_the_fifth_failed_status_check_in_a_row_gives_up_and_keeps_the_batch_for_a_later_run(here, tmp_path):
    with openai_batch_server() as server:
        server.batches.status_blips = [None, 500, 500, 500, 500, 500]
        records, tally = here(server, "batch.retry_failed=direct")
        assert tally.error == 3 and all("could not read batch batch_0001's status" in r["error"] for r in records)
        assert not server.requests_to("/v1/chat/completions")  # the batch may still answer: never paid twice
        assert len(ledger(tmp_path)) == 1
        _, again = here(server)
    assert again.ok == 3 and len(server.batches.submissions(server)) == 1


@pytest.mark.timeout(120)  # a round whose failure were lost would leave its calls waiting for ever
def test_an_output_file_that_cannot_be_read_fails_the_rounds_calls_and_the_job_ends(here):
    with openai_batch_server() as server:
        server.batches.cut_output = True
        records, tally = here(server)
    assert tally.error == 3 and all(r["error"].startswith("batch failed: JSONDecodeError") for r in records), records

def test_a_damaged_file_in_the_batch_ledger_hides_no_batch_after_it(here, tmp_path):
    with openai_batch_server() as server:
        server.batches.hold.set()
        here(server, "batch.wait=false")  # submitted and left running
        [entry] = ledger(tmp_path)
        damaged = entry.parent / ("0" * 20 + ".json")  # read before the batch's own file
        damaged.write_text('{"provider": "openai", "batch_id": ', encoding="utf-8")
        server.batches.hold.clear()
        server.batches.finish()
        records, tally = here(server, "batch.wait=false")
    assert tally.ok == 3 and len(server.batches.submissions(server)) == 1  # attached, not submitted again
    assert ledger(tmp_path) == [damaged]  # left for the user to see; the batch is collected

def test_a_batch_whose_status_cannot_be_read_is_kept_for_a_later_run_and_not_called_directly(here, tmp_path):
    with openai_batch_server() as server:
        server.batches.status_error = 403
        records, tally = here(server, "batch.retry_failed=direct")
        assert tally.error == 3 and all("could not read batch batch_0001's status" in r["error"] for r in records)
        assert not server.requests_to("/v1/chat/completions")  # the batch may still answer: never paid twice
        assert len(ledger(tmp_path)) == 1
        server.batches.status_error = None
        _, again = here(server)
    assert again.ok == 3 and len(server.batches.submissions(server)) == 1
    assert ledger(tmp_path) == []


def test_a_batch_the_proxy_cannot_create_goes_direct_and_the_rows_report_and_log_say_why(runner):
    """A proxy without the files API (LiteLLM answers uploads 500 "files_settings is not set"): no batch
    exists, the calls go direct, and every place that tells about the run says why; the direct calls' own
    retries are counted."""
    with openai_batch_server() as server:
        server.batches.upload_error = (500, "files_settings is not set")
        chat = server.routes[("POST", "/v1/chat/completions")]
        calls = itertools.count()
        # the first three direct calls meet a 500: each is retried, and the rows count it
        server.routes[("POST", "/v1/chat/completions")] = \
            lambda request: Reply(500, {"error": {"message": "busy", "type": "server_error", "param": None,
                                                  "code": None}}) if next(calls) < 3 else chat(request)
        run = runner("model=gpt", "model.batch=true", FAST, ITEMS, env=env_for(server))
    assert run.code == 0, run.stderr
    reason = "the provider did not create it (HTTP 500: server error (files_settings is not set))"
    rows = run.rows()
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    assert {row["note"] for row in rows} == {f"batch not used: {reason}; sent directly"}
    assert sum(int(row["retries"]) for row in rows) == 3
    for row in rows:
        assert Decimal(row["cost_usd"]) == price(row, None)  # no batch: the direct price
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    section = report.split("## Batch runs", 1)[1].split("\n## ", 1)[0]
    assert f"| gpt | 3 | 3 | {reason} |" in section
    log = (run.root() / "runner.log").read_text(encoding="utf-8")
    assert f"gpt: batch not used: {reason}; sending its 3 request(s) directly (batch.retry_failed=direct)" in log
    assert "failed in the batch" not in log  # there was no batch to fail in


def test_a_batch_the_provider_cannot_create_is_an_error_row_with_its_reason_under_retry_failed_none(here):
    with openai_batch_server() as server:
        server.batches.upload_error = (500, "files_settings is not set")
        records, tally = here(server, "batch.retry_failed=none")
    assert tally.error == 3
    assert {r["error"] for r in records} == {"batch not used: the provider did not create it (HTTP 500: server "
                                             "error (files_settings is not set))"}
    assert not server.requests_to("/v1/chat/completions")
