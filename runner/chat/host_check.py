"""The chat's Host and Origin check (runner.local_web.refusal), as an ASGI middleware around Gradio's app.

Gradio itself refuses nothing: its CORS middleware only chooses which origins may read answers, and it
trusts a Host that is not localhost, so a page that rebinds its own DNS name to 127.0.0.1 could use every
route (the queue that calls the model included). This check runs before any of Gradio's routes, on plain
HTTP (pages, the API, the queue's server-sent events) and websockets alike; the allowed Host headers come
from the port the request arrived on, so they hold whichever port the server ended up with.
"""
from __future__ import annotations

from runner.local_web import allowed_hosts, refusal


class HostCheck:
    def __init__(self, app, listen_host: str) -> None:
        self.app = app
        self.listen_host = listen_host

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])  # lower-case names, as the ASGI spec gives them
        port = (scope.get("server") or (None, 0))[1]
        origin = headers.get(b"origin")
        refused = refusal(headers.get(b"host", b"").decode("latin-1"),
                          origin.decode("latin-1") if origin is not None else None,
                          allowed_hosts(self.listen_host, port))
        if refused is None:
            return await self.app(scope, receive, send)
        status, reason = refused
        if scope["type"] == "websocket":  # closed before the handshake: the server answers 403
            return await send({"type": "websocket.close", "code": 1008, "reason": reason})
        body = (reason + "\n").encode("utf-8")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode("ascii"))]})
        await send({"type": "http.response.body", "body": body})
