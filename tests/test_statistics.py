"""The comparison's statistics on a sweep whose answers are known: 4 models x 30 items x 3 repeats run through
the real engine on the in-process scripted provider, scored by a deterministic scorer whose outcome each
answer plants, and compared as a multirun is. The report must get right what was planted: which pairs differ
after adjustment, the groups, pass@k and pass^k, the detectable difference and the Pareto front.

The expected values are computed here from the plan, with scipy directly (binomtest for McNemar, Holm by
hand), never read back from the module under test.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from runner.analysis.build import build_comparison
from runner.calling import power
from tests.fakes.inprocess import answer

ITEMS = [f"i{n:02d}" for n in range(30)]
K = 3
SEED = 100  # repeat r of every cell sends seed SEED + r: the scripted provider reads the repeat from it
# What each model's answer to item n, repeat r does: pass (1) or fail (0).
#   strong: passes items 0-26 every time, fails 27-29: pass rate 0.9, and reliably so
#   rival:  as strong, but item 26 passes once in 3 and item 27 always: tied with strong (0.911, the best)
#   weak:   passes items 0-9 only: clearly worse than every other model
#   flaky:  passes 2 of the 3 repeats of every item: 0.667 on average, pass^3 = 0: right on average, unreliable
PLAN = {
    "strong": lambda n, r: int(n <= 26),
    "rival": lambda n, r: int(n <= 25 or n == 27 or (n == 26 and r == 0)),
    "weak": lambda n, r: int(n <= 9),
    "flaky": lambda n, r: int(r != n % 3),
}
# USD per million output tokens (input 1.0): every answer is 12 tokens in, 6 out. Per call: weak $0.000018 <
# strong $0.00003 < flaky $0.000042 < rival $0.000048. flaky is dearer and worse than strong: off the front.
OUTPUT_PRICE = {"strong": 3.0, "rival": 6.0, "weak": 1.0, "flaky": 5.0}
MODELS = list(PLAN)


def planted(model: str) -> np.ndarray:
    """outcomes[item, repeat] as planned."""
    return np.array([[PLAN[model](n, r) for r in range(K)] for n in range(30)], dtype=float)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def section(report: str, title: str) -> str:
    return report.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| ---")]


def run_sweep(scripted, run_settings, run_here, root: Path, *extra: str) -> Path:
    conf = root.parent / "conf" / "model"
    conf.mkdir(parents=True, exist_ok=True)
    for model, price in OUTPUT_PRICE.items():
        (conf / f"{model}.yaml").write_text(f"provider: scripted\nid: {model}-1\nprice: {{input: 1.0, output: "
                                            f"{price}}}\n", encoding="utf-8")
    inputs = "task.inputs=[" + ", ".join(f"{{audience: {item}}}" for item in ITEMS) + "]"
    for job, model in enumerate(MODELS):
        def reply(request, model=model):
            item = ITEMS.index(request.messages[-1]["content"].rsplit(" ", 1)[-1])
            return answer("PASS" if PLAN[model](item, request.seed - SEED) else "FAIL")

        scripted.otherwise = reply
        settings = run_settings(f"model={model}", "task=joke", inputs, f"repeats={K}", f"seed={SEED}", "cache=false",
                                "~task.scorers", "+scorer.ok={type: equals, value: PASS}", *extra,
                                f"hydra.searchpath=[file://{conf.parent.as_posix()}]")
        run_here(settings, root / str(job))
        saved = root / str(job) / ".hydra"  # what Hydra saves of the job's config: the comparison reads `stats`
        saved.mkdir()
        (saved / "config.yaml").write_text(yaml.safe_dump({"stats": dataclasses.asdict(settings.stats)}),
                                           encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def planted_sweep(tmp_path_factory) -> dict:
    return {"folder": tmp_path_factory.mktemp("planted"), "root": None}


@pytest.fixture
def sweep(planted_sweep, scripted, run_settings, run_here) -> Path:
    """The planted sweep and its comparison, made once for this module's tests (which only read its files)."""
    if planted_sweep["root"] is None:
        folder = planted_sweep["folder"]
        root = run_sweep(scripted, run_settings, run_here, folder / "sweep", "stats.detect=0.05")
        build_comparison(root, history_path=folder / "history.sqlite")
        planted_sweep["root"] = root
    return planted_sweep["root"]



# --- what the plan says, computed here -----------------------------------------------------------------------

