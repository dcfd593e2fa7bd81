"""Batch runs (`model.batch=true`): a job's calls go through the provider's batch API, at batch prices.

The engine hands each call that the cache did not answer (and the budget admitted, at the batch price) to
`Batches.ask`, which waits until every cell in flight is waiting for an answer: those calls are one
round, sent as one batch (split when over the provider's limits). A multi-step task's next step is
asked once the previous round's answers are back, so each step is a round of its own. Before the first
poll the batch's id and its custom ids (the calls' cache keys) are written down (runner.calling.batch_files):
a re-run of the same command finds them and attaches to the batch instead of submitting it again. The
answers come back as Responses like a direct call's, so the engine prices, caches and records them the
same way; their latency is the batch's turnaround and they have no time to first token.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from runner.calling.batch_files import JobFile, Ledger, new_entry
from runner.calling.progress import duration
from runner.calls import Request, Response
from runner.providers.base import BATCH_EXPIRED, BatchStatus, Provider, ProviderError, refuse_empty
from runner.providers.reasons import redacted_line
from runner.settings import BatchSettings
from runner.words import counted

log = logging.getLogger("runner")

PENDING = "batch_pending"
EXPIRED = BATCH_EXPIRED
UNREACHABLE = "batch_unreachable"  # its status or answers could not be read: a later run collects it
NOT_CREATED = "batch_not_created"  # the provider refused to create the batch (a proxy without the files API)
STATUS_TRIES = 5  # status checks in a row that may fail (a network blip) before the batch's calls are errors


class BatchPending(Exception):
    """The cell's answer is in a batch that is still running and the run does not wait (batch.wait=false)."""


@dataclass
class BatchAnswer:
    """One call's answer as the engine records it: a batch's, or a direct call's made instead of one."""

    response: Response
    retries: int = 0  # the direct call's retries (a batch's answer has none)
    note: str = ""  # why it was called directly rather than answered by a batch
    not_used: str | None = None  # why no batch was made for it at all: in the row's details, for the report


