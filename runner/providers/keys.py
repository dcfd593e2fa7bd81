"""API keys: which variables a model's key is read from, and whether a key can be the one its API takes.

The facts are the providers' own (`key_env`, `key_prefix`, `key_owner` on each provider class); this module
reads them through the registry. A key's value never appears in a message, and every variable a key is
read from is redacted from whatever the runner writes.
"""
from __future__ import annotations

import os
import re

from runner.errors import ConfigError
from runner.providers import key_owners, key_variables_with
from runner.redact import watch_variable

# C0 controls (newline, tab, NUL...), DEL and C1 controls
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class MissingKey(Exception):
    """The provider's key is not set: the model's cells are skipped, nothing is sent."""


def key_owner(value: str) -> str | None:
    """Whose key this looks like, by its prefix (sk-ant-: anthropic, sk-: openai...); None when no provider's
    keys are shaped so (a proxy's, a test's)."""
    return next((owner for prefix, owner in key_owners() if value.startswith(prefix)), None)


def _a(word: str) -> str:
    return f"a{'n' if word[:1].lower() in 'aeiou' else ''} {word}"


def key_names(api_key_env: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """The variables to read a key from: `model.api_key_env` when set (and the variables that stand for it:
    the course's .env has GOOGLE_API_KEY where Google's docs now say GEMINI_API_KEY), else the provider's."""
    return key_variables_with(api_key_env) if api_key_env else default


def key_from_env(names: tuple[str, ...], owner: str | None = None) -> str:
    """The first of these environment variables that is set, checked the way the course checked keys.

    A missing key raises MissingKey (the model's cells are skipped). A key with spaces around it or a control
    character inside, or, when `owner` is given, one that cannot be that owner's (another provider's
    prefix) raises ConfigError before any call; the message names the variable, never the value.
    """
    for name in names:
        watch_variable(name)  # whatever its name, its value is now a secret the runner holds
    for name in names:
        value = os.environ.get(name)
        if not value:
            continue
        if value != value.strip():
            raise ConfigError(f"{name} has spaces, tabs or a newline around it: remove them in .env or the environment")
        if CONTROL.search(value):
            # an HTTP client refuses such a header, and its message quotes the key with the byte escaped
            # (`\n`), a form of it that is no longer the value itself
            raise ConfigError(f"{name} has a control character (a newline, tab, NUL or another invisible byte) "
                              f"inside it: a key is one line of visible characters; fix it in .env or the environment")
        looks_like = key_owner(value) if owner else None
        if looks_like and looks_like != owner:
            raise ConfigError(
                f"{name} holds what looks like {_a(looks_like)} key, not {_a(owner)} one: "
                f"check .env or the environment (a proxy's key is accepted when model.base_url points at the proxy)")
        return value
    # where the runner looked: the environment, and the .env that `python -m runner` loads from the folder it runs in
    raise MissingKey(f"{' or '.join(names)} is not set in the environment or in ./.env")
