"""What the fakes say when a judge asks them (runner.scorers.judge's prompt): a verdict in the JSON the
judge asks for, so a run whose task ships judges ends as it would with a real judge. Tests that need other
verdicts pass their own `answer` to the fake."""
from __future__ import annotations

import json

from runner.scorers.judge import SYSTEM

DEFAULT_VERDICT = {"reason": "the fake judge passes every answer", "pass": True, "score": 1.0}


def is_judging(messages: list[dict]) -> bool:
    return any(m.get("role") == "system" and m.get("content") == SYSTEM for m in messages)


def verdict() -> str:
    return json.dumps(DEFAULT_VERDICT)
