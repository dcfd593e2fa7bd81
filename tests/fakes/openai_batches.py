"""A strict fake of OpenAI's Batch API (files + batches) on 127.0.0.1, on top of the Chat Completions fake.

`POST /v1/files` takes a multipart upload (purpose `batch`), `POST /v1/batches` checks the file line by line
the way the real API does (custom_id unique, method POST, url equal to the batch's endpoint, each body a
valid Chat Completions request: the chat fake's own checks), `GET /v1/batches/{id}` moves the batch on one
status per poll (validating, in_progress, finalizing, completed), and `GET /v1/files/{id}/content` serves the
output and error files as JSONL. Answers are what the chat fake would have answered directly. Options:
per-request errors (`fail`), expiry (`expire`: the first N batches expire after answering `expire_keep`
requests; the rest are in the error file with code batch_expired), a `hold` that keeps batches in progress,
and `upload_error`: a proxy (LiteLLM) without the files API, which answers uploads with an error.
Every request is in the server's log (`server.received`), so a test can count submissions.
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Callable

from tests.fakes.openai_server import OpenAIFake, _error
from tests.fakes.server import FakeServer, Faults, Received, Reply

STEPS = ("validating", "in_progress", "finalizing", "completed")
BATCH_FIELDS = {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}


def _multipart(request: Received) -> dict[str, tuple[str | None, bytes]]:
    """The form's fields: name -> (file name, content)."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    if not message.is_multipart():
        raise ValueError("not multipart/form-data")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_filename(), part.get_payload(decode=True))
    return fields


