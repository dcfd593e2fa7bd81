"""Scorers: what a run's answers are judged by, from the `scorer` config group and the task's `scorers`.

A scorer is data (promptfoo's assertions are the model): a `type` (equals, contains, regex, is-json,
json-schema, length, python, judge...), optionally prefixed `not-` to negate it, a `value`, and where it
applies (`step`). Everything a user can mistype is checked here, before any call: an unknown type, a broken
regex or JSON Schema, a `module:function` that does not import, a judge model config that does not exist.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from runner.errors import ConfigError
from runner.json_schema import check_schema
from runner.scorers import checks, tool_use
from runner.settings import ModelSettings, RunSettings

# type -> what its `value` is
TYPES = {
    "equals": "the expected text (default: the item's `expected` or `reference` field)",
    "iequals": "the expected text, case-insensitive",
    "contains": "a text the answer must contain",
    "icontains": "the same, case-insensitive",
    "contains-any": "a list: the answer contains at least one",
    "icontains-any": "the same, case-insensitive",
    "contains-all": "a list: the answer contains every one",
    "icontains-all": "the same, case-insensitive",
    "regex": "a regular expression the answer must match (re.search)",
    "starts-with": "a text the answer must start with",
    "is-json": "nothing: the answer is JSON (matching the task's `schema` if it has one); or a JSON Schema to match",
    "json-schema": "a JSON Schema (a mapping) the answer's JSON must match",
    "length": "nothing: `min` and/or `max` characters",
    "python": "`function: module:function`, called with (answer, item)",
    "judge": "a rubric: `rubric` and `judges` (model config names)",
    "pairwise": "a rubric: `rubric` and `judges`; two cells' answers to the same item compared, over a sweep",
    "tool_called": "the tool's name (default: the item's `tool`); `arguments` (a subset, default the item's "
                   "`arguments`) or `schema` (a JSON Schema) the call's arguments must match; a tools task's cell",
    "no_tool": "nothing: the cell called no tool (a task's default: the items whose `tool` is none)",
}
KEYS = {"type", "value", "field", "min", "max", "function", "threshold", "step", "rubric", "judges", "arguments",
        "schema"}
TOOL_TYPES = ("tool_called", "no_tool")  # scored on the tool calls of the whole cell, not on its answer's text
JUDGE_PREFIX = "judge"  # results.jsonl rows whose step starts with this are judging calls, not answers


@dataclass(frozen=True)
class Scorer:
    name: str
    type: str  # one of TYPES, without the `not-` prefix
    negate: bool = False
    value: Any = None
    field: str | None = None  # the item's field that holds the expected value
    min: int | None = None
    max: int | None = None
    function: str | None = None
    threshold: float | None = None  # pass when score >= threshold (python floats, judges' scores)
    step: str | None = None  # which calls it scores: a glob on `step`; None: each item's final answer
    rubric: str = ""
    judges: tuple[str, ...] = ()
    # False for a task's own default scorer the user did not name: it scores the items that have the
    # fields it reads, and the others get a skipped row saying why (n/a), not a config error
    required: bool = True
    arguments: Any = None  # tool_called: what the call's arguments must include (item fields filled in)
    schema: Any = None  # tool_called: a JSON Schema the call's arguments must match

    @property
    def is_tool_use(self) -> bool:
        """Scores the cell's tool calls (runner.scorers.tool_use), not its answer's text."""
        return self.type in TOOL_TYPES

    @property
    def is_judge(self) -> bool:
        return self.type == "judge"

    @property
    def is_pairwise(self) -> bool:
        """Compares two cells' answers: judged once over a whole sweep (runner.calling.pairwise), not per job."""
        return self.type == "pairwise"

    def applies_to(self, step: str) -> bool:
        return self.step is not None and fnmatch.fnmatchcase(step, self.step)


def judge_step(scorer: str, answered_step: str) -> str:
    """The `step` of a judging call in results.jsonl: starts with `judge`, names the scorer and the step judged."""
    return f"{JUDGE_PREFIX}-{scorer}" + (f"@{answered_step}" if answered_step else "")


def _where(name: str, key: str) -> str:
    return f"scorer {name}: {key}"


