"""Batch runs through Gemini's batch mode (google-genai, inline requests): the real command line and SDK against a
strict fake (tests/fakes/gemini_batches.py) whose finished jobs carry their answers inline."""
from __future__ import annotations

from decimal import Decimal

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from tests.fakes.gemini_batches import gemini_batch_server

ITEMS = "task.inputs=[{audience: data scientists}, {audience: sailors}, {audience: owls}]"
FAST = "batch.poll_s=0.02"


def env_for(server) -> dict:
    return {"GOOGLE_GEMINI_BASE_URL": server.url, "GEMINI_API_KEY": "test-key"}


def price(row: dict, processing: str | None) -> Decimal:
    usage = PriceUsage(input_tokens=int(row["input_tokens"]), cache_read_tokens=int(row["cached_tokens"]) or None,
                       output_tokens=int(row["output_tokens"]))
    context = {"processing": processing} if processing else None
    return calc_price(usage, row["model_id"], provider_id="google", price_context=context).total_price


def test_a_gemini_batch_answers_every_cell_at_the_batch_price_once(runner):
    with gemini_batch_server() as server:
        run = runner("model=gemini", "model.batch=true", FAST, ITEMS, "temperature=0.2", env=env_for(server))
    assert run.code == 0, run.stderr
    [submission] = server.batches.submissions(server)
    requests = submission.json["batch"]["inputConfig"]["requests"]["requests"]
    assert len(requests) == 3
    assert all(r["request"]["generationConfig"]["temperature"] == 0.2 for r in requests)
    assert not [r for r in server.received if ":generateContent" in r.path or ":streamGenerateContent" in r.path]
    rows = run.rows()
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    for row in rows:
        assert row["item"] in row["response"]
        assert Decimal(row["cost_usd"]) == price(row, "batch") < price(row, None)
        assert row["ttft_s"] == "" and "batches/fakebatch0001" in row["note"]


def test_per_request_errors_and_an_expired_job(runner):
    def fail(request):
        return "Request contains an invalid argument." if "owls" in request["contents"][-1]["parts"][0]["text"] \
            else None

    with gemini_batch_server(fail=fail, expire=1) as server:
        run = runner("model=gemini", "model.batch=true", "batch.retry_failed=none", FAST, ITEMS, env=env_for(server))
    assert run.code == 1
    assert len(server.batches.submissions(server)) == 2  # the expired job's requests, sent again once
    assert "submitting them again, once" in run.stdout + run.stderr
    rows = {row["item"]: row for row in run.rows()}
    assert rows["owls"]["status"] == "error" and "400 Request contains an invalid argument." in rows["owls"]["error"]
    assert rows["sailors"]["status"] == "ok" and "fakebatch0002" in rows["sailors"]["note"]


def test_the_course_sdk_has_no_batch_api_and_is_refused(runner):
    run = runner("model=gemini", "model.sdk=generativeai", "model.batch=true")
    assert run.code == 2 and "has no batch API" in run.stderr
