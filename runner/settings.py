"""Typed, checked view of one job's Hydra config.

Hydra composes YAML and overrides; this module turns the result into frozen dataclasses and rejects
anything a user could have mistyped (unknown keys, wrong types, values out of range) with a
`ConfigError` whose message is one line naming the bad value and where it came from. Nothing here
calls a model, touches the network or writes a file. The names only a registry knows (a model's
provider and SDK, a task's kind and its own options) are checked by the registries (runner.providers,
runner.tasks) when a provider or task is built, which preflight does for every job before any call.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from runner.calls import EFFORTS, MODALITIES
from runner.errors import ConfigError
from runner.inputs import load_inputs
from runner.json_schema import check_schema


@dataclass(frozen=True)
class Price:
    """USD per million tokens, for models a price library does not know (self-hosted, private)."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class ModelSettings:
    name: str  # the config name users sweep over: gpt, claude, local...
    provider: str  # key into runner.providers.PROVIDERS (checked there)
    id: str  # the API's model id (or the GGUF file name for the embedded model)
    base_url: str | None = None
    api_key_env: str | None = None  # environment variable holding the key (OpenAI-compatible endpoints)
    sdk: str | None = None  # alternative SDK for the same provider (gemini: generativeai)
    path: str | None = None  # local GGUF path (embedded model)
    n_ctx: int = 2048
    repack: bool = False  # embedded model: let llama.cpp repack weights for AVX-512/AMX (crashes on some AMX CPUs)
    stream: bool = True
    concurrency: int = 4
    rpm: int | None = None
    tpm: int | None = None
    timeout_s: float = 120.0
    max_attempts: int = 4
    temperature_max: float = 2.0
    price: Price | None = None
    price_provider: str | None = None  # provider id in the price library when it differs from `provider`
    batch: bool = False  # send the job's calls through the provider's batch API, at batch prices
    reasoning: str | None = None  # how hard it thinks: null (its own default) or one of runner.calls.EFFORTS
    # What it takes, where the catalogue (models.dev) is wrong or does not know the model; null: looked up
    # (runner.providers.capabilities)
    reasoning_model: bool | None = None  # it reasons (thinks before it answers)
    reasoning_efforts: tuple[str, ...] | None = None  # the values of model.reasoning it takes
    takes_temperature: bool | None = None  # false: never send it a temperature
    structured_output: bool | None = None  # it answers to a JSON Schema
    tool_call: bool | None = None
    input_modalities: tuple[str, ...] | None = None  # text, image, audio, video, pdf
    max_output_tokens: int | None = None  # its output limit, thinking included


BATCH_RETRY = ("direct", "batch", "none")


@dataclass(frozen=True)
class JudgeSettings:
    """How every judge is called (judge and pairwise scorers), the same in every cell of every run: a judge
    is the instrument that measures the cells, so the cell's temperature and max_tokens never reach it.
    Everything a judge's call is sent besides its messages is decided here and only here."""

    temperature: float = 0.0
    max_tokens: int = 1024  # room for the verdict's reason; a verdict cut short is no verdict


@dataclass(frozen=True)
class BatchSettings:
    """How batch runs (`model.batch=true`) wait and what becomes of requests the provider failed."""

    wait: bool = True  # false: submit, say how to collect, exit; a later run of the same command collects
    retry_failed: str = "direct"  # direct | batch | none: what happens to requests the batch failed
    poll_s: float = 15.0  # the first wait between status checks; it grows by half each time, up to max_poll_s
    max_poll_s: float = 300.0


ADJUSTMENTS = ("holm", "bh")


@dataclass(frozen=True)
class StatsSettings:
    """How the comparison tells a difference from noise, and how big a difference the sweep can see."""

    alpha: float = 0.05  # a difference counts when its adjusted p-value is below this (95% confidence)
    adjust: str = "holm"  # holm: no false "better" anywhere, 95% of the time; bh: at most 5% of them false
    power: float = 0.8  # the detectable difference is the one found this often
    detect: float | None = None  # a difference to detect: the report and the dry run say how many items it needs
    assumed_sd: float = 0.5  # the dry run's guess at the spread of two cells' per-item score differences