@dataclass
class Waiting:
    request: Request
    cell: dict  # item, repeat and step: written to batch.json next to the custom id
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batches:
    """Collects one job's calls into rounds and has each round answered through the provider's batch API."""

    def __init__(self, provider: Provider, settings: BatchSettings, ledger: Ledger, job_file: JobFile,
                 direct: Callable[[Request], Awaitable[tuple[Response, int]]]) -> None:
        self.provider = provider
        self.settings = settings
        self.ledger = ledger
        self.job_file = job_file
        self.direct = direct  # a direct call with the engine's retry policy (batch.retry_failed=direct)
        self.active = 0  # cells in flight
        self.waiting: dict[str, Waiting] = {}
        self.rounds: set[asyncio.Task] = set()
        self.unrecorded: dict[str, set[str]] = {}  # batch id -> custom ids whose answers are not recorded yet
        self.entries: dict[str, dict] = {}  # batch id -> its ledger entry
        self.left_pending: list[dict] = []
        self.sent_directly: dict[str, BatchAnswer] = {}  # custom id -> how it was called instead, until recorded

    # the cells' side

    def cell_started(self) -> None:
        self.active += 1

    def cell_finished(self) -> None:
        self.active -= 1
        self._maybe_send()

    async def ask(self, key: str, request: Request, cell: dict) -> BatchAnswer:
        """The answer to one call, once its round is back. `key` is its cache key: the batch's custom id."""
        waiting = self.waiting.get(key)
        if waiting is None:  # the same call twice in a round (a task repeating itself) is asked once
            waiting = self.waiting[key] = Waiting(request, cell)
        self._maybe_send()
        response = await asyncio.shield(waiting.future)
        direct = self.sent_directly.get(key)
        return BatchAnswer(response) if direct is None else direct

    def answered(self, key: str) -> None:
        """The engine recorded (and cached) this answer: once a batch's answers all are, it is collected."""
        self.sent_directly.pop(key, None)
        for batch_id, keys in list(self.unrecorded.items()):  # an expired batch's request answered by the next
            keys.discard(key)
            if not keys:
                self.ledger.remove(self.entries[batch_id])
                self.job_file.set_state(batch_id, "collected")
                del self.unrecorded[batch_id]

    def _maybe_send(self) -> None:
        """Every cell in flight waits for an answer: the round is complete, send it."""
        if not self.waiting or len(self.waiting) < self.active:
            return
        waiting, self.waiting = self.waiting, {}
        task = asyncio.ensure_future(self._round(waiting))
        self.rounds.add(task)
        task.add_done_callback(self.rounds.discard)

    async def _round(self, waiting: dict[str, Waiting]) -> None:
        try:
            answers = await self._answer({key: w.request for key, w in waiting.items()},
                                         {key: w.cell for key, w in waiting.items()})
        except Exception as exc:  # noqa: BLE001 - a bug or an SDK surprise: the calls fail, the job goes on
            log.debug("batch round failed", exc_info=True)
            reason = redacted_line(f"batch failed: {type(exc).__name__}: {exc}", 500)
            answers = {key: Response(error=reason, error_kind="batch_failed") for key in waiting}
        for key, w in waiting.items():
            if not w.future.done():
                w.future.set_result(answers.get(key) or Response(error="the batch returned no answer for this "
                                                                       "request", error_kind="batch_failed"))

    # the provider's side

    async def _answer(self, requests: dict[str, Request], cells: dict[str, dict],
                      retried: bool = False, resubmitted: bool = False) -> dict[str, Response]:
        """Answers for these requests: from batches already submitted for them, or from new ones (always new
        ones for a second try: the batches that held them are done)."""
        entries = [] if retried or resubmitted else self._attach(requests, cells)
        held = {key for entry in entries for key in entry["custom_ids"]}
        fresh = {key: request for key, request in requests.items() if key not in held}
        answers: dict[str, Response] = {}
        if fresh:
            submitted, refused = await self._submit(fresh, cells, resubmission=resubmitted)
            entries += submitted
            answers.update(refused)
        if not self.settings.wait:
            statuses = await asyncio.gather(*(self._status_once(entry) for entry in entries))
            if not all(status is not None and status.done for status in statuses):
                self.left_pending += entries
                self.job_file.left_pending()
                return {key: Response(error="pending", error_kind=PENDING) for key in requests}
        for collected in await asyncio.gather(*(self._collect(entry) for entry in entries)):
            for key, response in collected.items():  # a request in two batches (expired, then sent again)
                if key in requests and (key not in answers or not answers[key].ok):
                    # finished as a direct answer is (a prefill put back); no text is no answer
                    answers[key] = refuse_empty(self.provider.batch_answer(requests[key], response))
        expired = {key: requests[key] for key, response in answers.items() if response.error_kind == EXPIRED}
        if expired and not resubmitted:
            log.warning("%s: %d request(s) of the batch expired before they were answered; submitting them again, "
                        "once", self.provider.model.name, len(expired))
            _after(answers, await self._answer(expired, cells, retried, resubmitted=True))
        failed = {key: requests[key] for key, response in answers.items()
                  if not response.ok and response.error_kind not in (PENDING, UNREACHABLE, "too_large")}
        answers_before = {key: answers[key] for key in failed}  # why each failed: kept in the direct call's row
        name = self.provider.model.name
        for reason, count in Counter(answers[key].error for key in failed
                                     if answers[key].error_kind == NOT_CREATED).items():
            what = {"direct": "sending its {} request(s) directly", "batch": "trying its {} request(s) in one more "
                    "batch", "none": "its {} request(s) are error rows"}[self.settings.retry_failed if not retried
                                                                          else "none"].format(count)
            log.warning("%s: %s; %s (batch.retry_failed=%s)", name, reason, what, self.settings.retry_failed)
        in_batch = sum(answers[key].error_kind != NOT_CREATED for key in failed)
        if failed and not retried and self.settings.retry_failed == "batch":
            if in_batch:
                log.warning("%s: %d request(s) failed in the batch; sending them in another batch "
                            "(batch.retry_failed=batch)", name, in_batch)
            _after(answers, await self._answer(failed, cells, retried=True, resubmitted=resubmitted))
        elif failed and self.settings.retry_failed == "direct":
            if in_batch:
                log.warning("%s: %d request(s) failed in the batch; calling them directly "
                            "(batch.retry_failed=direct)", name, in_batch)
            keys = list(failed)
            direct = {}
            for key, (response, retries) in zip(keys, await asyncio.gather(*(self.direct(failed[k]) for k in keys))):
                direct[key] = response
                self.sent_directly[key] = _sent_directly(response, retries, answers_before[key])
            _after(answers, direct)
        return answers

    def _attach(self, requests: dict[str, Request], cells: dict[str, dict]) -> list[dict]:
        """Batches an earlier run (or round) submitted for any of these requests: attach, never submit again."""
        entries = self.ledger.find(self.provider.model.provider, self.provider.endpoint(), set(requests))
        for entry in entries:
            if entry["batch_id"] not in self.entries:
                log.info("%s: attaching to batch %s, submitted %s ago (no new submission)", self.provider.model.name,
                         entry["batch_id"], duration(time.time() - entry.get("submitted_at", time.time())))
                self._track(entry, cells, set(requests))
        return entries

    def _track(self, entry: dict, cells: dict[str, dict], asked: set[str]) -> None:
        """Follow a batch until the answers asked of it are recorded (those an earlier run recorded are not
        asked again: the cache answered them)."""
        self.entries[entry["batch_id"]] = entry
        self.unrecorded[entry["batch_id"]] = asked.intersection(entry["custom_ids"])
        self.job_file.add(entry, cells)

    async def _submit(self, requests: dict[str, Request], cells: dict[str, dict],
                      resubmission: bool) -> tuple[list[dict], dict[str, Response]]:
        """Send the requests as batches within the provider's limits; each is written down (ledger, batch.json)
        before anything waits for it. A request too large for any batch is an error, not sent."""
        max_requests, max_bytes = self.provider.batch_limits
        chunks: list[list[tuple[str, dict]]] = [[]]
        size = 0
        refused: dict[str, Response] = {}
        for key, request in requests.items():
            line = self.provider.batch_entry(key, request)
            length = len(json.dumps(line, ensure_ascii=False).encode()) + 1
            if length > max_bytes:
                refused[key] = Response(error=f"the request is {length} bytes, over the batch API's limit of "
                                              f"{max_bytes} bytes for a whole batch: not sent", error_kind="too_large")
                continue
            if len(chunks[-1]) >= max_requests or size + length > max_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append((key, line))
            size += length
        entries = []
        for chunk in filter(None, chunks):
            try:
                batch_id = await self.provider.batch_submit([line for _, line in chunk])
            except ProviderError as exc:  # no batch exists for these requests: say why wherever they end up
                reason = redacted_line(f"batch not used: the provider did not create it ({exc})", 500)
                refused.update({key: Response(error=reason, error_kind=NOT_CREATED) for key, _ in chunk})
                continue
            entry = new_entry(self.provider.model.provider, self.provider.model.id, self.provider.endpoint(),
                              batch_id, [key for key, _ in chunk], resubmission)
            self.ledger.add(entry)  # on disk before the first poll: a kill from here on loses nothing
            self._track(entry, cells, set(entry["custom_ids"]))
            log.info("%s: submitted batch %s (%s)", self.provider.model.name, batch_id,
                     counted(len(chunk), "request"))
            entries.append(entry)
        return entries, refused

    async def _status_once(self, entry: dict) -> BatchStatus | None:
        try:
            return await self.provider.batch_status(entry["batch_id"])
        except ProviderError as exc:
            log.warning("%s: could not read batch %s's status: %s", self.provider.model.name, entry["batch_id"], exc)
            return None

    async def _collect(self, entry: dict) -> dict[str, Response]:
        """Poll the batch with growing pauses until it ends, then read its answers."""
        name, batch_id = self.provider.model.name, entry["batch_id"]
        delay, failures, status = self.settings.poll_s, 0, None
        while True:
            try:
                status = await self.provider.batch_status(batch_id)
                failures = 0
            except ProviderError as exc:
                failures += 1
                if not exc.retryable or failures >= STATUS_TRIES:
                    return self._unreachable(entry, f"could not read batch {batch_id}'s status: {exc} (run the "
                                                    f"same command again to collect it)")
                log.warning("%s: could not read batch %s's status (%s); trying again", name, batch_id, exc)
            if status is not None:
                log.info("%s: batch %s %s: %s done, %s failed, %s pending, waited %s", name, batch_id, status.word,
                         _count(status.succeeded), _count(status.failed), _count(status.pending),
                         duration(time.time() - entry["submitted_at"]))
                if status.done:
                    break
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.settings.max_poll_s)
        try:
            answers = await self.provider.batch_results(status, entry["custom_ids"])
        except ProviderError as exc:
            return self._unreachable(entry, f"could not read batch {batch_id}'s answers: {exc} (run the same "
                                            f"command again to collect them)")
        turnaround = _turnaround(status, entry)
        for key in entry["custom_ids"]:
            response = answers.get(key)
            if response is None:
                answers[key] = _unanswered(status)
            elif response.ok:
                response.latency_s, response.ttft_s = turnaround, None
            answers[key].batch_id = batch_id
        return answers

    def _unreachable(self, entry: dict, reason: str) -> dict[str, Response]:
        """Every call of the batch is an error row, not retried (the batch may still answer them: paying twice
        is worse); the batch stays in the ledger, so the same command run again collects it."""
        self.unrecorded.pop(entry["batch_id"], None)
        return {key: Response(error=redacted_line(reason, 500), error_kind=UNREACHABLE)
                for key in entry["custom_ids"]}


