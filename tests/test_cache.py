"""The response cache in process: an answer comes back as it was stored, under a key that changes with
everything that decides the answer, and a cache file that cannot be used is named before any call."""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sys

import pytest

from runner.calling.cache import FILE_NAME, ResponseCache, cache_key, check_cache_file
from runner.calls import Request, Response, Usage
from runner.errors import ConfigError
from runner.settings import ModelSettings

MODEL = ModelSettings(name="m", provider="openai", id="gpt-4o-mini", path=None)
REQUEST = Request([{"role": "user", "content": "hi"}], 0.7, 64)
ENDPOINT = "http://127.0.0.1:9/v1"


def roundtrip(tmp_path, response: Response, key: str = "k") -> Response | None:
    async def scenario():
        cache = ResponseCache(tmp_path)
        try:
            assert await cache.get(key) is None
            await cache.put(key, MODEL.id, response)
            return await cache.get(key)
        finally:
            cache.close()

    return asyncio.run(scenario())


def test_an_answer_comes_back_with_its_counts_their_source_and_its_timing(tmp_path):
    stored = Response(text="Bonjour", usage=Usage(11, 5, 3, "tiktoken"), finish_reason="length",
                      latency_s=1.25, ttft_s=0.5)
    back = roundtrip(tmp_path, stored)
    assert back == stored
    assert (tmp_path / FILE_NAME).is_file()


def test_an_answer_that_quotes_a_key_is_stored_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cache-test-secret-123")
    back = roundtrip(tmp_path, Response(text="the key is sk-cache-test-secret-123", usage=Usage(1, 1)))
    assert "sk-cache-test-secret-123" not in back.text
    assert b"sk-cache-test-secret-123" not in (tmp_path / FILE_NAME).read_bytes()


@pytest.mark.parametrize("changed", [
    {"model": dataclasses.replace(MODEL, provider="anthropic")},
    {"model": dataclasses.replace(MODEL, id="gpt-4o")},
    {"model": dataclasses.replace(MODEL, path="/models/a.gguf")},
    {"endpoint": "http://127.0.0.1:10/v1"},
    {"request": dataclasses.replace(REQUEST, messages=[{"role": "user", "content": "hi!"}])},
    {"request": dataclasses.replace(REQUEST, temperature=0.0)},
    {"request": dataclasses.replace(REQUEST, max_tokens=65)},
    {"request": dataclasses.replace(REQUEST, json_mode=True)},
    {"repeat": 1},
    {"seed": 42},  # a run's fixed seed; without one (None) the key is as before seeds existed
], ids=lambda c: next(iter(c)) + ":" + str(next(iter(c.values())))[:24])
def test_the_key_changes_with_everything_that_decides_the_answer(changed):
    same = {"model": MODEL, "endpoint": ENDPOINT, "request": REQUEST, "repeat": 0}
    base = cache_key(**same)
    assert cache_key(**same) == base
    assert cache_key(**{**same, **changed}) != base


@pytest.mark.parametrize(("provider", "setting"), [
    ("openai", {"stream": False}),  # no time to first token, and token counts the server may not send
    ("gemini", {"sdk": "generativeai"}),  # another SDK's path to the same model
    ("openai", {"batch": True}),  # latency is the batch's turnaround
    ("local", {"n_ctx": 4096}),
    ("local", {"repack": True}),  # llama.cpp's other kernels
], ids=lambda value: str(value))
def test_the_key_changes_with_each_setting_that_changes_what_is_measured(provider, setting):
    model = dataclasses.replace(MODEL, provider=provider)
    assert cache_key(dataclasses.replace(model, **setting), ENDPOINT, REQUEST, 0) != \
        cache_key(model, ENDPOINT, REQUEST, 0)


@pytest.mark.parametrize("steering", [{"concurrency": 1}, {"timeout_s": 5.0}, {"max_attempts": 1}, {"rpm": 10},
                                      {"tpm": 1000}, {"api_key_env": "MY_KEY"}, {"temperature_max": 1.0}])
def test_settings_that_only_steer_how_calls_run_leave_the_key_alone(steering):
    assert cache_key(dataclasses.replace(MODEL, **steering), ENDPOINT, REQUEST, 0) == \
        cache_key(MODEL, ENDPOINT, REQUEST, 0)


def test_a_cache_file_that_is_no_database_is_named_before_any_call(tmp_path):
    (tmp_path / FILE_NAME).write_text("not a database " * 100)
    with pytest.raises(ConfigError, match=r"response cache .*responses\.sqlite cannot be used.*cache=false"):
        check_cache_file(tmp_path)


def test_a_cache_folder_that_is_a_file_is_named_before_any_call(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(ConfigError, match=r"folder .*taken cannot be used \(a file, not a folder\)"):
        check_cache_file(tmp_path / "taken")


def test_a_usable_cache_folder_is_created_with_its_parents_and_passes(tmp_path):
    check_cache_file(tmp_path / "new" / "cache")
    assert (tmp_path / "new" / "cache" / FILE_NAME).is_file()


def test_the_key_is_stable_across_versions_so_earlier_answers_are_still_found():
    """A key that changes form makes every user's cache miss once: its form is pinned here."""
    request = Request([{"role": "user", "content": "café"}], 0.7, 64)
    identity = {"provider": "openai", "model_id": "gpt-4o-mini", "endpoint": ENDPOINT, "path": None,
                "messages": request.messages, "temperature": 0.7, "max_tokens": 64, "json_mode": False, "repeat": 0}
    expected = hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert cache_key(MODEL, ENDPOINT, request, 0) == expected
    assert expected == "ad34e37d2a14b46de36d425b03824e8e31ea0cb0efab2e300db4fd9d3a407c85"


@pytest.mark.skipif(sys.platform == "win32", reason="Windows names a long path's error differently")
def test_a_cache_folder_that_cannot_be_made_says_why_in_words(tmp_path):
    folder = tmp_path / ("x" * 300)  # longer than any file system takes for one name
    with pytest.raises(ConfigError) as caught:
        check_cache_file(folder)
    assert str(caught.value) == (f"the response cache folder {folder} cannot be used (File name too long): "
                                 "set cache_dir=DIR for another folder, or cache=false")
