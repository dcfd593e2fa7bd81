"""A pairwise judge's prompt and its verdict: two answers to the same question, shown as A and B, and the
judge's pick read back as `{"reason": str, "better": "A" | "B" | "tie"}` (the A/B/tie choice of MT-Bench's
and Arena-Hard's pairwise judges, as JSON with the reason first like the `judge` scorer's verdict). A verdict
that is not that JSON is an error with the raw text, never a tie.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.scorers.judge import json_verdict, reference
from runner.tasks.base import fill

SYSTEM = (
    "You are comparing two answers to the same question according to a rubric. Read the question, both "
    "answers and, when given, the reference, then decide which answer meets the rubric better. The order in "
    "which the answers are shown says nothing about their quality, and neither does their length. Respond "
    'only with a JSON object with this structure: {"reason": string, "better": "A" or "B" or "tie"}. '
    "Give the reason first.")
USER = """<Question>
{question}
</Question>
<Answer A>
{answer_a}
</Answer A>
<Answer B>
{answer_b}
</Answer B>
{reference_block}<Rubric>
{rubric}
</Rubric>"""

CHOICES = ("A", "B", "tie")
VERDICT_SCHEMA = {
    "type": "object",
    "required": ["reason", "better"],
    "properties": {"reason": {"type": "string"}, "better": {"enum": list(CHOICES)}},
}


def messages(rubric: str, item: Mapping[str, Any], question: str, answer_a: str, answer_b: str) -> list[dict]:
    """The judge's messages: the rubric's `{field}`s filled from the item, `{question}` and `{reference}`."""
    ref = reference(item)
    fields = {**item, "question": question, "reference": ref}
    body = USER.format(question=question, answer_a=answer_a, answer_b=answer_b, rubric=fill(rubric, fields),
                       reference_block=f"<Reference>\n{ref}\n</Reference>\n" if ref else "")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


def read_verdict(text: str) -> tuple[str, str]:
    """(better: "A", "B" or "tie", reason); ValueError (its message quotes the raw text) when it is not one."""
    data = json_verdict(text, VERDICT_SCHEMA)
    return str(data["better"]), str(data["reason"])