@dataclass(frozen=True)
class TaskSettings:
    name: str
    kind: str  # key into runner.tasks.TASKS (checked there)
    system: str = ""
    user: str = "{input}"
    inputs: Sequence[dict] = ()  # a tuple, or a CSV/JSONL file's items read as they are needed (runner.inputs)
    options: Mapping[str, Any] = field(default_factory=dict)  # the task kind's own knobs (turns, opponent...)
    scorers: Mapping[str, Any] = field(default_factory=dict)  # the task's default scorers (runner.scorers)
    # a JSON Schema the task's answers follow: sent with each answer call (structured outputs where the model has
    # them), and what an is-json scorer without its own schema checks the answers against; None: free text
    schema: Mapping[str, Any] | None = None
    # the item fields whose values are images sent with the prompt: a file path or an http(s) URL each
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSettings:
    name: str
    system: str | None = None  # replaces the task's system prompt
    append: str = ""  # added to the end of the system prompt


@dataclass(frozen=True)
class RunSettings:
    model: ModelSettings
    task: TaskSettings
    prompt: PromptSettings
    temperature: float
    max_tokens: int
    repeats: int
    cache: str  # "on", "off" or "refresh"
    dry_run: bool
    budget_usd: float | None
    cache_dir: str | None
    history: str | None
    batch: BatchSettings = field(default_factory=BatchSettings)
    scorers: Mapping[str, Any] = field(default_factory=dict)  # the `scorer` group's, checked by runner.scorers
    fail_under: float | Mapping[str, float] | None = None  # the quality gate: overall, or per scorer
    judges: tuple[str, ...] = ()  # who judges the tasks' judge scorers (`judges: ${judges}` in conf/task/)
    judge: JudgeSettings = field(default_factory=JudgeSettings)  # how every judge is called
    named_scorers: frozenset[str] = frozenset()  # task scorers the command line names: required, not defaults
    seed: int | None = None  # None: a fresh seed per call; a number: repeat k of every cell sends seed + k
    stats: StatsSettings = field(default_factory=StatsSettings)  # how differences are tested and planned


TOP_LEVEL = {
    "model", "task", "prompt", "temperature", "max_tokens", "repeats", "cache", "dry_run",
    "budget_usd", "cache_dir", "history", "batch", "scorer", "fail_under", "judges", "judge", "seed", "stats",
}
TASK_KEYS = {"name", "kind", "system", "user", "inputs", "scorers", "schema", "images"}
# Seeds fit every API that takes one: Gemini's is an int32, llama.cpp's a uint32 (its largest means "random")
MAX_SEED = 2**31 - 1
# Above every API's own limit (the largest accept a few hundred thousand output tokens): a typo such as 1e20,
# refused before a dry run prices it or a call sends it
MAX_TOKENS_LIMIT = 1_000_000


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _number(value: Any, where: str, kind=float, low=None, high=None):
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}={value!r} is not a number")
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):  # int(inf) overflows
        raise ConfigError(f"{where}={value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{where}={value!r} is not a finite number")
    if kind is int and isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ConfigError(f"{where}={value!r} is not an integer")
    if (low is not None and number < low) or (high is not None and number > high):
        span = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{where}={value!r} is out of range {span}")
    return number


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{where}={value!r} must be true or false")


def _text(value: Any, where: str, optional=False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where}={value!r} must be a string")


def check_url(value: str | None, where: str) -> str | None:
    """An http(s) URL with a host, or a ConfigError naming it: an SDK given anything else fails every call."""
    if not value:  # null or "": the SDK's own variable or default
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"{where}={value!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}={value!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:8080/v1")
    return value