def parse(name: str, raw: Any, required: bool = True) -> Scorer:
    """One scorer's config (a mapping) as a checked Scorer, or a ConfigError naming what is wrong."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"scorer {name}: must be a mapping with a `type` (got {raw!r})")
    unknown = set(raw) - KEYS
    if unknown:
        raise ConfigError(f"scorer {name}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(KEYS))})")
    kind = str(raw.get("type") or "")
    negate = kind.startswith("not-")
    base = kind[4:] if negate else kind
    if base not in TYPES:
        raise ConfigError(f"scorer {name}: type={kind!r} is not a scorer type (known: {', '.join(TYPES)}; "
                          f"prefix not- to negate)")
    if negate and base in ("judge", "pairwise"):
        raise ConfigError(f"scorer {name}: a {base} scorer cannot be negated; write the rubric the other way round")
    threshold = raw.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0 <= threshold <= 1):
        raise ConfigError(f"{_where(name, 'threshold')}={threshold!r} must be a number from 0 to 1")
    judges = raw.get("judges") or ()
    if isinstance(judges, str):
        judges = (judges,)
    scorer = Scorer(
        name=name, type=base, negate=negate, value=raw.get("value"),
        field=None if raw.get("field") is None else str(raw["field"]),
        min=_bound(raw.get("min"), name, "min"), max=_bound(raw.get("max"), name, "max"),
        function=None if raw.get("function") is None else str(raw["function"]),
        threshold=None if threshold is None else float(threshold),
        step=None if raw.get("step") is None else str(raw["step"]),
        rubric=str(raw.get("rubric") or ""), judges=tuple(str(j) for j in judges), required=required,
        arguments=raw.get("arguments"), schema=raw.get("schema"))
    _check(scorer)
    return scorer


def _is_judge(raw: Any) -> bool:
    return isinstance(raw, Mapping) and raw.get("type") == "judge"


def _bound(value, name: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{_where(name, key)}={value!r} must be a whole number >= 0")
    return value


def _check(s: Scorer) -> None:
    """What can be checked of one scorer without the task's items."""
    for key in ("arguments", "schema"):
        if getattr(s, key) is not None and s.type != "tool_called":
            raise ConfigError(f"scorer {s.name}: `{key}` is for type tool_called, not {s.type}")
    if s.type == "regex":
        if not isinstance(s.value, str):
            raise ConfigError(f"{_where(s.name, 'value')} must be a regular expression (text)")
        try:
            re.compile(s.value)
        except re.error as exc:
            raise ConfigError(f"{_where(s.name, 'value')}={s.value!r} is not a valid regex: {exc}") from None
    elif s.type.endswith(("-any", "-all")):
        if s.value is not None and (not isinstance(s.value, (list, tuple)) or not s.value):
            raise ConfigError(f"{_where(s.name, 'value')} must be a non-empty list for type {s.type}")
    elif s.type == "json-schema" or (s.type == "is-json" and s.value is not None):
        check_schema(s.value, _where(s.name, "value"))
    elif s.type == "length" and s.min is None and s.max is None:
        raise ConfigError(f"scorer {s.name}: type length needs `min` or `max` (characters)")
    elif s.type == "python":
        checks.function(s)
    elif s.type == "judge":
        if not s.rubric.strip():
            raise ConfigError(f"scorer {s.name}: a judge needs a `rubric`")
    elif s.type == "tool_called":
        if s.arguments is not None and not isinstance(s.arguments, Mapping):
            raise ConfigError(f"{_where(s.name, 'arguments')} must be a mapping of argument -> value (a subset of "
                              f"the call's arguments)")
        if s.schema is not None:
            check_schema(s.schema, _where(s.name, "schema"))
    elif s.type == "pairwise":
        if not s.rubric.strip():
            raise ConfigError(f"scorer {s.name}: a pairwise scorer needs a `rubric` (what makes one answer better)")
        if not s.judges:
            raise ConfigError(f"scorer {s.name}: a pairwise scorer needs `judges` (model config names), "
                              f"e.g. 'scorer.{s.name}.judges=[gpt]'")


def scorers_for(run: RunSettings) -> list[Scorer]:
    """The run's scorers: the task's `scorers`, then the `scorer` group's (a scorer of the same name
    replaces the task's), each checked. The task's own that the command line does not name are its
    defaults (`required=False`)."""
    merged: dict[str, Any] = {**dict(run.task.scorers or {}), **dict(run.scorers or {})}
    defaults = set(run.task.scorers or {}) - set(run.scorers or {}) - set(run.named_scorers)
    # a task's judge reads `judges: ${judges}`: until the run names who judges, it is off (no call, no row)
    scorers = [parse(str(name), raw, required=name not in defaults) for name, raw in merged.items()
               if raw is not None and not (_is_judge(raw) and not raw.get("judges"))]
    if run.task.schema is not None:  # the answers were asked for in the task's schema: is-json checks them by it
        scorers = [replace(s, value=dict(run.task.schema)) if s.type == "is-json" and s.value is None else s
                   for s in scorers]
    names = {s.name for s in scorers}
    if isinstance(run.fail_under, Mapping):
        for name in run.fail_under:
            if any(s.name == name and s.is_pairwise for s in scorers):
                raise ConfigError(f"fail_under.{name}: {name} is a pairwise scorer: it ranks cells against "
                                  f"each other and gives no score to gate on")
            if name not in names:
                raise ConfigError(f"fail_under.{name}: no scorer is named {name!r} "
                                  f"(this run's scorers: {', '.join(sorted(names)) or 'none'})")
    elif run.fail_under is not None and all(s.is_pairwise for s in scorers):
        raise ConfigError("fail_under is set but the run has no scorers: add some with scorer=... or the "
                          "task's `scorers`")
    return scorers


def check_items(scorers: list[Scorer], run: RunSettings) -> None:
    """Every scorer the user asked for that reads an item field finds it in every item (before any call).
    A task's default scorer is not checked here: it scores the items that have its fields
    (runner.calling.scoring says n/a for the others)."""
    for s in (s for s in scorers if s.required):
        for index, item in enumerate(run.task.inputs):
            (tool_use.expected_tool if s.is_tool_use else checks.expected)(s, item, f"task.inputs[{index}]")


def judge_models(scorers: list[Scorer]) -> dict[str, ModelSettings]:
    """Every judge's model config, composed from conf/model/ (or --config-dir) by name."""
    from runner.tasks.debate import compose_model

    models: dict[str, ModelSettings] = {}
    for s in scorers:
        for name in s.judges:
            if name not in models:
                models[name] = compose_model(name, where=f"scorer {s.name}: judges")
    return models
