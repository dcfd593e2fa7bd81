"""What every call of one model sends, decided once per model from the run's settings and what the model
takes (runner.providers.capabilities): the temperature or none, the reasoning setting, and the output cap
with room for thinking. Preflight asks it for every model of every job (a setting the model does not take
is bad input, exit 2, before any call); the engine, the dry run and the budget build their requests from it.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from runner.calls import Request, Tool
from runner.errors import ConfigError
from runner.providers.capabilities import Capabilities, capabilities
from runner.settings import ModelSettings


@dataclass(frozen=True)
class Asking:
    temperature: float | None  # what is sent; None: the model takes none, nothing is sent
    # what results.csv records: the temperature the model answered at (the sent one, or the provider's default
    # when none is sent; None where that default is unknown)
    recorded_temperature: float | None
    reasoning: str | None  # model.reasoning, checked: sent as it is; None: the model's own default
    effort: str | None  # how hard the model thinks: the setting, or its default effort (None: unknown/none)
    max_tokens: int  # the output cap sent: the answer's max_tokens plus thinking_tokens
    thinking_tokens: int  # room for thinking added to the cap (0 for a model that does not think)
    capabilities: Capabilities
    note: str = ""  # what a row says about it ("temperature 0.7 not sent: ...")


def _values(efforts: tuple[str, ...]) -> str:
    return ", ".join(efforts) if efforts else "none: it takes no reasoning setting, leave model.reasoning=null"


@functools.cache
def asking(model: ModelSettings, temperature: float, max_tokens: int) -> Asking:
    """What a call to `model` sends at the run's `temperature` and `max_tokens`. Raises ConfigError when
    model.reasoning is a value the model does not take (naming those it takes)."""
    from runner.providers import provider_class

    cls = provider_class(model)
    caps = capabilities(model)
    if model.reasoning is not None and model.reasoning not in caps.efforts:
        what = "does not reason" if not caps.reasoning else "does not take it"
        raise ConfigError(f"model.reasoning={model.reasoning} (model {model.name}, {model.provider}/{model.id}) "
                          f"{what}; the values it takes: {_values(caps.efforts)}")
    effort = model.reasoning or caps.default_effort
    note = ""
    sent: float | None = temperature
    recorded: float | None = temperature
    if not cls.takes_temperature(model.id, caps, effort):
        sent, recorded = None, cls.default_temperature
        default = f", {recorded:g}" if recorded is not None else ""
        note = f"temperature {temperature:g} not sent: {model.id} takes only its default{default}"
    room = cls.thinking_room.get(effort, 0) if caps.reasoning and effort else 0
    cap = max_tokens + room
    if caps.output_limit:  # more than the model's limit is refused
        cap = min(cap, caps.output_limit)
    return Asking(temperature=sent, recorded_temperature=recorded, reasoning=model.reasoning, effort=effort,
                  max_tokens=cap, thinking_tokens=max(0, cap - max_tokens), capabilities=caps, note=note)


def request(ask: Asking, messages: list[dict], *, json_mode: bool = False, json_schema: dict | None = None,
            seed: int | None = None, on_text: Callable[[str], None] | None = None,
            tools: tuple[Tool, ...] = ()) -> Request:
    """One call's Request as `ask` decided it."""
    return Request(messages=messages, temperature=ask.temperature, max_tokens=ask.max_tokens, json_mode=json_mode,
                   reasoning=ask.reasoning, thinking_tokens=ask.thinking_tokens, json_schema=json_schema,
                   seed=seed, on_text=on_text, tools=tuple(tools))
