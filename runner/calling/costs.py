"""What a call costs at list price, from genai-prices (Pydantic's maintained price database).

A model config's `price` (USD per million tokens) overrides the library for self-hosted or unlisted
models; models that run on the user's own machine (the embedded one, Ollama) cost 0. A model nobody
knows the price of gets no cost (None) and a warning in the report, never an invented number.

`input_tokens` counts all input tokens, cached ones included, as OpenAI reports them and as
genai-prices expects (it prices `cache_read_tokens` at the cached rate and the rest at the input
rate). genai-prices also picks the tier for long prompts (priced on the whole prompt, as providers
do) and the price in force on the call's date, so calls are priced when they are made.
A call answered through a batch API (`batch=True`) is priced at genai-prices' batch rate (its
`processing: batch` price context); a model config's own `price` is taken as what the user pays either way.

What a call spent (`bill`) counts every attempt the provider billed: each one whose response carried usage,
answered or not (an empty answer that was tried again, a length cut, a stream broken after its usage came).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from runner.calls import Response, Usage
from runner.providers import provider_class
from runner.settings import ModelSettings

MILLION = Decimal(1_000_000)


def price_provider(model: ModelSettings) -> str | None:
    """The genai-prices provider id: the model config's `price_provider`, else its provider's own."""
    return model.price_provider or provider_class(model).price_provider


def _decimal(value: float) -> Decimal:
    return Decimal(str(value))


def call_cost(model: ModelSettings, usage: Usage, at: datetime | None = None, batch: bool = False) -> float | None:
    """List price of one call in USD, or None when the price is unknown or usage is missing.

    `at` is when the call was made (default: now); prices that change on a date are looked up for it.
    `batch`: the call was answered through the provider's batch API, at its batch price.
    """
    if model.price is None and provider_class(model).free:
        return 0.0
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    cached = min(usage.cached_tokens or 0, usage.input_tokens)
    if model.price is not None:
        price = model.price
        cached_rate = price.input if price.cached_input is None else price.cached_input
        total = ((usage.input_tokens - cached) * _decimal(price.input) + cached * _decimal(cached_rate)
                 + usage.output_tokens * _decimal(price.output)) / MILLION
        return float(total)
    total = library_price(model.id, price_provider(model), usage.input_tokens, cached, usage.output_tokens, at,
                          batch)
    return None if total is None else float(total)


def library_price(model_id: str, provider: str | None, input_tokens: int, cached_tokens: int,
                  output_tokens: int, at: datetime | None = None, batch: bool = False) -> Decimal | None:
    """genai-prices' total for this usage, or None when it does not know the provider or model."""
    if provider is None:
        return None
    # Prices change on dates, not within a minute: calls with the same usage in the same minute share one
    # lookup, which keeps pricing off the hot path of large sweeps.
    minute = (at or datetime.now(timezone.utc)).replace(second=0, microsecond=0)
    return _library_price(model_id, provider, input_tokens, cached_tokens, output_tokens, minute, batch)


@functools.lru_cache(maxsize=8192)
def _library_price(model_id: str, provider: str, input_tokens: int, cached_tokens: int, output_tokens: int,
                   at: datetime, batch: bool = False) -> Decimal | None:
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    usage = PriceUsage(input_tokens=input_tokens, cache_read_tokens=cached_tokens or None,
                       output_tokens=output_tokens)
    try:
        result = calc_price(usage, model_ref=model_id, provider_id=provider, genai_request_timestamp=at,
                            price_context={"processing": "batch"} if batch else None)
    except LookupError:
        return None
    return result.total_price


def known_price(model: ModelSettings) -> bool:
    """Whether this model's calls can be priced (a budget needs it before any call)."""
    return call_cost(model, Usage(input_tokens=1_000, output_tokens=1_000, cached_tokens=0)) is not None


def attempt_cost(model: ModelSettings, response: Response, priced: bool) -> float | None:
    """What the provider billed for one attempt: its usage at list price (at the batch price when a batch
    answered it); 0 for an attempt that came back without usage; None when the model's price is unknown
    (`priced`: known_price(model)). A count missing beside another (input without output) is taken as 0."""
    if not priced:
        return None
    usage = response.usage
    if not usage.reported:
        return 0.0
    counted = dataclasses.replace(usage, input_tokens=usage.input_tokens or 0, output_tokens=usage.output_tokens or 0)
    return call_cost(model, counted, batch=response.batch_id is not None)


@dataclass
class Bill:
    """What one call's attempts were billed this run, summed over every attempt whose response carried usage."""

    spent_usd: float | None  # None: the model's price is unknown
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: list[dict] = field(default_factory=list)  # each billed attempt: its tokens, cost and error


def bill(model: ModelSettings, response: Response, priced: bool) -> Bill:
    """The bill of a call that ended with `response` (its earlier billed attempts in `billed_before`)."""
    total: Decimal | None = Decimal(0)
    result = Bill(spent_usd=None)
    for attempt in [*response.billed_before, response]:
        cost = attempt_cost(model, attempt, priced)
        total = None if total is None or cost is None else total + _decimal(cost)
        if not attempt.usage.reported:
            continue
        result.input_tokens += attempt.usage.input_tokens or 0
        result.output_tokens += attempt.usage.output_tokens or 0
        result.attempts.append({"input_tokens": attempt.usage.input_tokens,
                                "output_tokens": attempt.usage.output_tokens, "cost_usd": cost,
                                "error": attempt.error or ""})
    result.spent_usd = None if total is None else float(total)
    return result
