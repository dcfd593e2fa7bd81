"""The comparison's numbers: one summary row per model x task x prompt x temperature, and per model."""
from __future__ import annotations

import pandas as pd

from runner.records import CSV_COLUMNS

CELL_KEYS = ["model", "task", "prompt", "temperature"]
# one call of one item's repeat: the key that matches a call across two runs of the same sweep
CALL_KEYS = CELL_KEYS + ["item", "repeat", "step"]
NUMERIC = ["temperature", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "spent_usd",
           "latency_s", "ttft_s", "retries", "repeat"]


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
    for column in ("step", "error", "response", "item"):
        df[column] = df[column].fillna("").astype(str)
    return df


def final_answers(df: pd.DataFrame) -> pd.DataFrame:
    """Each item's answer per repeat: the last call of its cell (a brochure's `write`, not its `links`).

    Conversation turns (steps named turn...) are transcripts, not answers.
    """
    if df.empty:
        return df
    answers = df[~df.step.str.startswith("turn")]
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
        # speed is measured on calls a model answered, not on answers replayed from the cache
        live = ok[~ok.cache_hit]
        latency = live.latency_s.dropna()
        ttft = live.ttft_s.dropna()
        timed = live.dropna(subset=["latency_s", "output_tokens"])
        busy = timed.latency_s.sum()
        priced = group.dropna(subset=["cost_usd"])
        cost = priced.cost_usd
        cells = group.groupby(cell_keys, dropna=False).ngroups
        priced_cells = priced.groupby(cell_keys, dropna=False).ngroups
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
            input_tokens=int(ok.input_tokens.sum()),
            output_tokens=int(ok.output_tokens.sum()),
            tokens_per_s=(timed.output_tokens.sum() / busy) if busy > 0 else None,
            cost_usd=cost.sum() if len(cost) else None,
            cost_per_call_usd=cost.sum() / len(cost) if len(cost) else None,
            cost_per_1k_items_usd=(cost.sum() / priced_cells * 1000) if priced_cells else None,
            spent_usd=group.spent_usd.fillna(0).sum(),
            price_known=bool(len(cost)) or ok.empty,
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


def per_model(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model over all its cells: what a run-to-run comparison and the trend plot show."""
    rows = []
    for model, group in df.groupby("model", sort=True):
        ok = group[group.status == "ok"]
        live = ok[~ok.cache_hit]
        cost = group.cost_usd.dropna()
        rows.append(dict(
            model=model,
            calls=len(group),
            ok=int(len(ok)),
            failed=int((group.status != "ok").sum()),
            cost_per_call_usd=cost.mean() if len(cost) else None,
            latency_p50_s=_stat(live.latency_s.dropna(), 0.5),
            ttft_p50_s=_stat(live.ttft_s.dropna(), 0.5),
            input_tokens_per_call=ok.input_tokens.mean() if len(ok) else None,
            output_tokens_per_call=ok.output_tokens.mean() if len(ok) else None,
        ))
    return pd.DataFrame(rows)