def model_settings(raw: Mapping[str, Any], name: str) -> ModelSettings:
    """A model config (conf/model/NAME.yaml, composed) as checked ModelSettings."""
    known = _fields(ModelSettings)
    for key in raw:
        if key not in known or key == "name":
            listed = ", ".join(k for k in known if k != "name")
            raise ConfigError(f"model/{name}: unknown key 'model.{key}' (known: {listed})")
    for key in ("provider", "id"):
        if not raw.get(key):
            raise ConfigError(f"model/{name}: 'model.{key}' is required")
    values: dict[str, Any] = {"name": name, "provider": _text(raw["provider"], "model.provider"),
                              "id": _text(raw["id"], "model.id")}
    for key in ("base_url", "api_key_env", "sdk", "path", "price_provider"):
        if key in raw:
            values[key] = _text(raw[key], f"model.{key}", optional=True)
    values["base_url"] = check_url(values.get("base_url"), "model.base_url")
    for key in ("stream", "repack", "batch"):
        if key in raw:
            values[key] = _bool(raw[key], f"model.{key}")
    values.update(_capability_overrides(raw))
    for key, kind, low in (("n_ctx", int, 64), ("concurrency", int, 1), ("max_attempts", int, 1),
                           ("rpm", int, 1), ("tpm", int, 1), ("timeout_s", float, 0.001),
                           ("temperature_max", float, 0)):
        if key in raw and not (raw[key] is None and key in ("rpm", "tpm")):
            values[key] = _number(raw[key], f"model.{key}", kind, low)
    if raw.get("price") is not None:
        price = raw["price"]
        if not isinstance(price, Mapping):
            raise ConfigError(f"model.price={price!r} must be a mapping with input and output (USD per million tokens)")
        unknown = set(price) - set(_fields(Price))
        if unknown:
            raise ConfigError(f"model/{name}: unknown key 'model.price.{sorted(unknown)[0]}' "
                              f"(known: input, cached_input, output)")
        if "input" not in price or "output" not in price:
            raise ConfigError("model.price needs both 'input' and 'output' (USD per million tokens)")
        values["price"] = Price(
            input=_number(price["input"], "model.price.input", float, 0),
            output=_number(price["output"], "model.price.output", float, 0),
            cached_input=None if price.get("cached_input") is None
            else _number(price["cached_input"], "model.price.cached_input", float, 0),
        )
    return ModelSettings(**values)


def reasoning_value(value: Any, where: str = "model.reasoning") -> str | None:
    """null, or one of the efforts (YAML reads `none` as the string "none", `null` as None)."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in EFFORTS:
        raise ConfigError(f"{where}={value!r} must be null (the model's own default) or one of {', '.join(EFFORTS)}")
    return value


def _names(value: Any, where: str, known: tuple[str, ...]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v in known for v in value):
        raise ConfigError(f"{where}={value!r} must be a list of {', '.join(known)} (or null: looked up)")
    return tuple(dict.fromkeys(value))


def _capability_overrides(raw: Mapping[str, Any]) -> dict[str, Any]:
    """model.reasoning and the keys that override what the catalogue says the model takes."""
    values: dict[str, Any] = {}
    if "reasoning" in raw:
        values["reasoning"] = reasoning_value(raw["reasoning"])
    for key in ("reasoning_model", "takes_temperature", "structured_output", "tool_call"):
        if raw.get(key) is not None:
            values[key] = _bool(raw[key], f"model.{key}")
    if "reasoning_efforts" in raw:
        values["reasoning_efforts"] = _names(raw["reasoning_efforts"], "model.reasoning_efforts", EFFORTS)
    if "input_modalities" in raw:
        values["input_modalities"] = _names(raw["input_modalities"], "model.input_modalities", MODALITIES)
    if raw.get("max_output_tokens") is not None:
        values["max_output_tokens"] = _number(raw["max_output_tokens"], "model.max_output_tokens", int, 1,
                                              MAX_TOKENS_LIMIT)
    return values


def _task(raw: Mapping[str, Any], name: str) -> TaskSettings:
    kind = _text(raw.get("kind") or name, "task.kind")
    options = {key: value for key, value in raw.items() if key not in TASK_KEYS}  # the kind's: runner.tasks
    inputs = load_inputs(raw.get("inputs"), where="task.inputs")
    return TaskSettings(
        name=_text(raw.get("name") or name, "task.name"),
        kind=kind,
        system=_text(raw.get("system") or "", "task.system"),
        user=_text(raw.get("user") or "{input}", "task.user"),
        inputs=inputs,
        options=options,
        scorers=_scorers(raw.get("scorers"), "task.scorers"),
        schema=_schema(raw.get("schema"), f"task.schema (task {name})"),
        images=_image_fields(raw.get("images")),
    )


def _schema(value: Any, where: str) -> Mapping[str, Any] | None:
    """A JSON Schema (checked against its own metaschema, as jsonschema does), or nothing."""
    if value is None:
        return None
    check_schema(value, where)
    return value


def _image_fields(value: Any) -> tuple[str, ...]:
    """task.images: the item fields that hold images (one name, or a list of them)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"task.images={value!r} must be a list of item field names, e.g. task.images=[image]")
    return tuple(dict.fromkeys(v.strip() for v in value))


