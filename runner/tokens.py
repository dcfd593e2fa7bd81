"""Token counts when a provider reports none: tiktoken for OpenAI model families, else an estimate.

`tokens_source` in the results says which one was used. tiktoken loads its BPE files from
TIKTOKEN_CACHE_DIR (or downloads them); without them and without network, counting falls back to the
course's rule of about four characters a token instead of failing.
"""
from __future__ import annotations

import functools
import logging
import re

from runner.providers.base import Usage

log = logging.getLogger(__name__)

# (pattern on the model id, encoding); first match wins
ENCODINGS = (
    (re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-4o|gpt-oss)"), "o200k_base"),
    (re.compile(r"^(gpt-4|gpt-3\.5|text-embedding-3|text-embedding-ada)"), "cl100k_base"),
)
CHARS_PER_TOKEN = 4
# Chat framing that OpenAI's models add: a few tokens per message plus the reply's priming
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


def encoding_name(model_id: str) -> str | None:
    name = model_id.rsplit("/", 1)[-1].lower()
    return next((enc for pattern, enc in ENCODINGS if pattern.match(name)), None)


@functools.lru_cache(maxsize=None)
def _encoding(name: str):
    try:
        import tiktoken

        return tiktoken.get_encoding(name)
    except Exception as exc:  # noqa: BLE001 - offline, or files missing: estimate instead
        log.warning("tiktoken encoding %s unavailable (%s): token counts will be estimates",
                    name, type(exc).__name__)
        return None


def estimate(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN)) if text else 0


def count_text(text: str, model_id: str) -> tuple[int, str]:
    name = encoding_name(model_id)
    enc = _encoding(name) if name else None
    if enc is None:
        return estimate(text), "estimate"
    return len(enc.encode(text, disallowed_special=())), "tiktoken"


def count_messages(messages: list[dict], model_id: str) -> tuple[int, str]:
    name = encoding_name(model_id)
    enc = _encoding(name) if name else None
    if enc is None:
        return sum(estimate(m.get("content") or "") for m in messages), "estimate"
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + len(enc.encode(message.get("content") or "", disallowed_special=()))
    return total, "tiktoken"


def count_usage(messages: list[dict], text: str, model_id: str) -> Usage:
    """Usage for a call whose provider reported none."""
    input_tokens, source = count_messages(messages, model_id)
    output_tokens, _ = count_text(text, model_id)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=0, source=source)
