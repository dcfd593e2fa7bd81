"""PNG plots for the report: where each model sits on cost and latency, and how latency spreads."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no screen needed: cron, CI, servers
    import matplotlib.pyplot as plt

    return plt


def _labels(summary: pd.DataFrame) -> list[str]:
    vary = {k: summary[k].nunique() > 1 for k in ("task", "prompt", "temperature")}
    labels = []
    for _, row in summary.iterrows():
        parts = [str(row[k]) if k != "temperature" else f"T={row[k]:g}" for k in vary if vary[k]]
        labels.append(f"{row['model']} ({', '.join(parts)})" if parts else str(row["model"]))
    return labels


def cost_vs_latency(summary: pd.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    labels = _labels(summary)
    cost = summary["cost_per_call_usd"].astype(float)
    latency = summary["latency_mean_s"].astype(float)
    for label, x, y in zip(labels, latency, cost):
        if pd.isna(x):
            continue
        y = 0.0 if pd.isna(y) else y
        ax.scatter([x], [y], s=60)
        ax.annotate(label + ("" if not pd.isna(y) else " (no price)"), (x, y), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set_xlabel("mean latency per call (s)")
    ax.set_ylabel("mean cost per call (USD)")
    ax.set_title("Cost vs latency (lower left is better)")
    ax.grid(True, alpha=0.3)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def latency_bars(summary: pd.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    labels = _labels(summary)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4.5), dpi=110)
    x = range(len(labels))
    p50 = summary["latency_p50_s"].astype(float).fillna(0)
    p95 = summary["latency_p95_s"].astype(float).fillna(0)
    ttft = summary["ttft_p50_s"].astype(float).fillna(0)
    width = 0.28
    ax.bar([i - width for i in x], ttft, width, label="time to first token p50")
    ax.bar(list(x), p50, width, label="latency p50")
    ax.bar([i + width for i in x], p95, width, label="latency p95")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title("Latency per model")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def draw(summary: pd.DataFrame, folder: Path) -> list[Path]:
    if summary.empty:
        return []
    return [cost_vs_latency(summary, folder / "cost_vs_latency.png"),
            latency_bars(summary, folder / "latency.png")]
