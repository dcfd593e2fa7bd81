"""Which server a model's calls go to: `model.base_url`, else the SDK's own environment variable, else the
provider's default. One answer for the cache key, the `base_url` column and the key-shape check.
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit

from runner.settings import ModelSettings

# where each SDK reads its endpoint when model.base_url is not set (see the contract)
ENDPOINT_ENV = {"openai": "OPENAI_BASE_URL", "openai_compatible": "OPENAI_BASE_URL",
                "anthropic": "ANTHROPIC_BASE_URL", "gemini": "GOOGLE_GEMINI_BASE_URL", "ollama": "OLLAMA_HOST"}
# the providers' own API hosts: only there can a key's shape tell whose key it must be
OWN_HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com",
             "gemini": "generativelanguage.googleapis.com"}


def endpoint(model: ModelSettings) -> str:
    """The endpoint the SDK will call; "" when it is the SDK's default (the provider's own API)."""
    if model.base_url:
        return model.base_url.rstrip("/")
    env = ENDPOINT_ENV.get(model.provider)
    return (os.environ.get(env) or "").rstrip("/") if env else ""


def is_own_endpoint(model: ModelSettings, owner: str | None) -> bool:
    """Whether calls go to `owner`'s own API (not a proxy, a gateway or a local server)."""
    url = endpoint(model)
    if not url:
        return True
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return owner is not None and host == OWN_HOSTS.get(owner)
