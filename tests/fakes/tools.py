"""How the fake models behave when they are offered tools: one scripted "brain" every fake (OpenAI, Anthropic,
Gemini, Ollama) consults, each translating its own wire format into the question asked, the tools offered and
the tool results that followed it, and the brain's decision back into its own wire format.

The brain reads the last user question. With no tool result after it yet, it calls `get_ticket_price` (the
first tool offered whose name says price, else the first tool) once for each city the question names, all in
one turn (parallel calls); a question naming no city is answered in text without a call. After the results, it
answers in text with what they said. Words in the question script the faults a test needs:
- "bad arguments": its first call uses the wrong argument name (`city`), then corrects it when the tool's
  result says the arguments were wrong;
- "keep calling": it never stops calling the tool (a max_tool_rounds test);
- "wrong tool": it calls a tool that was not offered, then the right one.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

CITIES = ("London", "Paris", "Tokyo", "Berlin", "Atlantis", "Sydney", "Rome")


@dataclass
class Result:
    name: str
    content: str
    is_error: bool = False


@dataclass
class Decision:
    calls: list[tuple[str, dict]] = field(default_factory=list)  # (name, arguments)
    text: str = ""


def cities(question: str) -> list[str]:
    return [city for city in CITIES if re.search(rf"\b{city}\b", question)]


def price_tool(tools: list[str]) -> str:
    return next((name for name in tools if "price" in name), tools[0])


def decide(question: str, tools: list[str], results: list[Result], rounds: int) -> Decision:
    """What the model does: `results` are the tool results since the question, `rounds` the rounds of calls
    it has made since the question."""
    tool = price_tool(tools)
    named = cities(question)
    if not named:
        return Decision(text="Hello! I can tell you the price of a return ticket to any city we fly to.")
    if "keep calling" in question:
        return Decision(calls=[(tool, {"destination_city": named[0]})])
    if rounds == 0:
        if "bad arguments" in question:
            return Decision(calls=[(tool, {"city": named[0]})])
        if "wrong tool" in question:
            return Decision(calls=[("get_price", {"destination_city": named[0]})])
        return Decision(calls=[(tool, {"destination_city": city}) for city in named])
    if rounds == 1 and any(r.is_error and "error:" in r.content for r in results) and \
            ("bad arguments" in question or "wrong tool" in question):
        return Decision(calls=[(tool, {"destination_city": named[0]})])
    said = []
    for result in results:
        try:
            data = json.loads(result.content)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "price" in data:
            said.append(f"A return ticket to {data.get('destination_city', '?')} costs {data['price']}.")
        else:
            said.append(f"Sorry, I could not get that fare ({result.content[:80]}).")
    return Decision(text=" ".join(said) or "Sorry, I do not know.")


def argument_text(arguments: dict, pieces: int = 3) -> list[str]:
    """A call's arguments as JSON text cut in pieces, the way the APIs stream them."""
    text = json.dumps(arguments)
    size = max(1, len(text) // pieces + 1)
    return [text[i:i + size] for i in range(0, len(text), size)]
