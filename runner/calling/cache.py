"""The response cache: answers already paid for are reused instead of asked for again.

One SQLite file (`responses.sqlite`) in the user's cache folder (platformdirs), or in `cache_dir`. The
processes of a parallel launcher share it safely (WAL journal, busy timeout, one commit per answer).
An answer is keyed by everything that decides it or what is measured of it (its tokens' source, latency,
time to first token): provider, model id, endpoint (base URL, or the SDK's environment variable when none
is set), the GGUF path of a local model, the full messages (an image by its media type and sha256, never its
bytes), the temperature sent (none for a model that takes none: a temperature sweep over it shares one
answer), the output cap sent, JSON mode, the reasoning setting, a JSON Schema and the tools offered when
there are any, the repeat index (repeats exist to sample anew, so each has its own entry), a fixed `seed`,
and the model settings in `SETTINGS_IN_KEY`: the SDK (`model.sdk`), streaming (`model.stream`), the batch
API (`model.batch`), the local model's context and weight repacking (`model.n_ctx`, `model.repack`). What is
absent or at its default is left out of the key, so answers cached before it entered the key are still
found. Settings that only steer how calls run (concurrency, rpm, tpm, timeout_s, max_attempts) or how they
are priced (price, price_provider) and the key's variable (api_key_env) are not in it. The messages are the
whole conversation, earlier tool calls and their results included, so each turn of a tool loop has its own
entry and a re-run pays for none it has. The thinking's text and token count, the tool calls and what the
provider needs sent back (Response.replay) are kept with the answer.
Only successful answers are stored, under a hash of the key: neither prompts nor keys are kept in it
(an answer that quotes a key is stored redacted, as every file the runner writes).
Database work runs in one thread of its own, so a busy database never stalls the event loop.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
from pathlib import Path

from runner.calling.sqlite_file import BUSY_TIMEOUT_MS, SqliteFile, try_a_write
from runner.calls import Request, Response, Usage, keyed
from runner.errors import ConfigError
from runner.redact import redact
from runner.settings import ModelSettings

FILE_NAME = "responses.sqlite"
SHARED_FILE = "answers.sqlite"  # a run's own answers to calls sent no temperature, at its root (cache off)
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cached_tokens INTEGER,
    tokens_source TEXT,
    latency_s REAL,
    ttft_s REAL,
    stored_at REAL NOT NULL,
    reasoning_tokens INTEGER,
    reasoning TEXT,
    tool_calls TEXT,
    replay TEXT
)
"""
# columns added since the first version, added to an older file as it is opened
ADDED_COLUMNS = {"reasoning_tokens": "INTEGER", "reasoning": "TEXT", "tool_calls": "TEXT", "replay": "TEXT"}


def cache_folder(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("runner"))


# model settings that change the answer or what is measured of it: another SDK's path, a streamed call's
# time to first token and token counts, a batch's turnaround for latency, the local model's kernels
SETTINGS_IN_KEY = ("sdk", "stream", "batch", "n_ctx", "repack")
DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelSettings)}


def cache_key(model: ModelSettings, endpoint: str, request: Request, repeat: int, seed: int | None = None) -> str:
    """The key of one call's answer; `endpoint` is where the call goes (Provider.endpoint()); `seed` the run's
    fixed seed (`seed=N`), or None when every call gets a fresh one: then it decides nothing worth keying."""
    identity = {
        "provider": model.provider, "model_id": model.id, "endpoint": endpoint, "path": model.path,
        "messages": keyed(request.messages), "temperature": request.temperature, "max_tokens": request.max_tokens,
        "json_mode": request.json_mode, "repeat": repeat,
    }
    if seed is not None:  # only then: keys of runs without a seed stay as they were
        identity["seed"] = seed
    if request.reasoning is not None:
        identity["reasoning"] = request.reasoning
    if request.json_schema is not None:
        identity["json_schema"] = request.json_schema
    if request.tools:  # the functions offered decide the answer as much as the messages do
        identity["tools"] = [tool.wire() for tool in request.tools]
    identity.update((name, getattr(model, name)) for name in SETTINGS_IN_KEY
                    if getattr(model, name) != DEFAULTS[name])
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    def __init__(self, folder: Path, name: str = FILE_NAME) -> None:
        self.file = SqliteFile(Path(folder) / name, _setup, "response-cache")

    @property
    def path(self) -> Path:
        return self.file.path

    @staticmethod
    def _get(db, key: str) -> Response | None:
        row = db.execute(
            "SELECT text, finish_reason, input_tokens, output_tokens, cached_tokens, tokens_source, latency_s, "
            "ttft_s, reasoning_tokens, reasoning, tool_calls, replay FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        text, finish_reason, input_tokens, output_tokens, cached_tokens, source, latency_s, ttft_s, thought, \
            reasoning, calls, replay = row
        usage = Usage(input_tokens, output_tokens, cached_tokens, source or "provider", reasoning_tokens=thought)
        return Response(text=text, finish_reason=finish_reason, latency_s=latency_s, ttft_s=ttft_s, usage=usage,
                        reasoning=reasoning or "", tool_calls=json.loads(calls) if calls else [],
                        replay=json.loads(replay) if replay else None)

    @staticmethod
    def _put(db, key: str, model_id: str, response: Response) -> None:
        usage = response.usage
        db.execute(
            "INSERT OR REPLACE INTO responses (key, model_id, text, finish_reason, input_tokens, output_tokens, "
            "cached_tokens, tokens_source, latency_s, ttft_s, stored_at, reasoning_tokens, reasoning, tool_calls, "
            "replay) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, model_id, redact(response.text), response.finish_reason, usage.input_tokens, usage.output_tokens,
             usage.cached_tokens, usage.source, response.latency_s, response.ttft_s, time.time(),
             usage.reasoning_tokens, redact(response.reasoning),
             redact(json.dumps(response.tool_calls, ensure_ascii=False)) if response.tool_calls else None,
             redact(json.dumps(response.replay, ensure_ascii=False)) if response.replay is not None else None))

    async def get(self, key: str) -> Response | None:
        return await self.file.run(self._get, key)

    async def put(self, key: str, model_id: str, response: Response) -> None:
        await self.file.run(self._put, key, model_id, response)

    def close(self) -> None:
        self.file.close()


def _setup(db) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # survives a killed process; an OS crash may lose the last answers
    db.execute(SCHEMA)
    have = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
    for column, kind in ADDED_COLUMNS.items():
        if column not in have:  # a cache file an older version wrote: its answers stay usable
            db.execute(f"ALTER TABLE responses ADD COLUMN {column} {kind}")


def check_cache_file(folder: Path) -> None:
    """Before the first call: open the cache as a run will and make one write that is rolled back, so a file
    that is not a database, or one that cannot be written, is named here instead of failing every call."""
    path = Path(folder) / FILE_NAME
    fix = "delete it, or set cache_dir=DIR for another folder, or cache=false"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            _setup(db)
            try_a_write(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"the response cache {path} cannot be used ({exc}): {fix}") from None
    except OSError as exc:
        reason = "a file, not a folder" if _is_file(path.parent) else exc.strerror or exc
        raise ConfigError(f"the response cache folder {path.parent} cannot be used ({reason}): "
                          f"set cache_dir=DIR for another folder, or cache=false") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name the file system refuses (too long) is no file either, and must not crash the check
        return False
