"""A loopback OpenAI-compatible Chat Completions server that answers every call after a set latency.

Built on bare asyncio streams (HTTP/1.1, keep-alive, JSON and SSE with usage) so that at 32 calls in
flight it costs far less CPU than the clients it measures. It counts the calls it answered, so a
benchmark can check that a cached re-run sent none.

    python benchmarks/server.py --latency 0.2 --port 8000    # by hand; benchmarks/run.py starts its own
"""
from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time

ANSWER_WORDS = "Why did the model cross the road? To get to the other token.".split()


def _completion(body: dict, created: int, number: int) -> tuple[dict, dict]:
    prompt_tokens = sum(len(str(m.get("content", "")).split()) + 3 for m in body.get("messages", []))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(ANSWER_WORDS),
             "total_tokens": prompt_tokens + len(ANSWER_WORDS),
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    head = {"id": f"chatcmpl-bench{number}", "created": created, "model": str(body.get("model", "bench")),
            "system_fingerprint": "fp_bench"}
    return head, usage


def json_body(body: dict, number: int) -> bytes:
    head, usage = _completion(body, int(time.time()), number)
    message = {"role": "assistant", "content": " ".join(ANSWER_WORDS), "refusal": None, "annotations": []}
    return json.dumps({**head, "object": "chat.completion", "service_tier": "default",
                       "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                       "usage": usage}).encode()


def sse_events(body: dict, number: int) -> list[bytes]:
    head, usage = _completion(body, int(time.time()), number)
    head = {**head, "object": "chat.completion.chunk", "service_tier": "default"}

    def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if delta is not None else []
        return b"data: " + json.dumps({**head, "choices": choices, **extra}).encode() + b"\n\n"

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": word if i == 0 else " " + word}) for i, word in enumerate(ANSWER_WORDS)]
    events.append(chunk({}, "stop", **({"usage": None} if include_usage else {})))
    if include_usage:
        events.append(chunk(None, usage=usage))
    events.append(b"data: [DONE]\n\n")
    return events


class LatencyServer:
    """Serves /v1/chat/completions on 127.0.0.1, each answer after `latency_s`; counts the calls."""

    def __init__(self, latency_s: float, port: int = 0) -> None:
        self.latency_s = latency_s
        self.port = port
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.calls = self.max_in_flight = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    raw = await self._chunked(reader)
                else:
                    raw = await reader.readexactly(int(headers.get("content-length", 0)))
                keep_alive = headers.get("connection", "").lower() != "close"
                if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                    await self._complete(writer, json.loads(raw or b"{}"), keep_alive)
                else:
                    self._send(writer, 404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}',
                               keep_alive)
                await writer.drain()
                if not keep_alive:
                    return
        finally:
            writer.close()

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(data[:-2])

    async def _complete(self, writer: asyncio.StreamWriter, body: dict, keep_alive: bool) -> None:
        self.calls += 1
        number = self.calls
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency_s)
        finally:
            self.in_flight -= 1
        if not body.get("stream"):
            self._send(writer, 200, json_body(body, number), keep_alive)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                     + (b"" if keep_alive else b"Connection: close\r\n") + b"\r\n")
        for event in sse_events(body, number):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        writer.write(b"0\r\n\r\n")

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, payload: bytes, keep_alive: bool) -> None:
        reason = {200: "OK", 404: "Not Found"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(payload)}\r\n"
                     f"{'' if keep_alive else 'Connection: close' + chr(13) + chr(10)}\r\n"
                     .encode() + payload)

    async def serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> LatencyServer:
        """Serve from a background thread (the benchmark's own process only waits on its children)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="latency-server", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = LatencyServer(args.latency, args.port)

    async def forever() -> None:
        await server.serve()
        print(f"serving {server.base_url} (latency {args.latency:g} s); Ctrl-C stops", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
