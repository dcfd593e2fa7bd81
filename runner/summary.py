"""The comparison's numbers: one summary row per model x task x prompt x temperature."""
from __future__ import annotations

import pandas as pd

from runner.records import CSV_COLUMNS

CELL_KEYS = ["model", "task", "prompt", "temperature"]
NUMERIC = ["temperature", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "spent_usd",
           "latency_s", "ttft_s", "retries", "repeat"]


def frame(records: list[dict]) -> pd.DataFrame:
    """Records as a table with the CSV's columns, numbers as numbers."""
    df = pd.DataFrame(records)
    for column in CSV_COLUMNS:
        if column not in df.columns:
            df[column] = None
    for column in NUMERIC:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    for column in ("cache_hit",):
        df[column] = df[column].map(lambda v: v is True or str(v).lower() == "true")
    return df


def _agreement(answers: pd.Series) -> float | None:
    """Share of repeated answers equal to the most common one (1.0: all repeats agree)."""
    texts = [" ".join(str(a).split()).lower() for a in answers if isinstance(a, str) and a]
    if len(texts) < 2:
        return None
    return pd.Series(texts).value_counts().iloc[0] / len(texts)


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
        # spread of repeated answers: per item, length variance and agreement; averaged over items
        answers = ok[ok.step.fillna("").isin(["", "write"])] if "step" in ok else ok
        per_item = answers.groupby("item")
        if answers.repeat.nunique() > 1:
            lengths = per_item.response.agg(lambda s: s.fillna("").str.len().std(ddof=0))
            agreement = per_item.response.agg(_agreement).dropna()
            row["answer_length_std"] = lengths.mean()
            row["answer_agreement"] = agreement.mean() if len(agreement) else None
        else:
            row["answer_length_std"] = None
            row["answer_agreement"] = None
        rows.append(row)
    return pd.DataFrame(rows)
