"""PNG plots for the report: cost against latency per model, how latency spreads, and the trend over runs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from runner import money
from runner.analysis.pareto import pareto_front
from runner.variant import Labels

MARKERS = "osD^vP*X"
FILES = ("cost_vs_latency.png", "latency.png", "trend.png", "quality_vs_cost.png")


def _figure(**options):
    """A figure drawn with the Agg canvas: no screen needed (cron, CI, servers), and no pyplot, whose
    import and global state cost a run more than the plots themselves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def warm_up() -> None:
    """Draw a small figure nobody sees: a process's first figure loads fonts and fills matplotlib's caches,
    which costs about as much as drawing the figure itself. The comparison process does this while the
    calls run, so the report's plots are drawn at full speed when the calls are done."""
    import io

    fig = _figure(figsize=(2, 2), dpi=50)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], marker="o", label="warm-up")
    ax.bar([0], [1])
    ax.set_xticks([0])
    ax.set_xticklabels(["warm-up"], rotation=20, ha="right", fontsize=8)
    ax.set_title("warm-up")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png")


def _colors() -> list[str]:
    import matplotlib

    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


CACHED = "timing from cache"


def _varies(summary: pd.DataFrame) -> dict:
    """What tells the cells apart besides the model: task, prompt, temperature, the variant's parts."""
    vary = {k: summary[k].nunique() > 1 for k in ("task", "prompt", "temperature")}
    vary["variant"] = Labels(summary["variant"].unique() if "variant" in summary else [])
    return vary


def _variant(row, vary: dict) -> str:
    parts = [f"T={row['temperature']:g}" if k == "temperature" else str(row[k])
             for k in ("task", "prompt", "temperature") if vary[k]]
    differing = vary["variant"].differing(row.get("variant", ""))
    return ", ".join(parts + ([differing] if differing else []))


def _label(row, vary: dict) -> str:
    """The cell's name on a plot: its model and what differs; marked when its timing came from the cache
    (every answer was a cache hit: the timing is the original call's)."""
    variant = _variant(row, vary)
    label = f"{row['model']} ({variant})" if variant else str(row["model"])
    return f"{label} [{CACHED}]" if row.get("timing_from_cache", 0) else label


def _labels(summary: pd.DataFrame) -> list[str]:
    vary = _varies(summary)
    return [_label(row, vary) for _, row in summary.iterrows()]


def _save(fig, path: Path, shown: list[str]) -> Path:
    """Save the PNG with what it shows (one name per point, bar group or line) as its description: a text
    the image itself cannot give to a screen reader, a script or a test."""
    fig.savefig(path, metadata={"Description": "; ".join(shown)})
    return path