def item_means(model: str) -> np.ndarray:
    return planted(model).mean(axis=1)


def sign_flip_p(d: np.ndarray, draws: int = 400_000) -> float:
    """A paired permutation test's two-sided p-value by brute force: random sign flips of the differences."""
    rng = np.random.default_rng(12345)
    flipped = (rng.integers(0, 2, size=(draws, len(d))) * 2 - 1) @ d
    return float(np.mean(np.abs(flipped) >= abs(d.sum()) - 1e-12))


def expected_tests() -> dict[frozenset, tuple[str, float]]:
    found = {}
    for i, a in enumerate(MODELS):
        for b in MODELS[i + 1:]:
            x, y = item_means(a), item_means(b)
            if np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all():
                only_b, only_a = int(((y == 1) & (x == 0)).sum()), int(((x == 1) & (y == 0)).sum())
                found[frozenset((a, b))] = ("McNemar exact", stats.binomtest(only_b, only_a + only_b).pvalue)
            else:
                found[frozenset((a, b))] = ("paired permutation", sign_flip_p(y - x))
    return found


def holm(pvalues: dict) -> dict:
    """Holm's step-down by hand: the i-th smallest p times (m - i), never below the one before, at most 1."""
    order = sorted(pvalues, key=pvalues.get)
    adjusted, running = {}, 0.0
    for i, key in enumerate(order):
        running = max(running, (len(order) - i) * pvalues[key])
        adjusted[key] = min(1.0, running)
    return adjusted


def shown_p(text: str) -> float:
    return 0.0005 if text == "&lt;0.001" else float(text)


def test_the_report_decides_every_pair_as_planned_after_holms_adjustment(sweep):
    report = (sweep / "report.md").read_text(encoding="utf-8")
    rows = table_rows(section(report, "Differences between cells"))
    assert rows[0] == ["difference", "task", "items", "mean difference \\[95% CI\\]", "test", "p", "adjusted p",
                       "verdict"]
    shown = {frozenset(r[0].split(" − ")): r for r in rows[1:]}
    expected = expected_tests()
    assert set(shown) == set(expected)  # every pair of the 4 models: 6
    adjusted = holm({pair: p for pair, (_, p) in expected.items()})
    for pair, (test, p) in expected.items():
        row = shown[pair]
        assert row[2] == "30" and row[4] == test, row
        # a permutation p-value from 9999 random flips is off by a few thousandths near 0, a few hundredths near 1
        assert shown_p(row[5]) == pytest.approx(p, abs=0.002 + 0.03 * p), (row, p)
        assert shown_p(row[6]) == pytest.approx(adjusted[pair], abs=0.005 + 0.03 * adjusted[pair]), row
        if adjusted[pair] < 0.05:
            better = max(pair, key=lambda m: item_means(m).mean())
            assert row[7] == f"**{better} is better**", row
        else:
            assert row[7] == "within noise", row
    # the planted tie stays a tie; the planted differences are found, each one
    assert shown[frozenset(("strong", "rival"))][7] == "within noise"
    assert sum(r[7].endswith("is better**") for r in shown.values()) == 5
    # one p-value that would pass on its own but not among 6: the adjustment is what decides
    assert any(shown_p(r[5]) < 0.05 <= shown_p(r[6]) or shown_p(r[6]) > shown_p(r[5]) for r in shown.values())


def test_the_leaderboard_groups_the_models_no_adjusted_test_separates(sweep):
    report = (sweep / "report.md").read_text(encoding="utf-8")
    rows = table_rows(section(report, "Leaderboard"))
    assert rows[0][:3] == ["rank", "model", "group"] and rows[0][-1] == "answer cost per call"
    assert [r[:3] for r in rows[1:]] == [["1", "rival", "a"], ["2", "strong", "a"], ["3", "flaky", "b"],
                                         ["4", "weak", "c"]]
    summary = {r["model"]: r for r in read_csv(sweep / "summary.csv")}
    assert {m: r["score_group"] for m, r in summary.items()} == {"rival": "a", "strong": "a", "flaky": "b",
                                                                   "weak": "c"}


def wilson(passed: int, total: int) -> tuple[float, float]:
    found = stats.binomtest(passed, total).proportion_ci(method="wilson")
    return found.low, found.high