def _after(answers: dict[str, Response], later: dict[str, Response]) -> None:
    """Put later answers in place of earlier ones to the same requests; an earlier one that came back with
    usage (an empty answer) was billed, and stays counted in the later one's billed_before."""
    for key, response in later.items():
        earlier = answers.get(key)
        if earlier is not None and earlier is not response:
            kept = [*earlier.billed_before, earlier] if earlier.usage.reported else earlier.billed_before
            response.billed_before = [*kept, *response.billed_before]
        answers[key] = response


def _sent_directly(response: Response, retries: int, before: Response) -> BatchAnswer:
    """A direct call made because the batch was not created or failed the request: its row says so."""
    if before.error_kind == NOT_CREATED:
        why = before.error  # "batch not used: the provider did not create it (...)"
        note, not_used = f"{why}; sent directly", why.removeprefix("batch not used: ")
    else:
        note, not_used = f"the batch failed it ({before.error}); sent directly", None
    if not response.ok:
        response.error = f"{response.error} ({note})"
    return BatchAnswer(response, retries, note, not_used)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _turnaround(status: BatchStatus, entry: dict) -> float:
    """Seconds from submitting to the batch's end, by the provider's clock when it gives both ends."""
    if status.created_at and status.ended_at and status.ended_at >= status.created_at:
        return float(status.ended_at - status.created_at)
    return max(0.0, time.time() - entry["submitted_at"])


def _unanswered(status: BatchStatus) -> Response:
    if status.state == "expired":
        return Response(error=f"batch {status.id} expired before answering this request", error_kind=EXPIRED)
    why = f": {status.reason}" if status.reason else ""
    return Response(error=f"batch {status.id} {status.word or status.state} without answering this request{why}",
                    error_kind="batch_failed")
