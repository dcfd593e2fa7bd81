"""What a call costs at list price, from genai-prices (Pydantic's maintained price database).

A model config's `price` (USD per million tokens) overrides the library for self-hosted or unlisted
models; the embedded local model and models served by Ollama cost 0. A model nobody knows the price of
gets no cost (None) and a warning in the report, never an invented number. `input_tokens` counts all input tokens, cached ones
included, as OpenAI reports them and as genai-prices expects.
"""
from __future__ import annotations

import functools
import logging
from decimal import Decimal

from runner.providers.base import Usage
from runner.settings import ModelSettings

log = logging.getLogger(__name__)

# our provider names -> genai-prices provider ids
PRICE_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google", "ollama": None,
                   "local": None, "openai_compatible": None}
FREE_PROVIDERS = {"local", "ollama"}  # models running on the user's machine
MILLION = Decimal(1_000_000)


def price_provider(model: ModelSettings) -> str | None:
    return model.price_provider or PRICE_PROVIDERS.get(model.provider)


def _decimal(value: float | None) -> Decimal:
    return Decimal(str(value or 0))


def call_cost(model: ModelSettings, usage: Usage) -> float | None:
    """List price of one call in USD, or None when the price is unknown or usage is missing."""
    if model.provider in FREE_PROVIDERS and model.price is None:
        return 0.0
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    cached = usage.cached_tokens or 0
    if model.price is not None:
        price = model.price
        cached_rate = price.input if price.cached_input is None else price.cached_input
        total = ((usage.input_tokens - cached) * _decimal(price.input) + cached * _decimal(cached_rate)
                 + usage.output_tokens * _decimal(price.output)) / MILLION
        return float(total)
    return _library_cost(model.id, price_provider(model), usage.input_tokens, cached, usage.output_tokens)


@functools.lru_cache(maxsize=4096)
def _library_cost(model_id: str, provider: str | None, input_tokens: int, cached: int,
                  output_tokens: int) -> float | None:
    if provider is None:
        return None
    from genai_prices import Usage as PriceUsage, calc_price

    try:
        result = calc_price(PriceUsage(input_tokens=input_tokens, cache_read_tokens=cached or None,
                                       output_tokens=output_tokens), model_ref=model_id, provider_id=provider)
    except LookupError:
        return None
    return float(result.total_price)


def known_price(model: ModelSettings) -> bool:
    """Whether costs for this model can be computed (used for the report's warning)."""
    return call_cost(model, Usage(1_000, 1_000, 0)) is not None
