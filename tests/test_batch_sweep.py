"""The issue's "done when": `-m model=gpt,claude,gemini model.batch=true` against the three strict batch fakes ends
with ok rows priced at genai-prices' batch prices, one batch per provider, and a report that says what it saved."""
from __future__ import annotations

from decimal import Decimal

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from tests.fakes.anthropic_batches import anthropic_batch_server
from tests.fakes.gemini_batches import gemini_batch_server
from tests.fakes.openai_batches import openai_batch_server

PRICED_AS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}


def test_a_three_provider_batch_sweep_ends_with_ok_rows_at_batch_prices(runner):
    with openai_batch_server() as gpt, anthropic_batch_server() as claude, gemini_batch_server() as gemini:
        run = runner("-m", "model=gpt,claude,gemini", "model.batch=true", "batch.poll_s=0.02",
                     "task.inputs=[{audience: data scientists}, {audience: sailors}]", "repeats=2",
                     env={"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key",
                          "ANTHROPIC_BASE_URL": claude.url, "ANTHROPIC_API_KEY": "test-key",
                          "GOOGLE_GEMINI_BASE_URL": gemini.url, "GEMINI_API_KEY": "test-key"})
        submitted = [len(server.batches.submissions(server)) for server in (gpt, claude, gemini)]
    assert run.code == 0, run.stderr
    assert submitted == [1, 1, 1]
    rows = run.rows()
    assert len(rows) == 12 and {row["status"] for row in rows} == {"ok"}
    for row in rows:
        usage = PriceUsage(input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"]),
                           cache_read_tokens=int(row["cached_tokens"]) or None)
        batch = calc_price(usage, row["model_id"], provider_id=PRICED_AS[row["provider"]],
                           price_context={"processing": "batch"}).total_price
        assert Decimal(row["cost_usd"]) == batch, row["model"]
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    section = report.split("## Batch runs", 1)[1].split("\n## ", 1)[0]
    assert {line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")} >= \
        {"gpt", "claude", "gemini"}
