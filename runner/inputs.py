"""A task's items: an inline list in YAML, or a CSV, JSONL, JSON or YAML file of them.

Every item becomes a dict of template fields. A plain string item becomes {"input": text}. The `item`
column of the results names each item by its `id` field when it has one, otherwise by its first field.

CSV and JSONL files are read lazily: they are checked in one pass before any call (every line decoded and
parsed, every item's shape, the count), then read again, item by item, as the calls go: a job of 100,000
items never holds them all. JSON and YAML files are one document, read whole.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
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


STREAMED = (".csv", ".jsonl")


def _lines(path: Path, where: str) -> Iterator[str]:
    """The file's lines, decoded as UTF-8 (a byte-order mark is dropped), one at a time."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{where}: {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line "
                                  f"{number}): save it as UTF-8") from None


def _raw_items(path: Path, where: str) -> Iterator:
    """The items of a CSV or JSONL file as they are read, before they become field dicts."""
    if path.suffix.lower() == ".csv":
        try:
            yield from csv.DictReader(_lines(path, where))
        except csv.Error as exc:
            raise ConfigError(f"{where}: {path} is not valid CSV: {str(exc).splitlines()[0]}") from None
        return
    for number, line in enumerate(_lines(path, where), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:  # its own line number: json counts from the start of the line
            raise ConfigError(f"{where}: {path} is not valid JSONL: line {number}, column {exc.colno}: "
                              f"{exc.msg}") from None


class StreamedItems(Sequence):
    """The items of a CSV or JSONL file, read from it again on every pass over them, one at a time.
    Built by `load_inputs` after a first pass has checked every item, so a pass raises nothing."""

    def __init__(self, path: Path, where: str, count: int) -> None:
        self.path, self.where, self.count = path, where, count

    def __iter__(self) -> Iterator[dict]:
        for index, value in enumerate(_raw_items(self.path, self.where)):
            yield _as_item(value, f"{self.where}[{index}]")

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += self.count
        found = next(islice(iter(self), index, None), None) if 0 <= index < self.count else None
        if found is None:
            raise IndexError(index)
        return found

    def __repr__(self) -> str:
        return f"StreamedItems({str(self.path)!r}, {self.count} items)"


def _streamed(path: Path, where: str) -> StreamedItems:
    """Check every item of the file in one pass, holding none of them."""
    count = 0
    for index, value in enumerate(_raw_items(path, where)):
        _as_item(value, f"{where}[{index}]")
        count += 1
    return StreamedItems(path, where, count)


def _read_file(path: Path, where: str) -> list:
    text = "".join(_lines(path, where))
    suffix = path.suffix.lower()
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: {path} is not valid {suffix[1:].upper()}: {first}") from None
    if isinstance(data, Mapping) and "inputs" in data:
        data = data["inputs"]
    if not isinstance(data, list):
        raise ConfigError(f"{where}: {path} must hold a list of items (or a mapping with an 'inputs' list)")
    return data


def load_inputs(value: Any, where: str = "task.inputs") -> Sequence[dict]:
    """The items, or a ConfigError: a task with no items would run nothing and still exit as if it had.
    A CSV or JSONL file's items are read lazily (StreamedItems); the others are a tuple."""
    if isinstance(value, str):
        path = Path(value).expanduser()
        if path.suffix.lower() not in SUFFIXES:
            # a single inline item, e.g. task.inputs=https://example.com
            return (_as_item(value, where),)
        if not path.is_file():
            raise ConfigError(f"{where}: file '{value}' not found (relative paths start at {Path.cwd()})")
        items = _streamed(path, where) if path.suffix.lower() in STREAMED else _read_file(path, where)
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
    if isinstance(items, StreamedItems):
        return items
    return tuple(_as_item(item, f"{where}[{i}]") for i, item in enumerate(items))


def item_label(item: Mapping[str, Any], index: int) -> str:
    """A short, stable name for an item, used in the `item` column and the report."""
    value = item.get("id")
    if value is None and item:
        value = next(iter(item.values()))
    text = " ".join(str(value if value is not None else index).split())
    return text if len(text) <= 80 else text[:77] + "..."
