"""A judge's prompt and its verdict: the rubric filled with the question, the answer, the reference and the
item's fields, and the answer read back as `{"reason": str, "pass": bool, "score": 0..1}` (the convention
of promptfoo's llm-rubric). A verdict that is not that JSON is an error with the raw text, never a zero.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runner.scorers.checks import EXPECTED_FIELDS, Verdict
from runner.tasks.base import fill

SYSTEM = (
    "You are grading an answer according to a rubric. Read the question, the answer and, when given, the "
    "reference, then decide whether the answer meets the rubric. Respond only with a JSON object with this "
    'structure: {"reason": string, "pass": boolean, "score": number from 0.0 to 1.0}. Give the reason first.')
USER = """<Question>
{question}
</Question>
<Answer>
{answer}
</Answer>
{reference_block}<Rubric>
{rubric}
</Rubric>"""

VERDICT_SCHEMA = {
    "type": "object",
    "required": ["reason", "pass", "score"],
    "properties": {"reason": {"type": "string"}, "pass": {"type": "boolean"},
                   "score": {"type": "number", "minimum": 0, "maximum": 1}},
}


def reference(item: Mapping[str, Any]) -> str:
    return next((str(item[name]) for name in EXPECTED_FIELDS if item.get(name) is not None), "")


def messages(rubric: str, item: Mapping[str, Any], question: str, answer: str) -> list[dict]:
    """The judge's messages: the rubric's `{field}`s filled from the item, `{question}`, `{answer}` and
    `{reference}` (the item's `expected` or `reference`)."""
    ref = reference(item)
    fields = {**item, "question": question, "answer": answer, "reference": ref}
    body = USER.format(question=question, answer=answer, rubric=fill(rubric, fields),
                       reference_block=f"<Reference>\n{ref}\n</Reference>\n" if ref else "")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


def strip_fence(text: str) -> str:
    """Models often wrap JSON in a ```json fence even in JSON mode; the fence is not the verdict."""
    text = text.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3]
        text = text[4:] if text.lower().startswith("json") else text
    return text.strip()


def _not_json(constant: str):
    """Python's json reads NaN and Infinity, which JSON has not: a score of NaN would pass every bound of
    the schema (no comparison with NaN is true) and become a score."""
    raise ValueError(f"{constant} is not a number JSON allows")


def json_verdict(text: str, schema: dict) -> dict:
    """A judge's answer as the JSON object `schema` describes; ValueError (its message quotes the raw text,
    so the row in error shows what the judge said) when it is not one."""
    import jsonschema

    try:
        data = json.loads(strip_fence(text), parse_constant=_not_json)
        jsonschema.validate(data, schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else getattr(exc, "message", None) or str(exc)
        raw = " ".join(text.split())
        raise ValueError(f"the verdict is not the JSON asked for ({why}): {raw[:500]}") from None
    return data


def read_verdict(text: str, threshold: float | None = None) -> Verdict:
    """The judge's answer as a Verdict; ValueError (its message quotes the raw text) when it is not one.
    With a `threshold`, pass is score >= threshold rather than the judge's own pass."""
    data = json_verdict(text, VERDICT_SCHEMA)
    score = float(data["score"])
    passed = bool(data["pass"]) if threshold is None else score >= threshold
    return Verdict(score, passed, str(data["reason"]))
