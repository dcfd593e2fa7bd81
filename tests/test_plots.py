"""The report's PNG plots: each is drawn once per file, however it is laid out."""
from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from runner.analysis import plots

SUMMARY = pd.DataFrame([
    dict(model=m, task="joke", prompt="default", temperature=0.7, variant="", cost_per_call_usd=c,
         latency_mean_s=s, latency_p50_s=s, latency_p95_s=2 * s, ttft_p50_s=s / 3, timing_from_cache=0)
    for m, c, s in (("gpt", 0.0002, 1.2), ("claude", 0.0004, 0.8), ("local", 0.0, 3.0))])
PER_RUN = pd.DataFrame([dict(order=o, run=f"12-0{o} 10:00:00", model=m, cost_per_call_usd=0.0001 * (o + 1),
                             latency_p50_s=1.0 + o) for o in range(3) for m in ("gpt", "local")])


@pytest.fixture
def draws(monkeypatch):
    """How many times a figure is drawn (matplotlib's own Figure.draw, counted on the way through)."""
    counted = []
    draw = Figure.draw

    def counting(self, renderer):
        counted.append(self)
        return draw(self, renderer)

    monkeypatch.setattr(Figure, "draw", counting)
    return counted


def test_each_plot_is_drawn_once_for_its_png(tmp_path, draws):
    drawn = plots.draw(SUMMARY, tmp_path) + [plots.trend(PER_RUN, tmp_path / "trend.png")]
    assert sorted(p.name for p in drawn) == ["cost_vs_latency.png", "latency.png", "trend.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in drawn)
    assert len(draws) == len(drawn)
