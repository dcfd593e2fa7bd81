"""A strict fake of Anthropic's Message Batches API on 127.0.0.1, on top of the Messages fake.

`POST /v1/messages/batches` checks every request the way the real API does (custom_id 1-64 characters of
letters, digits, `_` and `-`, unique; params a valid Messages request by the Messages fake's own checks, not
streamed); `GET /v1/messages/batches/{id}` moves the batch from in_progress to ended after `polls` polls;
its `results_url` serves JSONL (`succeeded`, `errored`, `expired`) once it has ended. Options: per-request
errors (`fail`), expiry (`expire`: the first N batches end with `expire_keep` requests answered, the rest
`expired`), and `hold` (batches stay in progress). Every request is in the server's log.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from tests.fakes.anthropic_server import AnthropicFake, _error, _invalid
from tests.fakes.server import FakeServer, Faults, Received, Reply

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z")


class AnthropicBatches:
    def __init__(self, messages: AnthropicFake, polls: int = 2, fail: Callable[[dict], str | None] | None = None,
                 expire: int = 0, expire_keep: int = 0):
        self.messages = messages
        self.polls = polls
        self.fail = fail or (lambda params: None)
        self.expire = expire
        self.expire_keep = expire_keep
        self.hold = threading.Event()
        self.batches: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.url = ""  # the server's, for results_url

    def _headers_problem(self, request: Received) -> Reply | None:
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if given != self.messages.key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _invalid("anthropic-version: header is required")
        return None

    def create(self, request: Received) -> Reply:
        problem = self._headers_problem(request)
        if problem:
            return problem
        try:
            body = request.json
        except json.JSONDecodeError:
            return _invalid("There was an error parsing the body of your request")
        if set(body) != {"requests"} or not isinstance(body["requests"], list) or not body["requests"]:
            return _invalid("requests: Field required (a non-empty list, and nothing else)")
        seen = set()
        for i, entry in enumerate(body["requests"]):
            if set(entry) != {"custom_id", "params"}:
                return _invalid(f"requests.{i}: Extra inputs are not permitted (custom_id and params only)")
            if not isinstance(entry["custom_id"], str) or not CUSTOM_ID.match(entry["custom_id"]):
                return _invalid(f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            if entry["custom_id"] in seen:
                return _invalid(f"requests.{i}.custom_id: duplicate custom_id {entry['custom_id']}")
            seen.add(entry["custom_id"])
            if entry["params"].get("stream"):
                return _invalid(f"requests.{i}.params.stream: streaming is not supported in batches")
            check = self.messages.validate(Received("POST", "/v1/messages", request.headers,
                                                    json.dumps(entry["params"]).encode()))
            if check is not None:
                message = json.loads(check.body)["error"]["message"]
                return _invalid(f"requests.{i}.params.{message}")
        with self.lock:
            ident = f"msgbatch_{len(self.batches) + 1:04d}"
            expires = self.expire > 0
            self.expire -= expires
            self.batches[ident] = {"id": ident, "requests": body["requests"], "created_at": time.time(),
                                   "ended_at": None, "polls": 0, "expires": expires, "results": None}
            return Reply(200, self._public(self.batches[ident]))

    def _public(self, batch: dict) -> dict:
        ended = batch["results"] is not None
        counts = {"processing": 0 if ended else len(batch["requests"]), "succeeded": 0, "errored": 0,
                  "canceled": 0, "expired": 0}
        for result in batch["results"] or ():
            counts[result["result"]["type"]] += 1
        return {"id": batch["id"], "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": counts, "ended_at": _iso(batch["ended_at"]), "created_at": _iso(batch["created_at"]),
                "expires_at": _iso(batch["created_at"] + timedelta(hours=24).total_seconds()),
                "archived_at": None, "cancel_initiated_at": None,
                "results_url": f"{self.url}/v1/messages/batches/{batch['id']}/results" if ended else None}

    def get(self, request: Received) -> Reply:
        problem = self._headers_problem(request)
        if problem:
            return problem
        parts = request.path.split("?", 1)[0].split("/")  # /v1/messages/batches/{id}[/results]
        with self.lock:
            batch = self.batches.get(parts[4])
            if batch is None:
                return _error(404, "not_found_error", f"No batch found with id {parts[4]}")
            if len(parts) == 6 and parts[5] == "results":
                if batch["results"] is None:
                    return _invalid(f"Batch {batch['id']} has not ended yet")
                lines = "".join(json.dumps(result) + "\n" for result in batch["results"]).encode()
                return Reply(200, lines, headers={"Content-Type": "application/binary"})
            if batch["results"] is None and not self.hold.is_set():
                batch["polls"] += 1
                if batch["polls"] >= self.polls:
                    self._end(batch)
            return Reply(200, self._public(batch))

    def finish(self) -> None:
        with self.lock:
            for batch in self.batches.values():
                if batch["results"] is None:
                    self._end(batch)

    def _end(self, batch: dict) -> None:
        results = []
        for number, entry in enumerate(batch["requests"]):
            custom_id, params = entry["custom_id"], entry["params"]
            if batch["expires"] and number >= self.expire_keep:
                results.append({"custom_id": custom_id, "result": {"type": "expired"}})
                continue
            reason = self.fail(params)
            if reason:
                results.append({"custom_id": custom_id, "result": {"type": "errored", "error": {
                    "type": "error", "error": {"type": "invalid_request_error", "message": reason},
                    "request_id": f"req_{number}"}}})
                continue
            reply = self.messages.messages(Received("POST", "/v1/messages", {"x-api-key": self.messages.key,
                                                                             "anthropic-version": "2023-06-01"},
                                                    json.dumps(params).encode()))
            results.append({"custom_id": custom_id, "result": {"type": "succeeded",
                                                               "message": json.loads(reply.body)}})
        results.reverse()  # the real API does not keep the requests' order either
        batch["results"], batch["ended_at"] = results, time.time()

    def routes(self) -> dict:
        return {("POST", "/v1/messages/batches"): self.create, ("GET", "/v1/messages/batches/*"): self.get}

    def submissions(self, server: FakeServer) -> list[Received]:
        return [r for r in server.requests_to("/v1/messages/batches") if r.method == "POST"]


def anthropic_batch_server(faults: Faults | None = None, polls: int = 2, fail=None, expire: int = 0,
                           expire_keep: int = 0, **options) -> FakeServer:
    """A server with Messages and Message Batches; `server.batches` is the batch fake."""
    messages = AnthropicFake(**options)
    batches = AnthropicBatches(messages, polls, fail, expire, expire_keep)
    server = FakeServer({**messages.routes(), **batches.routes()}, faults=faults)
    batches.url = server.url
    server.fake, server.batches = messages, batches
    return server