def _scorers(value: Any, where: str) -> Mapping[str, Any]:
    """A mapping of scorer name -> its config (each checked by runner.scorers), or nothing."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}={value!r} must be a mapping of scorer name -> scorer config")
    return {str(k): v for k, v in value.items()}


def _judges(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"judges={value!r} must be a list of model config names, e.g. judges=[gpt,claude]")
    return tuple(value)


def fail_under(value: Any) -> float | dict[str, float] | None:
    """`fail_under=0.8` (every cell's overall score) or `fail_under={judge: 0.8, json: 1}` (per scorer)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): _number(v, f"fail_under.{k}", float, 0.0, 1.0) for k, v in value.items()}
    return _number(value, "fail_under", float, 0.0, 1.0)


def _prompt(raw: Mapping[str, Any], name: str) -> PromptSettings:
    known = {"system", "append"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"prompt/{name}: unknown key 'prompt.{key}' (known: append, system)")
    return PromptSettings(
        name=name,
        system=_text(raw.get("system"), "prompt.system", optional=True),
        append=_text(raw.get("append") or "", "prompt.append"),
    )


def _section(raw: Any, cls: type, name: str, hint: str) -> Mapping | None:
    """A top-level mapping of the config (`batch`, `judge`, `stats`): None where it is absent (the dataclass's
    defaults), a ConfigError where it is not a mapping (`hint` says what it holds) or has a key `cls` lacks."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}={raw!r} must be a mapping {hint}")
    known = _fields(cls)
    for key in raw:
        if key not in known:
            raise ConfigError(f"unknown key '{name}.{key}' (known: {', '.join(known)})")
    return raw


def _batch(raw: Any) -> BatchSettings:
    raw = _section(raw, BatchSettings, "batch", "(batch.wait, batch.retry_failed, batch.poll_s, batch.max_poll_s); "
                   "model.batch=true turns batch runs on")
    if raw is None:
        return BatchSettings()
    values: dict[str, Any] = {}
    if "wait" in raw:
        values["wait"] = _bool(raw["wait"], "batch.wait")
    if "retry_failed" in raw:
        if raw["retry_failed"] not in BATCH_RETRY:
            raise ConfigError(f"batch.retry_failed={raw['retry_failed']!r} must be one of {', '.join(BATCH_RETRY)}")
        values["retry_failed"] = raw["retry_failed"]
    for key in ("poll_s", "max_poll_s"):
        if key in raw:
            values[key] = _number(raw[key], f"batch.{key}", float, 0.001)
    return BatchSettings(**values)


def _judge(raw: Any) -> JudgeSettings:
    raw = _section(raw, JudgeSettings, "judge", "(judge.temperature, judge.max_tokens): how every judge is called; "
                   "judges=[...] names who judges")
    if raw is None:
        return JudgeSettings()
    values: dict[str, Any] = {}
    if "temperature" in raw:
        values["temperature"] = _number(raw["temperature"], "judge.temperature", float, 0.0, 2.0)
    if "max_tokens" in raw:
        values["max_tokens"] = _number(raw["max_tokens"], "judge.max_tokens", int, 1, MAX_TOKENS_LIMIT)
    return JudgeSettings(**values)


def stats_settings(raw: Any) -> StatsSettings:
    """The `stats` mapping (conf/config.yaml) as checked StatsSettings, or a ConfigError naming the bad value."""
    raw = _section(raw, StatsSettings, "stats", "(stats.alpha, stats.adjust, stats.power, stats.detect, "
                   "stats.assumed_sd)")
    if raw is None:
        return StatsSettings()
    values: dict[str, Any] = {}
    if "adjust" in raw:
        if raw["adjust"] not in ADJUSTMENTS:
            raise ConfigError(f"stats.adjust={raw['adjust']!r} must be one of {', '.join(ADJUSTMENTS)} (holm: "
                              f"Holm's correction, bh: Benjamini-Hochberg's)")
        values["adjust"] = raw["adjust"]
    for key in ("alpha", "power"):
        if key in raw:
            values[key] = _number(raw[key], f"stats.{key}", float, 0.0, 1.0)
            if not 0 < values[key] < 1:
                raise ConfigError(f"stats.{key}={raw[key]!r} must be between 0 and 1, e.g. 0.05 for alpha, 0.8 "
                                  f"for power")
    if raw.get("detect") is not None:
        values["detect"] = _number(raw["detect"], "stats.detect", float, 0.0, 1.0)
        if not values["detect"] > 0:
            raise ConfigError(f"stats.detect={raw['detect']!r} must be a difference in mean score above 0 "
                              f"(scores run from 0 to 1), e.g. stats.detect=0.05")
    if "assumed_sd" in raw:
        values["assumed_sd"] = _number(raw["assumed_sd"], "stats.assumed_sd", float, 0.0, 1.0)
        if not values["assumed_sd"] > 0:
            raise ConfigError(f"stats.assumed_sd={raw['assumed_sd']!r} must be above 0 (the spread of per-item "
                              f"score differences, at most 1)")
    return StatsSettings(**values)


def _cache_mode(value: Any) -> str:
    if value is True or value == "on":
        return "on"
    if value is False or value == "off":
        return "off"
    if value == "refresh":
        return "refresh"
    raise ConfigError(f"cache={value!r} must be true, false or refresh")


def _overrides(cfg: DictConfig) -> list[str]:
    """The job's command-line overrides, as Hydra recorded them."""
    if "hydra" in cfg:  # callbacks and preflight see the whole config
        return [str(o) for o in cfg.hydra.overrides.task]
    from hydra.core.hydra_config import HydraConfig

    return [str(o) for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else []


def _named_task_scorers(cfg: DictConfig, scorers: Any) -> frozenset[str]:
    """The task's scorers the command line names (`task.scorers.NAME...=`, or all of them with
    `task.scorers=`): the user asked for them, so every item must have what they read. The others are the
    task's defaults, which apply where the items have their fields (runner.scorers)."""
    from runner.variant import key_of

    names = set()
    for override in _overrides(cfg):
        key = key_of(override)
        if key == "task.scorers":
            names |= {str(name) for name in (scorers or {})}
        elif key.startswith("task.scorers."):
            names.add(key.split(".")[2])
    return frozenset(names)


def _choice(cfg: DictConfig, group: str, fallback: str) -> str:
    choice = None
    if "hydra" in cfg:  # callbacks see the whole config
        choice = cfg.hydra.runtime.choices.get(group)
    else:  # a job's task function gets the config without its hydra node
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            choice = HydraConfig.get().runtime.choices.get(group)
    return str(choice or fallback)


def load(cfg: DictConfig) -> RunSettings:
    """Check one composed job config and return its settings, or raise ConfigError."""
    raw = {key: (OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key])
           for key in cfg if key != "hydra"}
    for key in raw:
        if key not in TOP_LEVEL:
            raise ConfigError(f"unknown key '{key}' in config (known: {', '.join(sorted(TOP_LEVEL))})")
    for group in ("model", "task", "prompt"):
        if not isinstance(raw.get(group), Mapping):
            raise ConfigError(f"'{group}' must select a config from conf/{group}/ (got {raw.get(group)!r})")
    model = model_settings(raw["model"], _choice(cfg, "model", raw["model"].get("id", "model")))
    task = _task(raw["task"], _choice(cfg, "task", raw["task"].get("name", "task")))
    prompt = _prompt(raw["prompt"], _choice(cfg, "prompt", "default"))
    temperature = _number(raw.get("temperature"), "temperature", float, 0.0, 2.0)
    if temperature > model.temperature_max:
        raise ConfigError(
            f"temperature={raw.get('temperature')!r} is out of range for model {model.name} "
            f"({model.provider} accepts 0 to {model.temperature_max:g})"
        )
    budget = raw.get("budget_usd")
    return RunSettings(
        model=model,
        task=task,
        prompt=prompt,
        temperature=temperature,
        max_tokens=_number(raw.get("max_tokens"), "max_tokens", int, 1, MAX_TOKENS_LIMIT),
        repeats=_number(raw.get("repeats"), "repeats", int, 1),
        cache=_cache_mode(raw.get("cache", True)),
        dry_run=_bool(raw.get("dry_run", False), "dry_run"),
        budget_usd=None if budget is None else _number(budget, "budget_usd", float, 0.0),
        cache_dir=_text(raw.get("cache_dir"), "cache_dir", optional=True),
        history=_text(raw.get("history"), "history", optional=True),
        batch=_batch(raw.get("batch")),
        scorers=_scorers(raw.get("scorer"), "scorer"),
        fail_under=fail_under(raw.get("fail_under")),
        judges=_judges(raw.get("judges")),
        judge=_judge(raw.get("judge")),
        named_scorers=_named_task_scorers(cfg, raw["task"].get("scorers")),
        seed=None if raw.get("seed") is None else _number(raw["seed"], "seed", int, 0, MAX_SEED),
        stats=stats_settings(raw.get("stats")),
    )
