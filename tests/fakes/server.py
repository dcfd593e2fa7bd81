"""A small HTTP server on 127.0.0.1 for tests: routes, a log of what it received, injected faults.

Provider fakes build on it and speak their provider's wire format strictly: a request the real API
would reject gets the real API's error, so the project's unpatched code is tested against the format,
not against our own assumptions.
"""
from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    at: float = 0.0  # time.monotonic() when it arrived: what a test of waiting (Retry-After) measures

    @property
    def json(self):
        return json.loads(self.body or b"null")


@dataclass
class Faults:
    """Faults to inject, each with a probability per request (decided by a seeded generator)."""

    rate_limit: float = 0.0  # 429 with Retry-After
    server_error: float = 0.0  # 500
    hang: float = 0.0  # never answer (until the client gives up)
    garbage: float = 0.0  # 200 with a truncated/invalid body
    retry_after_s: float = 0.05
    hang_s: float = 30.0
    seed: int = 7
    _random: random.Random = field(default=None, repr=False)

    def pick(self) -> str | None:
        if self._random is None:
            self._random = random.Random(self.seed)
        roll = self._random.random()
        for name in ("rate_limit", "server_error", "hang", "garbage"):
            roll -= getattr(self, name)
            if roll < 0:
                return name
        return None


class Reply:
    """What a route returns: a status, headers, and a body (bytes) or chunks (an iterator of bytes)."""

    def __init__(self, status: int = 200, body: bytes | str | dict | list | None = None,
                 headers: dict | None = None, chunks=None, chunk_delay_s: float = 0.0):
        self.status = status
        self.headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            self.headers.setdefault("Content-Type", "application/json")
        self.body = body.encode() if isinstance(body, str) else body
        self.chunks = chunks
        self.chunk_delay_s = chunk_delay_s


Route = Callable[[Received], Reply]


class FakeServer:
    """Serves `routes` ({(method, path-prefix): handler}) on 127.0.0.1 at a free port, in a thread."""

    def __init__(self, routes: dict[tuple[str, str], Route], faults: Faults | None = None,
                 latency_s: float = 0.0) -> None:
        self.routes = routes
        self.faults = faults or Faults()
        self.latency_s = latency_s
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.fault_log: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it was answering at once
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def handle(self):
                try:
                    super().handle()
                except (ConnectionResetError, BrokenPipeError):
                    pass  # a client that stopped reading early (a size cap, a timeout) hung up: not a test failure

            def _handle(self):
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer()
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                   time.monotonic())
                with server.lock:
                    server.received.append(request)
                    fault = server.faults.pick()
                    if fault:
                        server.fault_log.append(fault)
                if server.latency_s:
                    time.sleep(server.latency_s)
                if fault == "rate_limit":
                    return self._send(Reply(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error",
                                                            "code": "rate_limit_exceeded"}},
                                            headers={"Retry-After": str(server.faults.retry_after_s)}))
                if fault == "server_error":
                    error = {"message": "The server had an error", "type": "server_error"}
                    return self._send(Reply(500, {"error": error}))
                if fault == "hang":
                    time.sleep(server.faults.hang_s)
                    return
                route = server.route(self.command, self.path)
                if route is None:
                    return self._send(Reply(404, {"error": {"message": f"no route {self.command} {self.path}"}}))
                reply = route(request)
                if fault == "garbage":
                    reply = Reply(200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess',
                                  headers={"Content-Type": "application/json"})
                self._send(reply)

            def _send(self, reply: Reply):
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    if reply.chunks is not None:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for chunk in reply.chunks:
                            if reply.chunk_delay_s:
                                time.sleep(reply.chunk_delay_s)
                            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                            self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        body = reply.body or b""
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # shutdown() waits for the serving loop to look up: every half second by default, a pause at the end of
        # every test that starts a fake
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def route(self, method: str, path: str) -> Route | None:
        bare = path.split("?", 1)[0]
        for (m, prefix), handler in self.routes.items():
            if m == method and (bare == prefix or bare.startswith(prefix.rstrip("*")) and prefix.endswith("*")):
                return handler
        return None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def requests_to(self, prefix: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.split("?", 1)[0].startswith(prefix)]

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
