"""A task's items: an inline list in YAML, or a CSV, JSONL, JSON or YAML file of them.

Every item becomes a dict of template fields. A plain string item becomes {"input": text}. The `item`
column of the results names each item by its `id` field when it has one, otherwise by its first field.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from runner.errors import ConfigError

SUFFIXES = (".csv", ".jsonl", ".json", ".yaml", ".yml")


def _as_item(value: Any, where: str) -> dict:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return {"input": str(value)}
    raise ConfigError(f"{where}: item {value!r} must be text or a mapping of fields")


def _jsonl(text: str, path: Path, where: str) -> list:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:  # its own line number: json counts from the start of the line
            raise ConfigError(f"{where}: {path} is not valid JSONL: line {number}, column {exc.colno}: "
                              f"{exc.msg}") from None
    return items


def _read_file(path: Path, where: str) -> list:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{where}: {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): "
                          f"save it as UTF-8") from None
    suffix = path.suffix.lower()  # items.CSV is a CSV file too
    try:
        if suffix == ".csv":
            return list(csv.DictReader(text.splitlines()))
        if suffix == ".jsonl":
            return _jsonl(text, path, where)
        if suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, csv.Error) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: {path} is not valid {suffix[1:].upper()}: {first}") from None
    if isinstance(data, Mapping) and "inputs" in data:
        data = data["inputs"]
    if not isinstance(data, list):
        raise ConfigError(f"{where}: {path} must hold a list of items (or a mapping with an 'inputs' list)")
    return data


def load_inputs(value: Any, where: str = "task.inputs") -> list[dict]:
    """The items, or a ConfigError: a task with no items would run nothing and still exit as if it had."""
    if isinstance(value, str):
        path = Path(value).expanduser()
        if path.suffix.lower() not in SUFFIXES:
            # a single inline item, e.g. task.inputs=https://example.com
            return [_as_item(value, where)]
        if not path.is_file():
            raise ConfigError(f"{where}: file '{value}' not found (relative paths start at {Path.cwd()})")
        items = _read_file(path, where)
        if not items:
            shape = {".csv": "a header line, then one line per item", ".jsonl": "one JSON object per line"}
            needs = shape.get(path.suffix.lower(), "a list of items")
            raise ConfigError(f"{where}: {path} holds no items (it needs {needs})")
    elif isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            raise ConfigError(f"{where} is an empty list: give at least one item, "
                              f"e.g. 'task.inputs=[{{audience: owls}}]'")
    elif value is None:
        raise ConfigError(f"{where} is not set: give a list of items or a path to a CSV/JSONL/YAML file")
    else:
        raise ConfigError(f"{where}={value!r} must be a list of items or a path to a CSV/JSONL/YAML file")
    return [_as_item(item, f"{where}[{i}]") for i, item in enumerate(items)]


def item_label(item: Mapping[str, Any], index: int) -> str:
    """A short, stable name for an item, used in the `item` column and the report."""
    value = item.get("id")
    if value is None and item:
        value = next(iter(item.values()))
    text = " ".join(str(value if value is not None else index).split())
    return text if len(text) <= 80 else text[:77] + "..."
