"""Registry of providers: the `provider` key of a model config names one of these.

A provider is one module whose class declares its own facts (the variables its key is read from, the
shape of its keys, its own API's host, its price provider, whether it is free, the variable its SDK reads
its endpoint from, its SDK's loggers), one line here, and one YAML file in conf/model/. Entries are
import paths, so a run imports only the provider modules it uses, and each imports its SDK only at its
first call. An entry "provider/sdk" is another SDK for the same provider, chosen with `model.sdk`
(gemini through google-generativeai: `model.sdk=generativeai`).
"""
from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.settings import ModelSettings

if TYPE_CHECKING:
    from runner.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "local": "runner.providers.local:LocalProvider",
    "openai": "runner.providers.openai:OpenAIProvider",
    "openai_compatible": "runner.providers.openai:OpenAICompatibleProvider",
    "anthropic": "runner.providers.anthropic:AnthropicProvider",
    "ollama": "runner.providers.ollama:OllamaProvider",
    "gemini": "runner.providers.gemini:GeminiProvider",
    "gemini/generativeai": "runner.providers.gemini_generativeai:GenerativeAIProvider",
    "mistral": "runner.providers.mistral:MistralProvider",
}


def registry_key(provider: str, sdk: str | None) -> str:
    return f"{provider}/{sdk}" if sdk else provider


@functools.cache
def _load(entry: str) -> type[Provider]:
    module_name, _, class_name = entry.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def provider_class(model: ModelSettings) -> type[Provider]:
    """The class for a model's `provider` (and `sdk`), or a ConfigError naming the known ones."""
    entry = PROVIDERS.get(registry_key(model.provider, model.sdk))  # per call (costs): the lookup comes first
    if entry is not None and "/" not in model.provider:
        return _load(entry)
    names = sorted(key for key in PROVIDERS if "/" not in key)
    if model.provider not in names:
        raise ConfigError(f"model.provider={model.provider!r} is not a known provider (known: {', '.join(names)})")
    sdks = [key.partition("/")[2] for key in PROVIDERS if key.startswith(model.provider + "/")]
    raise ConfigError(f"model.sdk={model.sdk!r} is not known for provider {model.provider} "
                      f"(known: {', '.join(sdks) or 'none, leave model.sdk unset'})")


def provider_for(model: ModelSettings) -> Provider:
    return provider_class(model)(model)


def provider_classes() -> list[type[Provider]]:
    """Every registered provider's class (importing their modules, not their SDKs)."""
    return [_load(entry) for entry in PROVIDERS.values()]


def key_owners() -> list[tuple[str, str]]:
    """(key prefix, whose keys start so), longest prefix first: what a key's shape tells."""
    owners = {cls.key_prefix: cls.key_owner for cls in provider_classes() if cls.key_prefix and cls.key_owner}
    return sorted(owners.items(), key=lambda pair: -len(pair[0]))


def priced_as(price_provider: str | None) -> type[Provider] | None:
    """The provider whose own API is priced under this genai-prices provider id (an endpoint that is
    priced as google is Google's, and takes Google's keys)."""
    return next((cls for cls in provider_classes() if price_provider and cls.price_provider == price_provider
                 and cls.key_owner), None)


def key_variables_with(name: str) -> tuple[str, ...]:
    """A provider's key variables stand for each other (GEMINI_API_KEY and GOOGLE_API_KEY): `name` first,
    then the others of the provider that reads it; just `name` when no provider does."""
    for cls in provider_classes():
        if name in cls.key_env:
            return (name, *(other for other in cls.key_env if other != name))
    return (name,)
