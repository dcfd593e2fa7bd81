"""A chat session: its folder, each turn as a model call (streamed, timed, priced, recorded), the arena's votes.

The session is a run like any other: its folder (outputs/chats/<time>/ by default) holds results.jsonl
(one record per turn: the messages sent, the answer, tokens, cost, latency), one job folder per contestant
in the arena, and votes.jsonl. After each turn and each vote the comparison is rebuilt in the background
(report.md, report.html, the history database), so the conversation and the votes are in the history, and
in `python -m runner.view`, while the chat goes on.

A turn is one call through the model's Provider, the class a run uses; its pieces reach the page as they
stream. A failed call is shown and recorded as an `error` row; it is not retried, since half an answer may
already be on the screen.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from runner.analysis import votes as votes_file
from runner.calling.asking import asking
from runner.calling.asking import request as request_for
from runner.calling.costs import attempt_cost, call_cost, known_price
from runner.calls import Response
from runner.chat.contestants import Contestant
from runner.providers import provider_for
from runner.providers.base import refuse_empty
from runner.records import Record, RecordWriter
from runner.redact import redact

log = logging.getLogger(__name__)
COMMAND_FILE = "command.txt"  # runner.comparison reads the command that made the folder from here


@dataclass
class Turn:
    """One answer as the page shows it: the text (or why there is none), tokens, cost and time."""

    text: str
    error: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    latency_s: float | None
    ttft_s: float | None

    @property
    def ok(self) -> bool:
        return not self.error

    def facts(self) -> str:
        from runner.money import dollars as usd

        tokens = f"{self.input_tokens if self.input_tokens is not None else '?'} in, " \
                 f"{self.output_tokens if self.output_tokens is not None else '?'} out"
        first = f", first token {self.ttft_s:.2f} s" if self.ttft_s is not None else ""
        took = f"{self.latency_s:.2f} s{first}" if self.latency_s is not None else ""
        return f"{tokens} · {usd(self.cost_usd)} · {took}"


class ChatSession:
    def __init__(self, folder: Path, contestants: list[Contestant], command: str) -> None:
        self.folder = Path(folder)
        self.contestants = contestants
        self.providers = [provider_for(c.run.model) for c in contestants]
        self._prepared: dict[int, asyncio.Task] = {}
        self._conversations = 0
        self.command = command
        self.writers: list[RecordWriter] = []  # opened at the first turn: a session with none leaves no run
        self._rebuild = Rebuild(self.folder)

    @property
    def started(self) -> bool:
        return bool(self.writers)

    def _start(self) -> None:
        """The session's files, as a run's: the command, each contestant's config, its results files."""
        (self.folder / COMMAND_FILE).write_text(redact(self.command) + "\n", encoding="utf-8")
        for contestant in self.contestants:
            job = self.folder / contestant.job if contestant.job else self.folder
            (job / ".hydra").mkdir(parents=True, exist_ok=True)
            (job / ".hydra" / "config.yaml").write_text(redact(contestant.config_yaml), encoding="utf-8")
            overrides = "".join(f"- {o}\n" for o in contestant.overrides)
            (job / ".hydra" / "overrides.yaml").write_text(redact(overrides), encoding="utf-8")
            self.writers.append(RecordWriter(job))

    @property
    def arena(self) -> bool:
        return len(self.contestants) > 1

    def new_conversation(self) -> str:
        self._conversations += 1
        return f"conversation {self._conversations}"

    def messages(self, index: int, history: list[dict], message: str) -> list[dict]:
        """What a turn sends: the system prompt, the conversation so far, the new message."""
        system = self.contestants[index].system
        return ([{"role": "system", "content": system}] if system else []) + history + \
            [{"role": "user", "content": message}]

    async def reply(self, index: int, messages: list[dict], item: str, turn: int,
                    on_text: Callable[[str], None] | None = None) -> Turn:
        """Ask contestant `index`; pieces go to `on_text` as they arrive. Recorded as step turn-N of `item`."""
        contestant, provider = self.contestants[index], self.providers[index]
        run = contestant.run
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            await self._prepare(index)
            ask = asking(run.model, run.temperature, run.max_tokens)
            request = request_for(ask, messages, on_text=on_text)
            response = refuse_empty(await asyncio.wait_for(provider.generate(request), run.model.timeout_s))
        except asyncio.TimeoutError:
            response = Response(error=f"timed out after {run.model.timeout_s:g} s (model.timeout_s)")
        except Exception as exc:  # noqa: BLE001 - a model that cannot be set up fails its turn, not the app
            log.debug("turn failed", exc_info=True)
            response = Response(error=f"{type(exc).__name__}: {exc}")
        usage = response.usage
        cost = call_cost(run.model, usage) if usage.reported else None  # an empty answer's tokens were billed too
        spent = attempt_cost(run.model, response, known_price(run.model))
        record = Record(
            run_id=self.folder.name, model=run.model.name, provider=run.model.provider, model_id=run.model.id,
            task=run.task.name, prompt=run.prompt.name, item=item, repeat=0,
            temperature=asking(run.model, run.temperature, run.max_tokens).recorded_temperature,
            status="ok" if response.ok else "error", error=response.error or "",
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cached_tokens=usage.cached_tokens,
            tokens_source=usage.source if usage.input_tokens is not None else "", cost_usd=cost, spent_usd=spent,
            billed_input_tokens=usage.input_tokens or 0, billed_output_tokens=usage.output_tokens or 0,
            latency_s=response.latency_s, ttft_s=response.ttft_s, finish_reason=response.finish_reason or "",
            response=response.text if response.ok else "", step=f"turn-{turn}", job=contestant.job,
            started_at=started, max_tokens=run.max_tokens, base_url=provider.endpoint(), variant=contestant.variant,
            messages=messages, reasoning=response.reasoning, reasoning_tokens=usage.reasoning_tokens,
            reasoning_effort=run.model.reasoning or "")
        if not self.started:
            self._start()
        self.writers[index].write(record)
        self._rebuild.soon()
        return Turn(record.response, record.error, record.input_tokens, record.output_tokens, cost,
                    record.latency_s, record.ttft_s)

    async def _prepare(self, index: int) -> None:
        """The provider's one preparation (SDK, client, a loaded model), on the loop the app runs on."""
        task = self._prepared.get(index)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._prepared[index] = asyncio.ensure_future(self.providers[index].prepare())
        await asyncio.shield(task)

    def vote(self, item: str, turn: int, a: int, b: int, winner: str) -> dict:
        """A person's vote on turn `turn` of `item`: contestant `a` was shown as A, `b` as B."""
        vote = {"run_id": self.folder.name, "item": item, "step": f"turn-{turn}",
                "a": self.contestants[a].side(), "b": self.contestants[b].side(), "winner": winner,
                "voted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        votes_file.append(self.folder, vote)
        self._rebuild.soon()
        return vote

    def close(self) -> bool:
        """Flush the records and build the comparison one last time; False when nothing was said (and the
        empty folder is gone)."""
        for writer in self.writers:
            writer.close()
        self._rebuild.now()
        if not self.started:
            try:
                self.folder.rmdir()  # only when empty: a folder given with --folder may hold other things
            except OSError:
                pass
        return self.started


class Rebuild:
    """The comparison of the session's folder, rebuilt in a thread of its own after each turn or vote: one
    build at a time, and turns that arrive during a build make one more build, not one each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.built = 0

    def soon(self) -> None:
        self._wanted.set()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="chat-comparison", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while self._wanted.is_set():
            self._wanted.clear()
            self._build()

    def now(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._wanted.is_set():
            self._wanted.clear()
            self._build()

    def _build(self) -> None:
        from runner.analysis.build import build_comparison
        from runner.folders import job_folders

        if not job_folders(self.folder):
            return
        try:
            build_comparison(self.folder)
            self.built += 1
        except Exception as exc:  # noqa: BLE001 - the chat goes on; the next turn tries again
            log.warning("the comparison of %s was not built: %s", self.folder, exc, exc_info=True)
            print(f"runner.chat: the comparison of {self.folder} was not built: {exc}", file=sys.stderr)
