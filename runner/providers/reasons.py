"""The one-line reason an error row gives, from whatever a server sent back.

Providers put the reason of an error in `error.message`; proxies and gateways put it in `detail`,
`message`, `error` or `title`; a misconfigured endpoint answers with a web page. Every reason is
redacted before it is shortened, so a cut never leaves part of a key behind.
"""
from __future__ import annotations

import html
import json
import re
from typing import Any

from runner.redact import redact


def redacted_line(text: str, limit: int) -> str:
    """Text as one line of at most `limit` characters; redacted first, so a cut never leaves part of a key."""
    text = " ".join(redact(str(text)).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def looks_like_html(text: str) -> bool:
    return bool(re.match(r"\s*(<!doctype|<html|<head|<body|<\?xml|<title|<h1|<center|<div|<p\b)", text, re.IGNORECASE))


def page_summary(text: str) -> str:
    """An HTML page in a few words: its title, else its text without tags."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    words = title.group(1) if title else re.sub(r"<[^>]+>", " ", re.sub(
        r"<(script|style)\b.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL))
    return redacted_line(html.unescape(words), 120)


def server_message(body: Any) -> str:
    """The server's own reason from an error body (JSON of any common shape, HTML or text), as one line.

    Providers' bodies put it in error.message; proxies and gateways in detail, message, error or title.
    """
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        if looks_like_html(text):
            return f"HTML page: {page_summary(text)}"
        if not text.startswith(("{", "[")):
            return redacted_line(text, 300)
        try:
            body = json.loads(text)
        except ValueError:
            return redacted_line(text, 300)
    if isinstance(body, list):
        return server_message(body[0]) if body else ""
    if not isinstance(body, dict):
        return redacted_line(str(body), 300)
    for key in ("error", "message", "detail", "error_description", "title", "msg", "errors"):
        value = body.get(key)
        if isinstance(value, dict) and (value.get("message") or value.get("msg")):
            return redacted_line(value.get("message") or value.get("msg"), 300)
        if isinstance(value, list) and value:  # FastAPI's detail, JSON:API's errors
            first = value[0]
            found = (first.get("msg") or first.get("message") or first.get("detail")) if isinstance(first, dict) \
                else first
            if found:
                return redacted_line(found, 300)
        if isinstance(value, str) and value:
            return redacted_line(value, 300)
    return redacted_line(json.dumps(body, ensure_ascii=False), 300)


def what_came(text: str | None) -> str | None:
    """What a body that should have been the provider's JSON was instead ("HTML (its title)", "text (...)"),
    or None when it looks like JSON, perhaps cut short."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped.startswith(("{", "[", "data:")):
        return None
    if looks_like_html(stripped):
        return f"HTML ({page_summary(stripped)})"
    return f"text ({redacted_line(stripped, 80)})" if stripped else "an empty body"
