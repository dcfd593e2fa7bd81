"""A streamed answer reaches a listener piece by piece (what runner.chat shows as it comes), for every
provider: each through its own SDK to its own loopback server, and the embedded model for real."""
from __future__ import annotations

import asyncio

import pytest

from runner.providers import provider_for
from runner.providers.base import Request
from runner.settings import model_settings
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.ollama_server import ollama_server
from tests.fakes.openai_server import openai_server

SERVERS = {
    "openai": (openai_server, "OPENAI_API_KEY", "/v1", "gpt-4.1-mini"),
    "anthropic": (anthropic_server, "ANTHROPIC_API_KEY", "", "claude-haiku-4-5"),
    "gemini": (gemini_server, "GEMINI_API_KEY", "", "gemini-2.5-flash-lite"),
    "ollama": (ollama_server, None, "", "llama3.2"),
}
ASK = [{"role": "system", "content": "Be brief."},
       {"role": "user", "content": "Name five colours of the rainbow, one after the other, please"}]


def streamed(provider, max_tokens: int = 64) -> tuple[list[str], object]:
    pieces: list[str] = []

    async def call():
        try:
            return await provider.generate(Request(ASK, 0.0, max_tokens, on_text=pieces.append))
        finally:
            await provider.aclose()

    return pieces, asyncio.run(call())


@pytest.mark.parametrize("provider", sorted(SERVERS))
def test_each_piece_of_a_streamed_answer_reaches_the_listener_in_order(provider, monkeypatch):
    make_server, key, path, model_id = SERVERS[provider]
    with make_server() as server:
        if key:
            monkeypatch.setenv(key, "test-key")
        settings = model_settings({"provider": provider, "id": model_id, "base_url": server.url + path,
                                   "max_attempts": 1}, provider)
        pieces, response = streamed(provider_for(settings))
    assert response.ok, response.error
    assert len(pieces) > 1, pieces  # pieces as they came, not the whole answer at the end
    assert "".join(pieces) == response.text


def test_the_embedded_model_streams_its_pieces_too():
    settings = model_settings({"provider": "local", "id": "SmolLM2-135M-Instruct", "n_ctx": 512}, "local")
    pieces, response = streamed(provider_for(settings), max_tokens=12)
    assert response.ok, response.error
    assert len(pieces) > 1 and "".join(pieces) == response.text
