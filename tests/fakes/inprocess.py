"""A provider that answers in the test's own process, registered like the others (`provider: scripted`).

For the engine's behaviour (retries, timeouts, limits, budget, cache) nothing is gained by a server or a
subprocess: the test says what each call returns and the real engine, cache and record writer run on it.
The SDK paths are tested against the strict loopback fakes (tests/fakes/*_server.py) instead.
"""
from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass

from runner.calls import Request, Response, Usage
from runner.providers.base import Provider

ENTRY = "tests.fakes.inprocess:ScriptedProvider"


def answer(text: str = "an answer", input_tokens: int = 12, output_tokens: int = 6) -> Response:
    return Response(text=text, usage=Usage(input_tokens, output_tokens, 0, "provider"), finish_reason="stop")


def failure(kind: str = "server", status: int | None = 500, retryable: bool = True,
            retry_after_s: float | None = None) -> Response:
    return Response(error=f"HTTP {status}: {kind}", error_kind=kind, status_code=status, retryable=retryable,
                    retry_after_s=retry_after_s)


@dataclass
class Wait:
    """A call that takes this long before it answers (longer than model.timeout_s: a timeout)."""

    seconds: float
    then: Response | None = None


class Script:
    """What the provider's calls return, in order; once the steps run out, `otherwise(request)`."""

    def __init__(self) -> None:
        self.steps: list[Response | Wait] = []
        self.otherwise: Callable[[Request], Response] = lambda request: answer(
            f"echo: {request.messages[-1]['content']}")
        self.received: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.prepare_errors: list[Exception] = []  # prepare() raises these, one per call, then succeeds
        self.prepared = 0  # prepare() calls, failed ones included


script = Script()


class ScriptedProvider(Provider):
    key_env = ("SCRIPTED_API_KEY",)
    loggers = ()

    async def prepare(self) -> None:
        script.prepared += 1
        if script.prepare_errors:
            raise script.prepare_errors.pop(0)

    async def generate(self, request: Request) -> Response:
        script.received.append(request)
        step = script.steps.pop(0) if script.steps else script.otherwise(request)
        script.in_flight += 1
        script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            await asyncio.sleep(step.seconds if isinstance(step, Wait) else 0.001)
            if isinstance(step, Wait):
                step = step.then or answer()
        finally:
            script.in_flight -= 1
        response = copy.deepcopy(step)
        response.latency_s = response.latency_s or 0.001
        return response
