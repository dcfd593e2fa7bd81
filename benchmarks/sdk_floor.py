"""The bare SDK floor: the same calls through `openai.AsyncOpenAI` with nothing around them.

What a minimal hand-written script costs: one client, `--concurrency` calls in flight, the same
messages and streaming mode the runner uses, answers kept in memory. `benchmarks/run.py` times it
as a whole process, like the runner.

    python benchmarks/sdk_floor.py --base-url http://127.0.0.1:8000/v1 --calls 400 --concurrency 32
"""
from __future__ import annotations

import argparse
import asyncio
import time

import openai


def prepared_client(base_url: str) -> openai.AsyncOpenAI:
    """The client, with the resources the calls use imported (the SDK imports them at first use, about 0.3 s):
    before the clock starts, as the runner prepares its provider before its first call."""
    made = openai.AsyncOpenAI(api_key="test-key", base_url=base_url, max_retries=0)
    made.chat.completions  # noqa: B018
    return made


async def sweep(client: openai.AsyncOpenAI, calls: int, concurrency: int, stream: bool) -> list[str]:
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        messages = [{"role": "system", "content": "You are an assistant that is great at telling jokes"},
                    {"role": "user", "content": f"Tell a light-hearted joke for an audience of group {i}"}]
        async with limit:
            if not stream:
                completion = await client.chat.completions.create(
                    model="gpt-4.1-mini", messages=messages, temperature=0.7, max_completion_tokens=256)
                return completion.choices[0].message.content
            parts = []
            response = await client.chat.completions.create(
                model="gpt-4.1-mini", messages=messages, temperature=0.7, max_completion_tokens=256,
                stream=True, stream_options={"include_usage": True})
            async for chunk in response:
                parts.extend(c.delta.content or "" for c in chunk.choices)
            return "".join(parts)

    try:
        return await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-stream", dest="stream", action="store_false")
    args = parser.parse_args()
    ready = prepared_client(args.base_url)
    started, cpu = time.perf_counter(), time.process_time()
    answers = asyncio.run(sweep(ready, args.calls, args.concurrency, args.stream))
    print(f"sweep_s={time.perf_counter() - started:.3f} sweep_cpu_s={time.process_time() - cpu:.3f} "
          f"answers={sum(1 for a in answers if a)}")


if __name__ == "__main__":
    main()
