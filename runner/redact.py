"""Keeps secrets out of every text the runner writes: records, logs, the crashed-job file, Hydra's files.

A server may echo a key in an error body, and a `base_url` may carry `user:password@`. Before any text
reaches disk or the terminal, `redact` replaces
- the values of the variables that hold keys: every variable whose name says so (`*_API_KEY`, `*_TOKEN`,
  `*_SECRET`, `*_PASSWORD`...), those a model names in `model.api_key_env`, and every value of `.env`;
- the password of a URL the runner calls, also as the Basic auth token an HTTP client makes of it;
- in any URL: `scheme://user:password@` becomes `scheme://user:***@`, and `?key=...` style parameters `***`.
Each secret is also matched in the forms a library's message or a server's body may quote it in: with
backslash escapes (Python's repr of text or bytes: a newline as `\\n`, a backslash doubled), JSON-escaped,
and URL-encoded. They are worked out once per set of secrets, not per text.
Values shorter than MIN_CHARS are left alone: they cannot be real keys, and replacing them would garble
ordinary text.
"""
from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

MARKER = "[redacted]"
URL_MARKER = "***"
MIN_CHARS = 6
SECRET_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
# the variables SDKs read their endpoint from (OPENAI_BASE_URL, OLLAMA_HOST...): no secrets, and in records on
# purpose (the base_url column); only a password in them is one
ENDPOINT_NAME = re.compile(r"_(BASE_URL|HOST)$")
# .env also holds settings that are no secrets
NOT_SECRET = {"RUNNER_CACHE_DIR", "TIKTOKEN_CACHE_DIR"}
# scheme://user:password@ (a password may hold '@': the authority ends at the last one before the path);
# Hydra writes overrides with ':' escaped (http\://user\:password@host), in logs and multirun.yaml
URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*\\?://[^\s/?#:@'\"<>\\]*\\?:)[^\s/?#'\"<>]*@")
URL_PARAMETER = re.compile(r"([?&](?:key|api[_-]?key|access[_-]?token|token|password|secret|sig|signature)=)"
                           r"[^&\s#'\"<>]+", re.IGNORECASE)

_watched_names: set[str] = set()
_watched_urls: set[str] = set()
_names: tuple[int, tuple[tuple[str, ...], tuple[str, ...]]] = (-1, ((), ()))


def watch_variable(name: str | None) -> None:
    """A variable that holds a key whatever its name (`model.api_key_env`): its value is redacted too."""
    if name:
        _watched_names.add(name)


def watch_url(url: str | None) -> None:
    """A URL the runner calls: its password (and the Basic auth token made of it) is redacted everywhere."""
    if url and "@" in url:
        _watched_urls.add(url)


@functools.lru_cache(maxsize=1)
def _dotenv() -> dict[str, str]:
    """The .env the runner loaded (the working folder's), read once."""
    path = Path.cwd() / ".env"
    if not path.is_file():
        return {}
    try:
        from dotenv import dotenv_values

        return {k: v for k, v in dotenv_values(path).items()
                if v and k not in NOT_SECRET and not ENDPOINT_NAME.search(k)}
    except Exception:  # noqa: BLE001 - an unreadable .env holds no key the runner could have loaded
        return {}


def _variables() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(variables holding secrets, variables holding endpoints that may carry a password), of those set;
    listed again only when variables are added or removed (a record or a log line reads a few values, not
    every variable, and a variable that is not set costs more to ask for than one that is)."""
    global _names
    size = len(os.environ) + len(_watched_names)
    if _names[0] != size:
        secret = {name for name in os.environ if SECRET_NAME.search(name) and name not in NOT_SECRET}
        secret |= {name for name in _watched_names if name in os.environ}
        urls = tuple(name for name in os.environ if ENDPOINT_NAME.search(name))
        _names = (size, (tuple(sorted(secret)), urls))
    return _names[1]


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if parts.password is None:
        return []
    user, password = unquote(parts.username or ""), unquote(parts.password)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [parts.password, password, token]


def secrets() -> tuple[str, ...]:
    """Every secret value this process holds, longest first (so a key inside another goes with it)."""
    global _names
    try:
        names, url_names = _variables()
        values = tuple(os.environ[name] for name in names)
        urls = tuple(os.environ[name] for name in url_names)
    except KeyError:  # one variable went and another came since they were listed
        _names = (-1, ((), ()))
        return secrets()
    return _secrets(values, urls + tuple(_watched_urls))


def escaped_forms(value: str) -> set[str]:
    """How a secret reads once something has quoted it, other than as itself: backslash escapes (Python's
    repr of text, and of bytes as httpx's "Illegal header value b'...'" shows a header), JSON, URL encoding
    (quote, quote_plus)."""
    forms = {
        value.encode("unicode_escape").decode("ascii"),
        repr(value)[1:-1],
        repr(value.encode("utf-8", "surrogatepass"))[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
    }
    forms.discard(value)
    return forms


@functools.lru_cache(maxsize=16)
def _secrets(values: tuple[str, ...], urls: tuple[str, ...]) -> tuple[str, ...]:
    found = {value for value in values if value}
    found.update(_dotenv().values())
    for url in (*urls, *found.copy()):  # a key variable may hold a URL with a password too
        if "@" in url and "://" in url:
            found.update(_url_secrets(url))
    found.update(form for value in found.copy() for form in escaped_forms(value))
    return tuple(sorted((v for v in found if len(v.strip()) >= MIN_CHARS), key=len, reverse=True))


def redact(text: str, known: tuple[str, ...] | None = None) -> str:
    """`text` with URL credentials and every secret value replaced by a marker."""
    if not text:
        return text
    if "://" in text:
        if "@" in text:
            text = URL_PASSWORD.sub(lambda m: m.group(1) + URL_MARKER + "@", text)
        if "=" in text:
            text = URL_PARAMETER.sub(lambda m: m.group(1) + URL_MARKER, text)
    for value in secrets() if known is None else known:
        if value in text:
            text = text.replace(value, MARKER)
    return text


def redact_value(value: Any, known: tuple[str, ...] | None = None) -> Any:
    """Strings inside lists and dicts redacted; the same object back when nothing had to change (records
    share their messages with the calls still running)."""
    known = secrets() if known is None else known
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, dict):
        changed = None
        for key, item in value.items():
            if isinstance(item, (str, dict, list, tuple)) and item:
                clean = redact_value(item, known)
                if clean is not item:
                    changed = changed or dict(value)
                    changed[key] = clean
        return value if changed is None else changed
    if isinstance(value, (list, tuple)):
        items = [redact_value(v, known) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
    return value


def redact_file(path: Path) -> None:
    """Rewrite a text file redacted, if it holds anything to redact (atomically: a reader never sees half)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    clean = redact(text)
    if clean == text:
        return
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(clean)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def protect_logging() -> None:
    """Redact every log record as it is made, whatever handler writes it.

    A record factory rather than a filter on handlers: Hydra replaces the handlers for every job of a
    sweep, and its launcher logs each job's overrides (a base_url with its password) in between.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: logging reports it itself
            return record
        known = secrets()
        clean = redact(message, known)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), known)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, known)
        return record

    factory.redacts = True
    logging.setLogRecordFactory(factory)
