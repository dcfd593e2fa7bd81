"""A cell's variant: what a job was told beyond model, task, prompt and temperature.

A sweep's cells are every combination it declares, so a swept `model.id`, `max_tokens`, `task.user`...
must keep its cells apart in every table, plot and in the history. The variant is the job's own Hydra
overrides other than those four dimensions and other than the run-control keys that cannot define a
cell, normalised: `+`/`++` prefixes dropped, sorted, joined by spaces (`max_tokens=64 model.id=gpt-4o`).

Labels show only what differs within one comparison: `gpt (model.id=gpt-4o)`; parts every row shares
are left out. No pandas here: the job imports this module.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

CELL_DIMENSIONS = {"model", "task", "prompt", "temperature"}
# keys that steer the run, not what a model is asked: the same cell whatever their value
RUN_CONTROL = {"cache", "cache_dir", "history", "dry_run", "budget_usd", "experiment",
               "scorer", "fail_under", "judges", "judge",  # how answers are scored is not what a model was asked
               "stats"}  # nor how the comparison tests them
# how hard and how fast a cell is asked, and how many samples it gets (and which: the seed): the same cell
# whatever their value, so a weekly run with one more retry or fewer calls in flight still compares with the
# week before, and a sweep over seeds is more samples of the same cells
RUN_CONTROL_KEYS = {"repeats", "seed", "model.concurrency", "model.rpm", "model.tpm", "model.timeout_s",
                    "model.max_attempts"}
_KEY = re.compile(r"^[+~]*([^=]*)=")
# a part starts after a space, at depth 0 outside quotes, with `key=` (values may hold spaces: task.user=a b)
_PART_START = re.compile(r"[+~]*[\w./@-]+=")


def key_of(override: str) -> str:
    match = _KEY.match(override.strip())
    return (match.group(1) if match else override.strip().lstrip("+~")).strip()


def defines_cell(key: str) -> bool:
    root = re.split(r"[./]", key, maxsplit=1)[0]
    return (key not in CELL_DIMENSIONS and key not in RUN_CONTROL_KEYS and root not in RUN_CONTROL
            and root != "hydra" and not (key == "task.scorers" or key.startswith("task.scorers.")))


def of(overrides: Iterable[str]) -> str:
    """The variant of a job with these Hydra overrides (`HydraConfig.get().overrides.task`)."""
    parts = []
    for override in overrides:
        override = str(override).strip()
        if override and defines_cell(key_of(override)):
            parts.append(override.lstrip("+"))
    return " ".join(sorted(parts))


def parts(variant: str) -> list[str]:
    """The overrides a variant joins (the inverse of `of`, for values with spaces, brackets or quotes too)."""
    found, start, depth, quote = [], 0, 0, ""
    text = variant or ""
    for i, char in enumerate(text):
        if quote:
            if char == quote and text[i - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(0, depth - 1)
        elif char == " " and depth == 0 and _PART_START.match(text, i + 1):
            found.append(text[start:i])
            start = i + 1
    if text[start:]:
        found.append(text[start:])
    return found


class Labels:
    """Names for the cells of one comparison: the model, plus the parts of its variant that not every
    variant in the comparison shares."""

    def __init__(self, variants: Iterable[str]) -> None:
        variants = {v if isinstance(v, str) else "" for v in variants}
        split = [set(parts(v)) for v in variants]
        self.common = set.intersection(*split) if split else set()

    def differing(self, variant) -> str:
        return " ".join(p for p in parts(variant if isinstance(variant, str) else "") if p not in self.common)

    def __call__(self, model, variant) -> str:
        shown = self.differing(variant)
        return f"{model} ({shown})" if shown else str(model)


def describe(variants: Iterable[str]) -> str:
    """The swept values of a set of variants, key by key: `max_tokens=8 model.id=gpt-4o,gpt-4o-mini`."""
    values: dict[str, list[str]] = {}
    for variant in variants:
        for part in parts(variant):
            key = key_of(part)
            value = part.split("=", 1)[1] if "=" in part else part
            values.setdefault(key, [])
            if value not in values[key]:
                values[key].append(value)
    return " ".join(f"{key}={','.join(vals)}" for key, vals in sorted(values.items()))
