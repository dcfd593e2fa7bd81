"""A task's items: an inline list in YAML, or a CSV, JSONL, JSON or YAML file of them.

Every item becomes a dict of template fields. A plain string item becomes {"input": text}. The `item`
column of the results names each item by its `id` field when it has one, otherwise by its first field.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from runner.settings import ConfigError

SUFFIXES = (".csv", ".jsonl", ".json", ".yaml", ".yml")


def _as_item(value: Any, where: str) -> dict:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return {"input": str(value)}
    raise ConfigError(f"{where}: item {value!r} must be text or a mapping of fields")


def _read_file(path: Path, where: str) -> list:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".csv":
            return list(csv.DictReader(text.splitlines()))
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, csv.Error) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: {path} is not valid {path.suffix[1:].upper()}: {first}") from None
    if isinstance(data, Mapping) and "inputs" in data:
        data = data["inputs"]
    if not isinstance(data, list):
        raise ConfigError(f"{where}: {path} must hold a list of items")
    return data


def load_inputs(value: Any, where: str = "task.inputs") -> list[dict]:
    if value is None:
        return []
    if isinstance(value, str):
        path = Path(value).expanduser()
        if path.suffix.lower() not in SUFFIXES:
            # a single inline item, e.g. task.inputs=https://example.com
            return [_as_item(value, where)]
        if not path.is_file():
            raise ConfigError(f"{where}: file '{value}' not found (relative paths start at {Path.cwd()})")
        items = _read_file(path, where)
    elif isinstance(value, (list, tuple)):
        items = list(value)
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
