"""The comparison's numbers: one summary row per cell (model x task x prompt x temperature x variant), and
per model (and variant) over all its cells."""
from __future__ import annotations

import pandas as pd

from runner.records import CSV_COLUMNS
from runner.tasks.tools import in_tool_loop

# variant: the job's other overrides (runner.variant): a swept model.id or max_tokens makes cells of its own
CELL_KEYS = ["model", "task", "prompt", "temperature", "variant"]
# one call of one item's repeat: the key that matches a call across two runs of the same sweep
CALL_KEYS = CELL_KEYS + ["item", "repeat", "step"]
NUMERIC = ["temperature", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "spent_usd",
           "latency_s", "ttft_s", "retries", "repeat", "reasoning_tokens", "billed_input_tokens",
           "billed_output_tokens"]


def frame(records: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Records as a table with the CSV's columns, numbers as numbers."""
    df = pd.DataFrame(records)
    for column in CSV_COLUMNS:
        if column not in df.columns:
            df[column] = None
    for column in NUMERIC:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    for column in ("cache_hit",):
        df[column] = df[column].map(lambda v: v is True or str(v).lower() in ("true", "1"))
    for column in ("step", "error", "response", "item", "variant"):
        df[column] = df[column].fillna("").astype(str)
    return df


def values(column: pd.Series, missing=None) -> list:
    """A column's values as plain Python objects, `missing` where a value is missing (None, NaN): a whole
    column at once, far quicker than a value or a row at a time over thousands of calls."""
    return column.astype(object).where(column.notna(), missing).tolist()


def answered(df: pd.DataFrame) -> pd.Series:
    """Which calls may be an item's answer: not a conversation's turns (steps named turn...: transcripts), but a
    tool loop's turns are (its last turn is the item's answer)."""
    turns = df.step.str.startswith("turn")
    if not turns.any() or "details" not in df.columns:
        return ~turns
    return ~turns | df.details.where(turns, None).map(in_tool_loop)


def final_answers(df: pd.DataFrame) -> pd.DataFrame:
    """Each item's answer per repeat: the last call of its cell (a brochure's `write`, not its `links`; a tool
    loop's last turn). Conversation turns (steps named turn...) are transcripts, not answers."""
    if df.empty:
        return df
    answers = df[answered(df)]
    return answers.groupby(CELL_KEYS + ["item", "repeat"], dropna=False, sort=False).tail(1)


def normalized(text) -> str:
    """An answer as compared for agreement: case and whitespace do not make answers differ."""
    return " ".join(str(text).split()).lower() if isinstance(text, str) else ""


def _agreement(answers: pd.Series) -> float | None:
    """Share of repeated answers equal to the most common one (1.0: all repeats agree)."""
    texts = [normalized(a) for a in answers if isinstance(a, str) and a]
    if len(texts) < 2:
        return None
    return pd.Series(texts).value_counts().iloc[0] / len(texts)


def timed(ok: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The answers whose timing a cell's speed is measured on, and how many of them came from the cache.

    Speed is measured on the calls this run made. A cell answered wholly from the cache still has its
    answers' timing: the cache keeps the original call's latency and ttft, and that is used instead
    (and counted), so a cached model keeps its place in the latency figures."""
    live = ok[~ok.cache_hit & ok.latency_s.notna()]
    if len(live):
        return live, 0
    cached = ok[ok.cache_hit & ok.latency_s.notna()]
    return cached, len(cached)


def price_known(group: pd.DataFrame) -> bool:
    """Whether the price of the group's model is known. A priced call says so in cost_usd; any other call
    says it in spent_usd, empty only when the price is unknown (a failed call of a priced model spent 0,
    its billed attempts aside). Answers replayed from the cache spent 0 whatever the price, and a group
    whose calls were all skipped says nothing either way."""
    direct = group[~group.cache_hit]
    if group.cost_usd.notna().any() or direct.spent_usd.notna().any():
        return True
    return not ((direct.status != "skipped").any() or group.cache_hit.any())


def spent(group: pd.DataFrame, price_known: bool) -> float | None:
    """What the calls paid, every billed attempt included; None (unknown, not 0) when the model's price is
    unknown. Answers replayed from the cache paid nothing, whatever the price."""
    called = ((group.status != "skipped") & ~group.cache_hit).any()
    return None if called and not price_known else group.spent_usd.fillna(0).sum()


def _stat(values: pd.Series, how):
    if not len(values):
        return None
    return values.mean() if how == "mean" else values.quantile(how)


def summarize(df: pd.DataFrame, keys: list[str] = CELL_KEYS) -> pd.DataFrame:
    """One row per combination of `keys` (by default model x task x prompt x temperature)."""
    rows = []
    if df.empty:
        return pd.DataFrame(columns=keys)
    # a cell is one item once (one repeat) in one variant: a multi-step task's calls for it add up
    cell_keys = [k for k in CELL_KEYS if k not in keys] + ["item", "repeat"]
    for values, group in df.groupby(keys, dropna=False, sort=True):
        ok = group[group.status == "ok"]
        timing, from_cache = timed(ok)
        latency = timing.latency_s
        ttft = timing.ttft_s.dropna()
        speed = timing.dropna(subset=["output_tokens"])
        busy = speed.latency_s.sum()
        priced = group.dropna(subset=["cost_usd"])
        cost = priced.cost_usd
        cells = group.groupby(cell_keys, dropna=False).ngroups
        priced_cells = priced.groupby(cell_keys, dropna=False).ngroups
        known = price_known(group)
        row = dict(zip(keys, values))
        row.update(
            provider=group.provider.iloc[0],
            model_id=group.model_id.iloc[0],
            calls=len(group),
            ok=int((group.status == "ok").sum()),
            error=int((group.status == "error").sum()),
            skipped=int((group.status == "skipped").sum()),
            cache_hits=int(group.cache_hit.sum()),
            items=group.item.nunique(),
            repeats=int(group.repeat.nunique()),
            cells=cells,
            latency_mean_s=latency.mean() if len(latency) else None,
            latency_p50_s=latency.quantile(0.5) if len(latency) else None,
            latency_p95_s=latency.quantile(0.95) if len(latency) else None,
            ttft_mean_s=ttft.mean() if len(ttft) else None,
            ttft_p50_s=ttft.quantile(0.5) if len(ttft) else None,
            ttft_p95_s=ttft.quantile(0.95) if len(ttft) else None,
            timing_from_cache=from_cache,
            input_tokens=int(ok.input_tokens.sum()),
            output_tokens=int(ok.output_tokens.sum()),
            # of output_tokens, the thinking (billed as output); None when no call of the cell reported any
            reasoning_tokens=int(ok.reasoning_tokens.sum()) if ok.reasoning_tokens.notna().any() else None,
            tokens_per_s=(speed.output_tokens.sum() / busy) if busy > 0 else None,
            cost_usd=cost.sum() if len(cost) else None,
            cost_per_call_usd=cost.sum() / len(cost) if len(cost) else None,
            cost_per_1k_items_usd=(cost.sum() / priced_cells * 1000) if priced_cells else None,
            spent_usd=spent(group, known),
            price_known=known,
            unpriced=int(ok.cost_usd.isna().sum()),  # answered calls left out of cost: no known price
        )
        row.update(spread(final_answers(ok)))
        rows.append(row)
    return pd.DataFrame(rows)


def spread(answers: pd.DataFrame) -> dict:
    """How much repeated answers to the same item differ, averaged over items (None without repeats)."""
    if answers.empty or answers.repeat.nunique() < 2:
        return {"answer_length_std": None, "answer_agreement": None}
    per_item = answers.groupby("item")
    lengths = per_item.response.agg(lambda s: s.str.len().std(ddof=0))
    agreement = per_item.response.agg(_agreement).dropna()
    return {"answer_length_std": lengths.mean(),
            "answer_agreement": agreement.mean() if len(agreement) else None}


PER_MODEL_COLUMNS = ["model", "variant", "status", "cost_usd", "latency_s", "ttft_s", "cache_hit", "input_tokens",
                     "output_tokens"]  # what per_model reads


def per_model(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model (and variant) over all its cells: what a run-to-run comparison and the trend plot
    show."""
    rows = []
    for (model, variant), group in df.groupby(["model", "variant"], sort=True, dropna=False):
        ok = group[group.status == "ok"]
        timing, from_cache = timed(ok)
        cost = group.cost_usd.dropna()
        rows.append(dict(
            model=model,
            variant=variant,
            calls=len(group),
            ok=int(len(ok)),
            failed=int((group.status != "ok").sum()),
            cost_per_call_usd=cost.mean() if len(cost) else None,
            latency_p50_s=_stat(timing.latency_s, 0.5),
            ttft_p50_s=_stat(timing.ttft_s.dropna(), 0.5),
            timing_from_cache=from_cache,
            input_tokens_per_call=ok.input_tokens.mean() if len(ok) else None,
            output_tokens_per_call=ok.output_tokens.mean() if len(ok) else None,
        ))
    return pd.DataFrame(rows, columns=["model", "variant", "calls", "ok", "failed", "cost_per_call_usd",
                                       "latency_p50_s", "ttft_p50_s", "timing_from_cache",
                                       "input_tokens_per_call", "output_tokens_per_call"])
