"""Costs per call: genai-prices' list price for known usage, overrides, unknown models, free local models."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from genai_prices.data_snapshot import get_snapshot

from runner.calling.costs import call_cost
from runner.calls import Usage
from runner.settings import ModelSettings, Price

NOW = datetime.now(timezone.utc)


def model(provider: str, id: str, **extra) -> ModelSettings:
    return ModelSettings(name="m", provider=provider, id=id, **extra)


def rates(provider_id: str, model_id: str, at: datetime = NOW):
    """The library's own per-million rates for a model, read from its data (not from calc_price)."""
    _, info = get_snapshot().find_provider_model(model_id, None, provider_id, None)
    return info.get_prices(at)


def rate(price) -> Decimal:
    """The base rate (these tests' prompts are far below any long-context tier)."""
    return getattr(price, "base", price)


def by_hand(prices, input_tokens: int, cached: int, output_tokens: int) -> Decimal:
    """Input at the input rate, cache reads at the cached rate, output at the output rate."""
    return ((input_tokens - cached) * rate(prices.input_mtok) + cached * rate(prices.cache_read_mtok)
            + output_tokens * rate(prices.output_mtok)) / 1_000_000


# (our provider, genai-prices provider, model id): one or more models of each of three providers
PAID = [
    ("openai", "openai", "gpt-4.1-mini"),
    ("openai", "openai", "gpt-4o"),
    ("anthropic", "anthropic", "claude-sonnet-4-5"),
    ("anthropic", "anthropic", "claude-3-5-haiku-latest"),
    ("gemini", "google", "gemini-2.5-flash"),
    ("gemini", "google", "gemini-2.0-flash"),
]


@pytest.mark.parametrize("provider,price_id,model_id", PAID)
def test_cost_is_the_library_price_with_cached_input_at_the_cached_rate(provider, price_id, model_id):
    usage = Usage(input_tokens=12_345, output_tokens=678, cached_tokens=4_000)
    cost = call_cost(model(provider, model_id), usage)
    library = calc_price(PriceUsage(input_tokens=12_345, cache_read_tokens=4_000, output_tokens=678),
                         model_id, provider_id=price_id).total_price
    assert Decimal(repr(cost)) == library
    prices = rates(price_id, model_id)
    assert Decimal(repr(cost)) == by_hand(prices, 12_345, 4_000, 678)
    # cached tokens are cheaper than fresh ones: the same usage without cache reads costs more
    assert call_cost(model(provider, model_id), Usage(12_345, 678, 0)) > cost


def test_known_numbers_for_gpt_4_1_mini():
    # $0.40 / M input, $0.10 / M cached input, $1.60 / M output (genai-prices 0.2.3)
    prices = rates("openai", "gpt-4.1-mini")
    assert (prices.input_mtok, prices.cache_read_mtok, prices.output_mtok) == (Decimal("0.4"), Decimal("0.1"),
                                                                                Decimal("1.6"))
    cost = call_cost(model("openai", "gpt-4.1-mini"), Usage(1_000, 500, 200))
    assert Decimal(repr(cost)) == Decimal("0.00114")  # 800 * 0.4 + 200 * 0.1 + 500 * 1.6, per million


def test_dated_model_ids_resolve_to_the_same_price():
    usage = Usage(1_000, 100, 0)
    assert call_cost(model("anthropic", "claude-sonnet-4-5-20250929"), usage) == \
        call_cost(model("anthropic", "claude-sonnet-4-5"), usage)


def test_long_prompts_are_priced_at_the_higher_tier():
    base = rates("google", "gemini-2.5-pro").input_mtok
    assert base.tiers, "gemini-2.5-pro has a long-context tier in genai-prices"
    tier = base.tiers[0]
    below, above = tier.start, tier.start + 1
    small = call_cost(model("gemini", "gemini-2.5-pro"), Usage(below, 0, 0))
    large = call_cost(model("gemini", "gemini-2.5-pro"), Usage(above, 0, 0))
    assert Decimal(repr(small)) == below * base.base / 1_000_000
    assert Decimal(repr(large)) == above * tier.price / 1_000_000  # the whole prompt at the tier's rate
    assert Decimal(repr(large)) == calc_price(PriceUsage(input_tokens=above, output_tokens=0), "gemini-2.5-pro",
                                              provider_id="google").total_price


def test_a_price_that_changes_on_a_date_is_taken_on_the_call_date():
    usage = Usage(1_000_000, 1_000_000, 0)
    before = datetime(2026, 12, 31, 12, tzinfo=timezone.utc)
    after = datetime(2027, 1, 2, 12, tzinfo=timezone.utc)
    gemini = model("gemini", "gemini-3.6-flash")
    for at in (before, after):
        expected = calc_price(PriceUsage(input_tokens=1_000_000, output_tokens=1_000_000), "gemini-3.6-flash",
                              provider_id="google", genai_request_timestamp=at).total_price
        assert Decimal(repr(call_cost(gemini, usage, at))) == expected
    assert call_cost(gemini, usage, before) != call_cost(gemini, usage, after)


def test_price_override_wins_and_prices_cached_input():
    price = Price(input=1.0, output=2.0, cached_input=0.5)
    cost = call_cost(model("openai", "gpt-4.1-mini", price=price), Usage(1_000, 500, 200))
    assert Decimal(repr(cost)) == Decimal("0.0019")  # (800 * 1 + 200 * 0.5 + 500 * 2) / 1e6
    # without a cached rate, cached tokens cost the input rate
    cost = call_cost(model("openai_compatible", "my-model", price=Price(input=1.0, output=2.0)), Usage(1_000, 500, 200))
    assert Decimal(repr(cost)) == Decimal("0.002")


@pytest.mark.parametrize("settings", [
    model("openai", "my-private-finetune"),  # a provider the library knows, a model it does not
    model("openai_compatible", "Qwen2.5-7B-Instruct"),  # a self-hosted endpoint with no price
])
def test_unknown_price_is_none_not_a_guess(settings):
    assert call_cost(settings, Usage(1_000, 500, 0)) is None


def test_price_provider_names_the_library_provider_for_compatible_endpoints():
    proxied = model("openai_compatible", "gpt-4o", price_provider="openai")
    assert call_cost(proxied, Usage(1_000, 500, 0)) == call_cost(model("openai", "gpt-4o"), Usage(1_000, 500, 0))


@pytest.mark.parametrize("provider", ["local", "ollama"])
def test_models_on_the_users_machine_cost_nothing(provider):
    assert call_cost(model(provider, "llama3.2"), Usage(1_000, 500, 0)) == 0.0
    assert call_cost(model(provider, "llama3.2"), Usage()) == 0.0  # even with no usage reported


def test_local_model_with_a_price_override_is_priced():
    settings = model("local", "SmolLM2", price=Price(input=0.1, output=0.2))
    assert Decimal(repr(call_cost(settings, Usage(1_000, 1_000, 0)))) == Decimal("0.0003")


def test_missing_usage_has_no_cost():
    assert call_cost(model("openai", "gpt-4o"), Usage(input_tokens=None, output_tokens=5)) is None
