"""What goes wrong before any call, in the user's terms: `ConfigError`, and `one_line` for the multi-line
messages of Hydra, OmegaConf and YAML. Imports nothing of the runner's: every layer may raise these."""
from __future__ import annotations


class ConfigError(ValueError):
    """Bad configuration or input: reported as one line, exit code 2, before any call."""


# what a knob must hold, for overrides Hydra cannot merge into it ("Error merging override ...")
EXPECTED = {"task.inputs": "must be a list of items or a path to a CSV/JSONL/YAML file, "
                           "e.g. 'task.inputs=[{audience: owls}]' or task.inputs=items.csv"}


def _yaml_line(exc) -> str:
    """A YAML syntax error as one line: the file, the line and column, and what is wrong there."""
    mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    text = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    if getattr(exc, "context", None):
        text += f" ({exc.context}" + (f" that starts at line {context.line + 1})" if context is not None else ")")
    if mark is None:
        return f"not valid YAML: {text}"
    return f"{mark.name}: not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {text}"


def _merge_line(head: str, exc: BaseException) -> str:
    override = head[len("Error merging override "):].strip()
    key = override.partition("=")[0].lstrip("+~")
    if key in EXPECTED:
        return f"{override}: {key} {EXPECTED[key]}"
    cause = exc.__cause__ or exc.__context__
    reason = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
    return f"{override}: {reason}" if reason else head


def one_line(exc: BaseException) -> str:
    """Hydra's, OmegaConf's and YAML's multi-line messages, as one line that keeps what names the bad value."""
    import yaml

    if isinstance(exc, yaml.YAMLError):
        return _yaml_line(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, yaml.YAMLError):  # Hydra wraps the parser's error when it loads a config file
        return _yaml_line(cause)
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    head = lines[0]
    if head.startswith("Error merging override "):
        return _merge_line(head, exc)
    if "Available options in" in text:
        options = []
        grab = False
        for line in lines[1:]:
            if line.startswith("Available options in"):
                grab = True
                continue
            if grab:
                if line.startswith("Config search path") or ":" in line:
                    break
                options.append(line)
        if options:
            head = f"{head} (available: {', '.join(options)})"
    elif len(lines) > 1 and not lines[1].startswith(("full_key", "object_type", "Set the environment")):
        head = f"{head} {lines[1]}"
    return head
