"""Registry of providers: the `provider` key of a model config names one of these.

Entries are import paths, so a run imports only the SDKs it uses. A new provider is one module
and one line here. An entry "provider/sdk" is another SDK for the same provider, chosen with
`model.sdk` (gemini through google-generativeai: `model.sdk=generativeai`).
"""
from __future__ import annotations

import importlib

from runner.settings import ModelSettings

PROVIDERS: dict[str, str] = {
    "local": "runner.providers.local:LocalProvider",
    "openai": "runner.providers.openai:OpenAIProvider",
    "openai_compatible": "runner.providers.openai:OpenAICompatibleProvider",
    "anthropic": "runner.providers.anthropic:AnthropicProvider",
    "ollama": "runner.providers.ollama:OllamaProvider",
    "gemini": "runner.providers.gemini:GeminiProvider",
    "gemini/generativeai": "runner.providers.gemini_generativeai:GenerativeAIProvider",
}


def registry_key(provider: str, sdk: str | None) -> str:
    return f"{provider}/{sdk}" if sdk else provider


def provider_for(model: ModelSettings):
    module_name, _, class_name = PROVIDERS[registry_key(model.provider, model.sdk)].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(model)