class OpenAIBatches:
    def __init__(self, chat: OpenAIFake, polls_per_step: int = 1, fail: Callable[[dict], str | None] | None = None,
                 expire: int = 0, expire_keep: int = 0):
        self.chat = chat
        self.polls_per_step = polls_per_step
        self.fail = fail or (lambda body: None)
        self.expire = expire  # how many of the next batches expire
        self.expire_keep = expire_keep  # requests an expiring batch answers first
        self.hold = threading.Event()  # set: batches stay in progress
        self.status_error: int | None = None  # answer status checks with this HTTP error (an outage, a key revoked)
        # answer uploads with this (status, message) in LiteLLM's error shape: a proxy without the files API
        # answers (500, "files_settings is not set")
        self.upload_error: tuple[int, str] | None = None
        self.status_blips: list[int | None] = []  # the next status checks, in order: an HTTP error, or None: the status
        self.cut_output = False  # the output file ends in the middle of a line (a broken download, a bug of theirs)
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.lock = threading.Lock()

    def _auth(self, request: Received) -> Reply | None:
        if request.headers.get("authorization") != f"Bearer {self.chat.key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return None

    def _file(self, name: str, purpose: str, content: bytes) -> dict:
        ident = f"file-{len(self.files) + 1:04d}"
        meta = {"id": ident, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": name, "purpose": purpose, "status": "processed", "expires_at": None,
                "status_details": None}
        self.files[ident] = {"meta": meta, "content": content}
        return meta

    def upload(self, request: Received) -> Reply:
        problem = self._auth(request)
        if problem:
            return problem
        if self.upload_error:
            status, message = self.upload_error
            return Reply(status, {"error": {"message": message, "type": "None", "param": "None", "code": str(status)}})
        try:
            fields = _multipart(request)
        except ValueError as exc:
            return _error(400, f"Invalid multipart body: {exc}", "invalid_request_error")
        if set(fields) - {"file", "purpose", "expires_after"} or "file" not in fields or "purpose" not in fields:
            return _error(400, f"Invalid form fields: {sorted(fields)}", "invalid_request_error")
        purpose = fields["purpose"][1].decode()
        if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data", "evals"):
            return _error(400, f"Invalid purpose: {purpose}", "invalid_request_error")
        name, content = fields["file"]
        if purpose == "batch" and not (name or "").endswith(".jsonl"):
            return _error(400, "Invalid file format for Batch API. Must be .jsonl", "invalid_request_error")
        with self.lock:
            return Reply(200, self._file(name, purpose, content))

    def file_get(self, request: Received) -> Reply:
        problem = self._auth(request)
        if problem:
            return problem
        parts = request.path.split("?", 1)[0].split("/")  # /v1/files/{id}[/content]
        stored = self.files.get(parts[3])
        if stored is None:
            return _error(404, f"No such File object: {parts[3]}", "invalid_request_error")
        if len(parts) == 5 and parts[4] == "content":
            return Reply(200, stored["content"], headers={"Content-Type": "application/octet-stream"})
        return Reply(200, stored["meta"])

    def create(self, request: Received) -> Reply:
        problem = self._auth(request)
        if problem:
            return problem
        body = request.json
        unknown = set(body) - BATCH_FIELDS
        if unknown:
            return _error(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}", "invalid_request_error")
        if body.get("completion_window") != "24h":
            return _error(400, "Invalid completion_window: only 24h is supported", "invalid_request_error")
        if body.get("endpoint") != "/v1/chat/completions":
            return _error(400, f"Invalid endpoint: {body.get('endpoint')}", "invalid_request_error")
        stored = self.files.get(body.get("input_file_id"))
        if stored is None or stored["meta"]["purpose"] != "batch":
            return _error(400, f"Invalid input_file_id: {body.get('input_file_id')}", "invalid_request_error")
        lines, errors = self._check_lines(stored["content"], body["endpoint"], request)
        with self.lock:
            ident = f"batch_{len(self.batches) + 1:04d}"
            expires = self.expire > 0
            self.expire -= expires
            self.batches[ident] = {
                "id": ident, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
                "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
                "in_progress_at": None, "expires_at": int(time.time()) + 86400, "finalizing_at": None,
                "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
                "cancelled_at": None, "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"), "_lines": lines, "_polls": 0, "_expires": expires,
                "_invalid": errors}
            return Reply(200, self._public(self.batches[ident]))

    def _check_lines(self, content: bytes, endpoint: str, request: Received) -> tuple[list[dict], list[dict]]:
        lines, errors, seen = [], [], set()
        for number, raw in enumerate(content.decode("utf-8").splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                errors.append({"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.",
                               "param": None, "line": number})
                continue
            if set(line) != {"custom_id", "method", "url", "body"}:
                errors.append({"code": "invalid_request", "message": f"Fields must be custom_id, method, url, body "
                                                                     f"(got {sorted(line)})", "param": None,
                               "line": number})
            elif line["custom_id"] in seen or not isinstance(line["custom_id"], str):
                errors.append({"code": "duplicate_custom_id", "message": "The custom_id for this request is a "
                                                                         "duplicate of another request.",
                               "param": "custom_id", "line": number})
            elif line["method"] != "POST" or line["url"] != endpoint:
                errors.append({"code": "invalid_url", "message": f"The URL provided for this request does not match "
                                                                 f"the batch endpoint {endpoint}.", "param": "url",
                               "line": number})
            elif line["body"].get("stream"):
                errors.append({"code": "invalid_request", "message": "Streaming is not supported in batches.",
                               "param": "body.stream", "line": number})
            else:
                check = self.chat.validate(Received("POST", endpoint, request.headers,
                                                    json.dumps(line["body"]).encode()))
                if check is not None:
                    errors.append({"code": "invalid_request", "message": json.loads(check.body)["error"]["message"],
                                   "param": "body", "line": number})
                seen.add(line["custom_id"])
                lines.append(line)
        models = {line["body"].get("model") for line in lines}
        if len(models) > 1:
            errors.append({"code": "mismatched_model", "message": "All requests in a batch must use the same model.",
                           "param": "body.model", "line": None})
        if not lines and not errors:
            errors.append({"code": "empty_file", "message": "The batch input file is empty.", "param": None,
                           "line": None})
        return lines, errors

    @staticmethod
    def _public(batch: dict) -> dict:
        return {key: value for key, value in batch.items() if not key.startswith("_")}

    def retrieve(self, request: Received) -> Reply:
        problem = self._auth(request)
        if problem:
            return problem
        ident = request.path.split("?", 1)[0].split("/")[3]
        if self.status_error:
            return _error(self.status_error, "You are not allowed to read this batch.", "invalid_request_error")
        blip = self.status_blips.pop(0) if self.status_blips else None
        if blip:
            return _error(blip, "The server had an error while processing your request. Sorry about that!",
                          "server_error")
        with self.lock:
            batch = self.batches.get(ident)
            if batch is None:
                return _error(404, f"No batch found with id '{ident}'.", "invalid_request_error")
            if batch["status"] in ("validating", "in_progress", "finalizing") and not self.hold.is_set():
                batch["_polls"] += 1
                if batch["_polls"] % self.polls_per_step == 0:
                    self._advance(batch)
            return Reply(200, self._public(batch))

    def finish(self) -> None:
        """Every batch in progress ends now (the provider's 24 hours passed between two runs)."""
        with self.lock:
            for batch in self.batches.values():
                while batch["status"] in ("validating", "in_progress", "finalizing"):
                    self._advance(batch)

    def _advance(self, batch: dict) -> None:
        now = int(time.time())
        if batch["_invalid"]:
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": batch["_invalid"]})
            return
        step = STEPS[STEPS.index(batch["status"]) + 1]
        if step == "in_progress":
            batch.update(status=step, in_progress_at=now)
        elif step == "finalizing":
            batch.update(status=step, finalizing_at=now)
        else:
            self._finish(batch, now)

    def _finish(self, batch: dict, now: int) -> None:
        output, errors = [], []
        for number, line in enumerate(batch["_lines"]):
            ident = f"batch_req_{batch['id']}_{number}"
            if batch["_expires"] and number >= self.expire_keep:
                errors.append({"id": ident, "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "batch_expired", "message": "This request could not be executed "
                                                                             "before the completion window expired."}})
                continue
            reason = self.fail(line["body"])
            if reason:
                errors.append({"id": ident, "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 400, "request_id": f"req_{number}",
                    "body": {"error": {"message": reason, "type": "invalid_request_error", "param": None,
                                       "code": None}}}})
                continue
            reply = self.chat.chat(Received("POST", batch["endpoint"], {"authorization": f"Bearer {self.chat.key}"},
                                            json.dumps(line["body"]).encode()))
            output.append({"id": ident, "custom_id": line["custom_id"], "error": None, "response": {
                "status_code": reply.status, "request_id": f"req_{number}", "body": json.loads(reply.body)}})
        for rows, key, name in ((output, "output_file_id", "output"), (errors, "error_file_id", "errors")):
            if rows:
                content = "".join(json.dumps(row) + "\n" for row in rows).encode()
                if self.cut_output and key == "output_file_id":
                    content = content[:-20]
                batch[key] = self._file(f"{batch['id']}_{name}.jsonl", "batch_output", content)["id"]
        failed = sum(1 for row in errors if row["response"] is not None)
        batch["request_counts"] = {"total": len(batch["_lines"]), "completed": len(output), "failed": failed}
        if batch["_expires"]:
            batch.update(status="expired", expired_at=now)
        else:
            batch.update(status="completed", completed_at=now)

    def routes(self) -> dict:
        return {("POST", "/v1/files"): self.upload, ("GET", "/v1/files/*"): self.file_get,
                ("POST", "/v1/batches"): self.create, ("GET", "/v1/batches/*"): self.retrieve}

    def submissions(self, server: FakeServer) -> list[Received]:
        """Every batch the server was asked to create."""
        return [r for r in server.requests_to("/v1/batches") if r.method == "POST"]


def openai_batch_server(faults: Faults | None = None, polls_per_step: int = 1, fail=None, expire: int = 0,
                        expire_keep: int = 0, **options) -> FakeServer:
    """A server with Chat Completions and the Batch API; `server.batches` is the batch fake."""
    chat = OpenAIFake(**options)
    batches = OpenAIBatches(chat, polls_per_step, fail, expire, expire_keep)
    server = FakeServer({**chat.routes(), **batches.routes()}, faults=faults)
    server.fake, server.batches = chat, batches
    return server
