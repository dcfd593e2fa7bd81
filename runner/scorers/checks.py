"""The deterministic scorers: each is a small function from (scorer, item, answer) to a Verdict.

A scorer's text values may use the item's fields (`value: "{expected}"`); with no `value`, the texts
compared come from the item's `expected` field (or `reference`, or the field named by `field`).
"""
from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.errors import ConfigError
from runner.tasks.base import fill

NEEDS_TEXT = {"equals", "iequals", "contains", "icontains", "starts-with"}
EXPECTED_FIELDS = ("expected", "reference")


@dataclass(frozen=True)
class Verdict:
    score: float  # 0 to 1
    passed: bool
    reason: str


class MissingField(ConfigError):
    """An item lacks a field the scorer reads: a config error for a scorer the user asked for, n/a for that
    item under a task's own default scorer."""

    def __init__(self, message: str, field: str, why: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # what the item lacks: `keywords`, `expected or reference`
        self.why = why  # why it does not apply, when it is not a missing field (an item that expects no tool call)


def expected(scorer, item: Mapping[str, Any], where: str = "the item") -> Any:
    """What the scorer compares the answer with, for this item; a ConfigError when the item lacks it."""
    if scorer.type not in NEEDS_TEXT and not scorer.type.endswith(("-any", "-all")):
        return scorer.value
    value = scorer.value
    if value is None:
        names = (scorer.field,) if scorer.field else EXPECTED_FIELDS
        found = next((name for name in names if item.get(name) is not None), None)
        if found is None:
            raise MissingField(f"scorer {scorer.name} ({scorer.type}) has no `value` and {where} has no "
                               f"{' or '.join(names)} field to compare with", ' or '.join(names))
        value = item[found]
    if isinstance(value, (list, tuple)):
        return [_filled(v, item, scorer, where) for v in value]
    return _filled(value, item, scorer, where)


def _filled(value: Any, item: Mapping[str, Any], scorer, where: str) -> str:
    text = str(value)
    missing = [name for name in re.findall(r"(?<!\{)\{(\w+)\}(?!\})", text) if name not in item]
    if missing:
        raise MissingField(f"scorer {scorer.name}: value uses {{{missing[0]}}}, which {where} does not have",
                           missing[0])
    return fill(text, item)


def _contains(answer: str, wanted: list[str], fold: bool, every: bool) -> Verdict:
    text = answer.lower() if fold else answer
    found = [w for w in wanted if (w.lower() if fold else w) in text]
    missing = [w for w in wanted if w not in found]
    if every:
        ok = not missing
        reason = "contains all of them" if ok else f"lacks {', '.join(repr(m) for m in missing)}"
    else:
        ok = bool(found)
        reason = f"contains {found[0]!r}" if ok else f"contains none of {', '.join(repr(w) for w in wanted)}"
    return Verdict(len(found) / len(wanted) if every else float(ok), ok, reason)


def _json(answer: str) -> tuple[Any, str | None]:
    try:
        return json.loads(answer), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"


def _matches(answer: str, schema: Mapping[str, Any]) -> Verdict:
    """Whether the answer is JSON of this schema; the reason names the first mismatch and where it is."""
    import jsonschema

    data, problem = _json(answer)
    if problem:
        return Verdict(0.0, False, problem)
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(data), key=lambda e: list(e.path))
    where = "/".join(str(p) for p in errors[0].path) if errors else ""
    return _bool(not errors, "matches the schema",
                 f"does not match the schema: {errors[0].message}" + (f" at {where}" if where else "")
                 if errors else "")


def _bool(ok: bool, yes: str, no: str) -> Verdict:
    return Verdict(float(ok), ok, yes if ok else no)


def plain(scorer, item: Mapping[str, Any], answer: str) -> Verdict:
    """The deterministic scorer's verdict, before negation."""
    kind = scorer.type
    wanted = expected(scorer, item)
    if kind in ("equals", "iequals"):
        a, b = answer.strip(), str(wanted).strip()
        ok = a.lower() == b.lower() if kind == "iequals" else a == b
        return _bool(ok, "equals the expected text", f"differs from the expected {b[:80]!r}")
    if kind in ("contains", "icontains"):
        return _contains(answer, [str(wanted)], kind == "icontains", True)
    if kind.endswith(("-any", "-all")):
        return _contains(answer, list(wanted), kind.startswith("i"), kind.endswith("-all"))
    if kind == "starts-with":
        return _bool(answer.lstrip().startswith(str(wanted)), "starts as expected",
                     f"does not start with {str(wanted)[:80]!r}")
    if kind == "regex":
        found = re.search(scorer.value, answer)
        return _bool(found is not None, f"matches at {found.group(0)[:60]!r}" if found else "",
                     f"does not match /{scorer.value}/")
    if kind == "is-json" and scorer.value is None:
        _, problem = _json(answer)
        return _bool(problem is None, "is JSON", problem or "")
    if kind in ("is-json", "json-schema"):  # is-json with a schema: its own `value`, or the task's `schema`
        return _matches(answer, scorer.value)
    if kind == "length":
        n = len(answer)
        low_ok = scorer.min is None or n >= scorer.min
        high_ok = scorer.max is None or n <= scorer.max
        bounds = f"{scorer.min if scorer.min is not None else 0}..{scorer.max if scorer.max is not None else '∞'}"
        return _bool(low_ok and high_ok, f"{n} characters, within {bounds}", f"{n} characters, outside {bounds}")
    if kind == "python":
        return _python(scorer, item, answer)
    raise ValueError(f"not a deterministic scorer type: {kind}")


def function(s):
    """The `module:function` of a python scorer, imported; a ConfigError when it cannot be."""
    module_name, _, attribute = (s.function or "").partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"scorer {s.name}: function={s.function!r} must be written module:function")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # noqa: BLE001 - whatever its import raises, the user sees one line
        raise ConfigError(f"scorer {s.name}: function={s.function!r} does not import: "
                          f"{type(exc).__name__}: {exc}") from None
    if not callable(found):
        raise ConfigError(f"scorer {s.name}: function={s.function!r} is not a function")
    return found


def _python(scorer, item: Mapping[str, Any], answer: str) -> Verdict:
    result = function(scorer)(answer, dict(item))
    threshold = 0.5 if scorer.threshold is None else scorer.threshold
    if isinstance(result, bool):
        return _bool(result, f"{scorer.function} returned true", f"{scorer.function} returned false")
    if isinstance(result, (int, float)):
        return Verdict(_unit(result, scorer.function), result >= threshold, f"{scorer.function} returned {result:g}")
    if isinstance(result, Mapping):
        score = result.get("score")
        passed = result.get("pass")
        if score is None and passed is None:
            raise ValueError(f"{scorer.function} returned a dict with neither score nor pass")
        score = float(passed) if score is None else _unit(score, scorer.function)
        passed = score >= threshold if passed is None else bool(passed)
        return Verdict(score, passed, str(result.get("reason") or f"{scorer.function}: {score:g}"))
    raise ValueError(f"{scorer.function} returned {type(result).__name__}, not bool, float or dict")


def _unit(value, where: str) -> float:
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise ValueError(f"{where} returned the score {value!r}, not a number from 0 to 1")
    return number


def verdict(scorer, item: Mapping[str, Any], answer: str) -> Verdict:
    """The deterministic scorer's verdict on one answer, negated for `not-` types."""
    found = plain(scorer, item, answer)
    if not scorer.negate:
        return found
    return Verdict(1.0 - found.score, not found.passed, f"not {scorer.type}: {found.reason}")
