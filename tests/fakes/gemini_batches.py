"""A strict fake of Gemini's batch mode (google-genai, inline requests) on 127.0.0.1, on top of the Gemini fake.

`POST /{version}/models/{model}:batchGenerateContent` takes `{"batch": {"displayName", "inputConfig":
{"requests": {"requests": [{"request": GenerateContentRequest, "metadata": {...}}]}}}}`, each request checked
by the Gemini fake's own rules, and answers with the batch's long-running operation (`batches/{id}`);
`GET /{version}/batches/{id}` moves it from BATCH_STATE_PENDING to RUNNING to SUCCEEDED, one state per
`polls_per_step` polls, and a finished one carries its answers inline (`metadata.output.inlinedResponses`),
each with the metadata its request was sent with. Options: per-request errors (`fail`), expiry (`expire`:
the next N batches end BATCH_STATE_EXPIRED without answers), `hold`. Every request is in the server's log.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import urlsplit

from tests.fakes.gemini_server import VERSIONS, GeminiFake, google_error
from tests.fakes.server import FakeServer, Faults, Received, Reply

STATES = ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING", "BATCH_STATE_SUCCEEDED")
TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta."


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class GeminiBatches:
    def __init__(self, chat: GeminiFake, polls_per_step: int = 1, fail: Callable[[dict], str | None] | None = None,
                 expire: int = 0):
        self.chat = chat
        self.polls_per_step = polls_per_step
        self.fail = fail or (lambda request: None)
        self.expire = expire
        self.hold = threading.Event()
        self.batches: dict[str, dict] = {}
        self.lock = threading.Lock()

    def models(self, request: Received) -> Reply:
        """POST /{version}/models/*: batchGenerateContent here, the rest to the Gemini fake."""
        path = urlsplit(request.path).path
        if not path.endswith(":batchGenerateContent"):
            return self.chat.generate(request)
        problem = self.chat.check_key(request)
        if problem:
            return problem
        model = path.split("/models/", 1)[1].rsplit(":", 1)[0]
        try:
            body = request.json
        except json.JSONDecodeError:
            return google_error(400, "Invalid JSON payload received.")
        if set(body) != {"batch"} or set(body["batch"]) - {"displayName", "inputConfig", "model", "priority"}:
            return google_error(400, f"Invalid JSON payload received. Unknown name in {sorted(body)}")
        source = body["batch"].get("inputConfig") or {}
        if set(source) != {"requests"} or set(source["requests"]) != {"requests"}:
            return google_error(400, "* BatchGenerateContentRequest.batch.input_config: requests or file_name "
                                     "is required")
        items = source["requests"]["requests"]
        if not isinstance(items, list) or not items:
            return google_error(400, "* BatchGenerateContentRequest.batch.input_config.requests: must not be empty")
        for i, item in enumerate(items):
            if set(item) - {"request", "metadata"} or "request" not in item:
                return google_error(400, f"Invalid JSON payload received. Unknown name in requests[{i}]: "
                                         f"{sorted(item)}")
            inner = {key: value for key, value in item["request"].items() if key != "model"}
            problem = self.chat.check_body(inner)
            if problem:
                message = json.loads(problem.body)["error"]["message"]
                return google_error(400, f"requests[{i}]: {message}")
        with self.lock:
            ident = f"batches/fakebatch{len(self.batches) + 1:04d}"
            expires = self.expire > 0
            self.expire -= expires
            self.batches[ident] = {"name": ident, "model": f"models/{model}", "items": items, "state": STATES[0],
                                   "display": body["batch"].get("displayName", ""), "created": time.time(),
                                   "ended": None, "polls": 0, "expires": expires, "output": None}
            return Reply(200, self._operation(self.batches[ident]))

    def _operation(self, batch: dict) -> dict:
        metadata = {"@type": TYPE + "GenerateContentBatch", "model": batch["model"],
                    "displayName": batch["display"], "createTime": _iso(batch["created"]),
                    "updateTime": _iso(batch["ended"] or batch["created"]), "state": batch["state"],
                    "name": batch["name"], "batchStats": {"requestCount": str(len(batch["items"]))}}
        operation = {"name": batch["name"], "metadata": metadata}
        if batch["ended"] is not None:
            metadata["endTime"] = _iso(batch["ended"])
            operation["done"] = True
            if batch["output"] is not None:
                metadata["output"] = {"inlinedResponses": {"inlinedResponses": batch["output"]}}
                operation["response"] = {"@type": TYPE + "GenerateContentBatchOutput",
                                         "inlinedResponses": {"inlinedResponses": batch["output"]}}
        return operation

    def get(self, request: Received) -> Reply:
        problem = self.chat.check_key(request)
        if problem:
            return problem
        path = urlsplit(request.path).path
        version, _, name = path.lstrip("/").partition("/")
        with self.lock:
            batch = self.batches.get(name)
            if version not in VERSIONS or batch is None:
                return google_error(404, f"Requested entity was not found: {name}")
            if batch["ended"] is None and not self.hold.is_set():
                batch["polls"] += 1
                if batch["polls"] % self.polls_per_step == 0:
                    self._advance(batch)
            return Reply(200, self._operation(batch))

    def finish(self) -> None:
        with self.lock:
            for batch in self.batches.values():
                while batch["ended"] is None:
                    self._advance(batch)

    def _advance(self, batch: dict) -> None:
        step = STATES[STATES.index(batch["state"]) + 1]
        if step != STATES[-1]:
            batch["state"] = step
            return
        batch["ended"] = time.time()
        if batch["expires"]:
            batch["state"] = "BATCH_STATE_EXPIRED"
            return
        output = []
        for item in batch["items"]:
            reason = self.fail(item["request"])
            if reason:
                answer = {"error": {"code": 400, "message": reason}}
            else:
                inner = {key: value for key, value in item["request"].items() if key != "model"}
                reply = self.chat.generate(Received("POST", f"/v1beta/{batch['model']}:generateContent",
                                                    {"x-goog-api-key": self.chat.key}, json.dumps(inner).encode()))
                answer = {"response": json.loads(reply.body)}
            if "metadata" in item:
                answer["metadata"] = item["metadata"]
            output.append(answer)
        batch["state"], batch["output"] = STATES[-1], output

    def routes(self) -> dict:
        routes = {("POST", f"/{version}/models/*"): self.models for version in VERSIONS}
        routes.update({("GET", f"/{version}/batches/*"): self.get for version in VERSIONS})
        return routes

    def submissions(self, server: FakeServer) -> list[Received]:
        return [r for r in server.received if r.method == "POST" and ":batchGenerateContent" in r.path]


def gemini_batch_server(faults: Faults | None = None, polls_per_step: int = 1, fail=None, expire: int = 0,
                        **options) -> FakeServer:
    """A server with generateContent and batch mode; `server.batches` is the batch fake."""
    chat = GeminiFake(**options)
    batches = GeminiBatches(chat, polls_per_step, fail, expire)
    server = FakeServer(batches.routes(), faults=faults)
    server.fake, server.batches = chat, batches
    return server