def test_pass_at_k_and_pass_hat_k_per_cell_with_their_intervals(sweep):
    summary = {r["model"]: r for r in read_csv(sweep / "summary.csv")}
    for model in MODELS:
        outcomes = planted(model)
        at_k, all_k = int((outcomes.max(axis=1) == 1).sum()), int((outcomes.min(axis=1) == 1).sum())
        row = summary[model]
        assert (row["k"], row["items_with_k"]) == ("3", "30")
        assert float(row["pass_at_k"]) == pytest.approx(at_k / 30, abs=1e-6)
        assert float(row["pass_all_k"]) == pytest.approx(all_k / 30, abs=1e-6)
        low, high = wilson(at_k, 30)
        assert (float(row["pass_at_k_low"]), float(row["pass_at_k_high"])) == pytest.approx((low, high), abs=1e-6)
        low, high = wilson(all_k, 30)
        assert (float(row["pass_all_k_low"]), float(row["pass_all_k_high"])) == pytest.approx((low, high), abs=1e-6)
        split = int(((outcomes.max(axis=1) == 1) & (outcomes.min(axis=1) == 0)).sum())
        assert float(row["repeats_disagree"]) == pytest.approx(split / 30, abs=1e-6)
    # flaky passes every item sometimes (pass@3 100%) and none every time (pass^3 0%): right on average (67%),
    # unreliable; the others' repeats agree (or nearly: rival's item 26), and none of them is flagged
    assert {m: summary[m]["unreliable"] for m in MODELS} == {"strong": "False", "rival": "False", "weak": "False",
                                                              "flaky": "True"}
    report = (sweep / "report.md").read_text(encoding="utf-8")
    rows = {r[0]: r for r in table_rows(section(report, "Repeats").split("\n\n")[0])}
    assert rows["flaky"][6:] == ["100% [89%, 100%]", "0% [0%, 11%]", "100%", "**unreliable**"]
    assert rows["strong"][6:] == ["90% [74%, 97%]", "90% [74%, 97%]", "0%", ""]
    flaky_items = table_rows(section(report, "Repeats").split("disagree most", 1)[1])
    assert flaky_items[1][:3] == ["joke", "i26", "2 of 4"]  # rival's and flaky's repeats disagree on it


def test_the_detectable_difference_comes_from_the_spread_seen_and_the_items_stats_detect_needs(sweep):
    spreads = [np.var(item_means(b) - item_means(a), ddof=1) for i, a in enumerate(MODELS) for b in MODELS[i + 1:]]
    sd = float(np.sqrt(np.mean(spreads)))
    alone, among = power.detectable_difference(30, sd), power.detectable_difference(30, sd, 0.05 / 6)
    needed, needed_among = power.items_needed(0.05, sd), power.items_needed(0.05, sd, 0.05 / 6)
    text = section((sweep / "report.md").read_text(encoding="utf-8"), "How many items are enough")
    assert (f"With 30 items per cell in task joke and the spread seen here (sd {sd:.2f} of the per-item "
            f"differences), the smallest difference in mean score a pair can detect is **{alone:.2f}** (95% "
            f"confidence with 80% power); **{among:.2f}** for a pair that must stand out among the 6 pairs") in text
    assert f"To detect a difference of 0.05 (`stats.detect`) takes about **{needed}** items ({needed_among} " in text
    assert 0.15 < alone < among < 0.35 and needed > 400  # what these 30 items can and cannot tell apart


def test_the_pareto_front_and_the_cheapest_cell_tied_with_the_best(sweep):
    summary = {r["model"]: r for r in read_csv(sweep / "summary.csv")}
    # flaky costs more than strong and scores less: dominated; the others each win on cost or on score
    assert {m: summary[m]["pareto_front"] for m in MODELS} == {"weak": "True", "strong": "True", "rival": "True",
                                                                "flaky": "False"}
    assert {m: summary[m]["tied_with_best"] for m in MODELS} == {"rival": "True", "strong": "True",
                                                                  "weak": "False", "flaky": "False"}
    report = (sweep / "report.md").read_text(encoding="utf-8")
    line = ("task joke: the cheapest cell statistically tied with the best is strong (score 0.90, $0.0000300 per "
            "call); the best is rival (score 0.91, $0.0000480 per call)")
    assert f"- {line}\n" in report.split("## Summary", 1)[0]  # at the top, with what ran
    money = section(report, "Quality for the money")
    assert [r[0] for r in table_rows(money)[1:]] == ["weak", "strong", "rival"]
    assert line + "." in money