def cost_vs_latency(summary: pd.DataFrame, path: Path) -> Path:
    """One point per cell: colour is the model, marker the variant (task, prompt, temperature)."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(figsize=(8, 5), dpi=110)
    ax = fig.subplots()
    vary = _varies(summary)
    models = list(dict.fromkeys(summary["model"]))
    variants = list(dict.fromkeys(_variant(row, vary) for _, row in summary.iterrows()))
    colors = _colors()
    # per 1,000 calls: a single call costs fractions of a cent, which reads badly on an axis
    cost = summary["cost_per_call_usd"].astype(float) * 1000
    unplaced = []
    for (_, row), y in zip(summary.iterrows(), cost):
        x = row["latency_mean_s"]
        variant = _variant(row, vary)
        label = _label(row, vary)
        if pd.isna(x):
            unplaced.append(label)
            continue
        if pd.isna(y):
            label += ": no price"
        ax.scatter([x], [0.0 if pd.isna(y) else y], s=80, label=label, clip_on=False, zorder=3,
                   color=colors[models.index(row["model"]) % len(colors)],
                   marker=MARKERS[variants.index(variant) % len(MARKERS)],
                   facecolors="none" if pd.isna(y) else None)
    ax.set_xlabel("mean latency per call (seconds)")
    ax.set_ylabel("cost per 1,000 calls (USD, list price)")
    ax.yaxis.set_major_formatter(FuncFormatter(money.tick))
    ax.set_title("Cost vs latency per model (lower left is better)")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.1, y=0.1)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    if ax.collections:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    else:  # still a plot, so the report's link works and says why it is empty
        ax.text(0.5, 0.5, "no call was answered: nothing to place", transform=ax.transAxes, ha="center")
    if unplaced and ax.collections:  # a cell that is missing says so rather than vanishing
        ax.text(0.0, -0.14, "not placed (no answered call): " + ", ".join(unplaced), transform=ax.transAxes,
                fontsize=7, va="top", wrap=True)
    fig.tight_layout()
    return _save(fig, path, [c.get_label() for c in ax.collections])


def latency_bars(summary: pd.DataFrame, path: Path) -> Path:
    labels = _labels(summary)
    fig = _figure(figsize=(max(6, 0.9 * len(labels) + 2), 4.5), dpi=110)
    ax = fig.subplots()
    x = range(len(labels))
    width = 0.28
    for offset, column, label in ((-width, "ttft_p50_s", "time to first token p50"),
                                  (0, "latency_p50_s", "latency p50"), (width, "latency_p95_s", "latency p95")):
        ax.bar([i + offset for i in x], summary[column].astype(float).fillna(0), width, label=label)
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title("Latency per model")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, labels)


def trend(per_run: pd.DataFrame, path: Path) -> Path:
    """Cost per call and latency p50 per model over the runs of one sweep.

    `per_run`: one row per run and model, with columns order (the run's position in time), run (its
    label), model, cost_per_call_usd and latency_p50_s; optionally label (the model and its variant).
    """
    from matplotlib.ticker import FuncFormatter

    runs = per_run.drop_duplicates("order").sort_values("order")["run"].tolist()
    fig = _figure(figsize=(max(7, 0.6 * len(runs) + 3), 6), dpi=110)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for model, rows in per_run.groupby("label" if "label" in per_run else "model", sort=True):
        x = rows["order"].tolist()
        top.plot(x, rows["cost_per_call_usd"].astype(float) * 1000, marker="o", label=model)
        bottom.plot(x, rows["latency_p50_s"].astype(float), marker="o", label=model)
    top.set_ylabel("cost per 1,000 calls")
    top.yaxis.set_major_formatter(FuncFormatter(money.tick))
    top.set_title(f"Trend over the last {len(runs)} runs of this sweep")
    bottom.set_ylabel("latency p50 (s)")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    bottom.set_xticks(range(len(runs)))
    bottom.set_xticklabels(runs, rotation=30, ha="right", fontsize=8)
    bottom.set_xlabel("run (start, UTC)")
    fig.tight_layout()
    return _save(fig, path, [line.get_label() for line in top.get_lines()])


def draw(summary: pd.DataFrame, folder: Path) -> list[Path]:
    for name in FILES:  # a rebuilt comparison must not leave an earlier build's plot unlinked
        (folder / name).unlink(missing_ok=True)
    if summary.empty:
        return []
    drawn = [cost_vs_latency(summary, folder / "cost_vs_latency.png")]
    if summary["latency_p50_s"].notna().any():
        drawn.append(latency_bars(summary, folder / "latency.png"))
    return drawn


def quality_vs_cost(summary: pd.DataFrame, path: Path) -> Path | None:
    """One point per scored cell: its overall score (with its 95% interval) against its cost per call;
    the cells on their task's Pareto front (runner.analysis.pareto: none is both cheaper and better) are ringed
    and joined. A cell with no known price sits at $0, hollow, and on no front."""
    from matplotlib.ticker import FuncFormatter

    cells = summary[summary["score"].notna()] if "score" in summary else summary.iloc[0:0]
    if cells.empty:
        return None
    vary = _varies(summary)
    fig = _figure(figsize=(8, 5), dpi=110)
    ax = fig.subplots()
    colors = _colors()
    models = list(dict.fromkeys(summary["model"]))
    cost = (cells["cost_per_call_usd"].astype(float).fillna(0.0) * 1000).tolist()
    score = cells["score"].astype(float).tolist()
    best = (cells["pareto_front"] if "pareto_front" in cells else pareto_front(cells)).astype(bool).tolist()
    shown = []
    for (_, row), x, y, on_front in zip(cells.iterrows(), cost, score, best):
        label = _label(row, vary) + (" [best for its cost]" if on_front else "") + \
            (": no price" if pd.isna(row["cost_per_call_usd"]) else "")
        low, high = row.get("score_low"), row.get("score_high")
        color = colors[models.index(row["model"]) % len(colors)]
        if pd.notna(low) and pd.notna(high):
            ax.errorbar([x], [y], yerr=[[y - low], [high - y]], color=color, capsize=3, zorder=2)
        unpriced = pd.isna(row["cost_per_call_usd"])
        ax.scatter([x], [y], s=140 if on_front else 70, label=label, color=color, zorder=3,
                   facecolors="none" if unpriced else color,
                   edgecolors="black" if on_front else color if unpriced else None,
                   linewidths=1.5 if on_front or unpriced else 0)
        shown.append(label)
    front = sorted((x, y) for x, y, on in zip(cost, score, best) if on)
    if len(front) > 1:
        ax.plot(*zip(*front), linestyle="--", color="grey", zorder=1)
    ax.set_xlabel("cost per 1,000 calls (USD, list price)")
    ax.xaxis.set_major_formatter(FuncFormatter(money.tick))
    ax.set_ylabel("mean score (0 to 1), 95% interval")
    ax.set_ylim(-0.05, 1.05)
    span = max(cost) or 1.0  # free cells (local models) sit on x=0: keep them off the frame's edge
    ax.set_xlim(-0.05 * span, 1.15 * span)
    ax.set_title("Quality vs cost per cell (upper left is better; ringed: none is cheaper and better)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    fig.tight_layout()
    return _save(fig, path, shown)
