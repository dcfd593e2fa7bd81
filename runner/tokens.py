"""Token counts when a provider reports none: tiktoken for OpenAI model families, else an estimate.

`tokens_source` in the results says which one was used. The encoding for a model id comes from
tiktoken's own table (o200k_base for gpt-4o/4.1/5 and the o-series, cl100k_base for gpt-4 and 3.5).
tiktoken reads its BPE files from TIKTOKEN_CACHE_DIR or downloads them once, with no timeout of its
own: the load runs in a thread we stop waiting for after FETCH_TIMEOUT_S, so an offline machine or a
network that drops packets falls back to the course's rule of about four characters a token instead
of failing or hanging the run.
"""
from __future__ import annotations

import functools
import json
import logging
import threading

from runner.calls import Usage, text_of

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
# Chat framing that OpenAI's models add: a few tokens per message plus the reply's priming
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
# Reading a cached BPE file takes well under a second; only a download can take this long
FETCH_TIMEOUT_S = 30.0
# Used by dry runs to count messages for model families tiktoken has no encoding for
APPROXIMATE_ENCODING = "o200k_base"


def encoding_name(model_id: str) -> str | None:
    """tiktoken's encoding for an OpenAI model id ("openai/gpt-4o" works too), or None."""
    from tiktoken.model import encoding_name_for_model

    try:
        return encoding_name_for_model(model_id.rsplit("/", 1)[-1].lower())
    except KeyError:
        return None


def load_encoding(name: str, timeout_s: float = FETCH_TIMEOUT_S):
    """The tiktoken encoding, or None when its file is neither cached nor downloadable in time."""
    result: dict = {}

    def load() -> None:
        try:
            import tiktoken

            result["encoding"] = tiktoken.get_encoding(name)
        except Exception as exc:  # noqa: BLE001 - offline, blocked or corrupt: estimate instead
            result["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"

    # a daemon thread: if tiktoken's download hangs, the run goes on and exits without waiting for it
    thread = threading.Thread(target=load, name=f"tiktoken-{name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "encoding" in result:
        return result["encoding"]
    reason = result.get("error") or f"no answer within {timeout_s:g} s"
    log.warning("tiktoken encoding %s unavailable (%s): token counts will be estimates "
                "(set TIKTOKEN_CACHE_DIR to a folder holding its files to count offline)", name, reason)
    return None


@functools.cache
def _encoding(name: str):
    return load_encoding(name)


def estimate(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN)) if text else 0


def _encoder(model_id: str, approximate: bool):
    """The model's encoding, or None; `approximate` uses APPROXIMATE_ENCODING for other families."""
    name = encoding_name(model_id) or (APPROXIMATE_ENCODING if approximate else None)
    return _encoding(name) if name else None


def count_text(text: str, model_id: str, approximate: bool = False) -> tuple[int, str]:
    enc = _encoder(model_id, approximate)
    if enc is None:
        return estimate(text), "estimate"
    return len(enc.encode(text, disallowed_special=())), "tiktoken"


def count_messages(messages: list[dict], model_id: str, approximate: bool = False) -> tuple[int, str]:
    """Input tokens of a chat request: the messages' text plus OpenAI's per-message framing (images are not
    text: runner.calling.vision estimates them)."""
    enc = _encoder(model_id, approximate)
    if enc is None:
        return sum(estimate(_said(m)) for m in messages), "estimate"
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + len(enc.encode(_said(message), disallowed_special=()))
    return total, "tiktoken"


def _said(message: dict) -> str:
    """A message's text, and in a tool loop the calls it made (each name and its arguments): sent as input too."""
    text = text_of(message.get("content"))
    calls = message.get("tool_calls") or ()
    return " ".join([text, *(f"{c.get('name', '')} {json.dumps(c.get('arguments'), ensure_ascii=False)}"
                             for c in calls)]) if calls else text


def count_usage(messages: list[dict], text: str, model_id: str) -> Usage:
    """Usage for a call whose provider reported none."""
    input_tokens, source = count_messages(messages, model_id)
    output_tokens, _ = count_text(text, model_id)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=0, source=source)
