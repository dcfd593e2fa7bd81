"""What the fakes say when a judge asks them (runner.scorers.judge's and runner.scorers.pairwise's prompts): a
verdict in the JSON the judge asks for, so a run whose task ships judges ends as it would with a real judge.
Tests that need other verdicts pass their own `answer` to the fake."""
from __future__ import annotations

import json

from runner.scorers import judge, pairwise

DEFAULT_VERDICT = {"reason": "the fake judge passes every answer", "pass": True, "score": 1.0}
DEFAULT_PAIRWISE = {"reason": "the fake judge finds both answers as good", "better": "tie"}


def _system(messages: list[dict]) -> str:
    return next((m.get("content") for m in messages if m.get("role") == "system"), "")


def is_judging(messages: list[dict]) -> bool:
    return _system(messages) in (judge.SYSTEM, pairwise.SYSTEM)


def is_pairwise(messages: list[dict]) -> bool:
    return _system(messages) == pairwise.SYSTEM


def verdict(messages: list[dict] | None = None) -> str:
    return json.dumps(DEFAULT_PAIRWISE if messages and is_pairwise(messages) else DEFAULT_VERDICT)
