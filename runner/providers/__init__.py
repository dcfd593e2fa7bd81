"""Registry of providers: the `provider` key of a model config names one of these.

Entries are import paths, so a run imports only the SDKs it uses. A new provider is one module
and one line here.
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
}


def provider_for(model: ModelSettings):
    module_name, _, class_name = PROVIDERS[model.provider].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(model)
