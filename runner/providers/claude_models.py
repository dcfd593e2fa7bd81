"""What each generation of Claude takes: how it thinks (a token budget, or adaptive thinking with an effort),
which values of model.reasoning it takes, whether it thinks unless told otherwise, a temperature, an
assistant prefill, structured outputs, a forced tool call. Read from the model id, for models the
models.dev catalogue does not know (and for what the catalogue never says: efforts, prefill, the wire).

Checked 2026-12-07 against Anthropic's docs (thinking, extended thinking, effort, structured outputs, the
per-model thinking table) and the errors its API returns.
  - 3.7 Sonnet, Claude 4, 4.1, 4.5 (Haiku 4.5 too): `thinking: {type: enabled, budget_tokens: N}` only,
    off unless sent; a temperature and a prefill only without thinking.
  - 4.6 (Opus, Sonnet): adaptive thinking with `output_config.effort` (low, medium, high; max), off unless
    sent; budget_tokens deprecated; no prefill (HTTP 400); a temperature without thinking.
  - Opus 4.7, 4.8: adaptive only (`type: enabled` is a 400), xhigh added, off unless sent; no temperature
    at all ("`temperature` is deprecated for this model."), no prefill.
  - Claude 5 (Opus 5, Sonnet 5): thinks unless `type: disabled` is sent; effort high by default.
  - Sonnet 5.5: off only as `type: between_tools`; Opus 5.5: always thinks, effort medium by default;
    Fable and Mythos: always think. Forced tool calls are a 400 on the 5.5 line and Fable 5.1.
A Claude id this module cannot read (a newer naming) gets the newest generation's rules: adaptive thinking,
no temperature, no prefill, JSON by structured outputs, no forced tool.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

ADAPTIVE, BUDGET = "adaptive", "budget"
_BASE = ("low", "medium", "high")
_XHIGH = (*_BASE, "xhigh")


@dataclass(frozen=True)
class ClaudeFamily:
    name: str  # as the table of docs/reasoning.md names it
    thinking: str | None  # ADAPTIVE (type adaptive + output_config.effort) | BUDGET (type enabled) | None
    efforts: tuple[str, ...]  # the values of model.reasoning it takes
    # how hard it thinks when model.reasoning is null: None (it does not think), "none" (only when asked),
    # or the effort it thinks at by default
    default_effort: str | None
    off: str | None  # how model.reasoning=none goes out when it would think otherwise: "disabled", "between_tools"
    sampling: bool  # it takes a temperature (only when not thinking)
    prefill: bool  # it takes a last assistant message to continue (only when not thinking)
    structured_output: bool  # output_config.format with a JSON Schema
    forced_tool: bool  # tool_choice {type: tool} (only when not thinking)
    output_limit: int | None = None  # its max_tokens limit, thinking included (None: the catalogue's)


PLAIN = ClaudeFamily("Claude 3, 3.5", None, (), None, None, True, True, False, True)
BUDGETED = ClaudeFamily("3.7 Sonnet, Claude 4 to 4.5", BUDGET, ("none", *_BASE), "none", None, True, True, False,
                        True)
CLAUDE_46 = ClaudeFamily("Opus 4.6, Sonnet 4.6", ADAPTIVE, ("none", *_BASE), "none", None, True, False, True, True,
                         128_000)
CLAUDE_47 = ClaudeFamily("Opus 4.7, 4.8", ADAPTIVE, ("none", *_XHIGH), "none", None, False, False, True, True,
                         128_000)
CLAUDE_5 = ClaudeFamily("Opus 5, Sonnet 5", ADAPTIVE, ("none", *_XHIGH), "high", "disabled", False, False, True,
                        True, 128_000)
SONNET_55 = ClaudeFamily("Sonnet 5.5", ADAPTIVE, ("none", *_XHIGH), "high", "between_tools", False, False, True,
                         False, 128_000)
HAIKU_55 = ClaudeFamily("Haiku 5.5", ADAPTIVE, ("none", *_XHIGH), "medium", "disabled", False, False, True, True,
                        128_000)
OPUS_55 = ClaudeFamily("Opus 5.5", ADAPTIVE, _XHIGH, "medium", None, False, False, True, False, 128_000)
ALWAYS = ClaudeFamily("Fable, Mythos", ADAPTIVE, _XHIGH, "high", None, False, False, True, False, 128_000)
NEWEST = ClaudeFamily("a Claude id not known here", ADAPTIVE, _XHIGH, "high", None, False, False, True, False,
                      128_000)

_NEW = re.compile(r"claude-(opus|sonnet|haiku|fable|mythos)-(\d)(?:-(\d{1,2}))?$")  # claude-opus-4-8
_OLD = re.compile(r"claude-(\d)(?:-(\d))?-(opus|sonnet|haiku)$")  # claude-3-7-sonnet


def version(model_id: str) -> tuple[str, tuple[int, int]] | None:
    """(tier, (major, minor)) of a Claude model id, or None. Reads Anthropic's ids with or without their date
    (claude-sonnet-4-5-20250929, claude-opus-4-20250514), a gateway's prefix (anthropic/claude-opus-4-8) and
    Bedrock's (us.anthropic.claude-opus-4-6-v1:0)."""
    name = model_id.rsplit("/", 1)[-1].lower()
    name = re.sub(r"^(?:[a-z]{2,4}\.)?anthropic\.", "", name)
    name = re.sub(r"-v\d+(?::\d+)?$", "", name)
    name = re.sub(r"-(?:\d{8}|latest)$", "", name)
    if match := _NEW.match(name):
        return match.group(1), (int(match.group(2)), int(match.group(3) or 0))
    if match := _OLD.match(name):
        return match.group(3), (int(match.group(1)), int(match.group(2) or 0))
    return None


def family(model_id: str) -> ClaudeFamily:
    """The rules a Claude model follows, by its id."""
    known = version(model_id)
    if known is None:
        return NEWEST
    tier, v = known
    if v < (3, 7):
        return PLAIN
    if v < (4, 6):
        # structured outputs came with Opus 4.1 (beta) and the 4.5 models
        structured = v >= (4, 5) or (tier == "opus" and v >= (4, 1))
        limit = 32_000 if tier == "opus" and v < (4, 5) else 64_000
        return replace(BUDGETED, structured_output=structured, output_limit=limit)
    if v == (4, 6):
        return CLAUDE_46 if tier == "opus" else replace(CLAUDE_46, output_limit=64_000)
    if v < (5, 0):
        return CLAUDE_47
    if tier in ("fable", "mythos"):
        return ALWAYS
    if v < (5, 5):
        return CLAUDE_5
    if v == (5, 5):
        return {"opus": OPUS_55, "sonnet": SONNET_55, "haiku": HAIKU_55}[tier]
    return NEWEST
