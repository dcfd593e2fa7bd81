"""A JSON Schema from a config (a task's `schema`, a tool's parameters, a scorer's `value` or `schema`) checked
against its own metaschema before any call, or a ConfigError naming where it is and where in it it is wrong."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.errors import ConfigError


def check_schema(schema: Any, where: str) -> None:
    import jsonschema  # not at the top: only configs that declare a schema pay for it

    if not isinstance(schema, Mapping):
        raise ConfigError(f"{where} must be a JSON Schema (a mapping), got {schema!r}")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(part) for part in exc.path)  # where in the schema: "properties/links/type"
        raise ConfigError(f"{where} is not a valid JSON Schema: {exc.message}" + (f" (at {at})" if at else "")) \
            from None
