"""Every provider of the course in one sweep, each through its own SDK to its own loopback server."""
from __future__ import annotations

from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.gemini_server import gemini_server
from tests.fakes.ollama_server import ollama_server, words
from tests.fakes.openai_server import openai_server


def expected_usage(model: str, server) -> set[tuple[int, int]]:
    """(input, output) tokens as each server reported them, from the requests it received."""
    fake, usage = server.fake, set()
    for request in server.received:
        body = request.json
        if model == "gpt":
            u = fake.usage(body["messages"], fake.answer(body["messages"]))
            usage.add((u["prompt_tokens"], u["completion_tokens"]))
        elif model == "claude":
            u = fake.usage(body, fake.answer(body["messages"]))
            usage.add((u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"],
                       u["output_tokens"]))
        elif model == "gemini":  # thoughts (a thinking model's) are billed output beside the answer's tokens
            name = request.path.split("/models/", 1)[1].split(":", 1)[0]
            thoughts = fake.thinking(name, body.get("generationConfig", {}))[1]
            u = fake.usage(body, fake.answer(body["contents"]), thoughts=thoughts)
            usage.add((u["promptTokenCount"], u.get("candidatesTokenCount", 0) + u.get("thoughtsTokenCount", 0)))
        else:
            prompt = sum(words(m["content"]) for m in body["messages"]) + 3 * len(body["messages"])
            usage.add((prompt, words(fake.answer(body["messages"]))))
    return usage


def test_gpt_claude_gemini_and_llama_in_one_sweep(runner):
    # chunks 10 ms apart: the answer ends after its first text, and latency_s must say so
    with openai_server(chunk_delay_s=0.01) as gpt, anthropic_server(chunk_delay_s=0.01) as claude, \
            gemini_server(chunk_delay_s=0.01) as gemini, ollama_server(chunk_delay_s=0.01) as llama:
        run = runner("-m", "model=gpt,claude,gemini,llama", "task=tutor", "max_tokens=64", "temperature=0.5",
                     "cache=false",
                     env={"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key",
                          "ANTHROPIC_BASE_URL": claude.url, "ANTHROPIC_API_KEY": "test-key",
                          "GOOGLE_GEMINI_BASE_URL": gemini.url, "GEMINI_API_KEY": "test-key",
                          "OLLAMA_HOST": llama.url})
        servers = {"gpt": gpt, "claude": claude, "gemini": gemini, "llama": llama}
        endpoints = {"gpt": gpt.url + "/v1", "claude": claude.url, "gemini": gemini.url, "llama": llama.url}
        assert run.code == 0, run.stderr[-3000:]
        rows = run.rows()
        assert {r["model"] for r in rows} == set(servers)
        for model, server in servers.items():
            mine = [r for r in rows if r["model"] == model]
            assert mine and len(mine) == len(server.received)
            assert all(r["status"] == "ok" and r["tokens_source"] == "provider" for r in mine)
            assert all(0 < float(r["ttft_s"]) < float(r["latency_s"]) for r in mine)
            assert {r["base_url"] for r in mine} == {endpoints[model]}  # from the SDKs' variables, as the calls went
            assert {(int(r["input_tokens"]), int(r["output_tokens"])) for r in mine} == expected_usage(model, server)
            priced = [r for r in mine if r["cost_usd"] != ""]
            assert len(priced) == len(mine)  # llama on Ollama costs 0, the others at list price
