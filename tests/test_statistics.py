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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from playwright.sync_api import expect
from scipy import stats

from runner.analysis.build import build_comparison
from runner.calling import power
from runner.settings import StatsSettings
from tests.browser import chromium, watched_page  # noqa: F401 - fixtures browser and page
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
        # in a thread of its own: the browser tests' Playwright keeps an event loop running in this one
        with ThreadPoolExecutor(1) as worker:
            worker.submit(run_here, settings, root / str(job)).result()
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


# --- each statistic on its own: against textbooks and scipy ---------------------------------------------------

def test_holm_and_benjamini_hochberg_adjust_as_their_definitions_say():
    from runner.analysis.statistics import adjusted

    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert adjusted(p, "holm")[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: p_(i) m / i from the top down, running min: 0.04, 0.04, 0.04, 0.02
    assert adjusted(p, "bh")[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert np.isnan(adjusted(p, "holm")[4])  # no test, no place in the family
    assert adjusted([0.9, 0.8], "holm") == pytest.approx([1.0, 1.0])


def test_mcnemar_is_exact_on_the_items_only_one_cell_passes():
    from runner.analysis.statistics import MCNEMAR, paired_test

    a = {f"q{i}": float(i < 12) for i in range(20)}  # passes 0-11
    b = {f"q{i}": float(2 <= i < 20) for i in range(20)}  # passes 2-19: 8 only b, 2 only a
    test = paired_test(a, b)
    assert test.name == MCNEMAR and test.items == 20
    assert test.p == pytest.approx(stats.binomtest(8, 10, 0.5).pvalue)  # 0.109375, not the chi-square's 0.0578
    assert test.p == pytest.approx(0.109375)


def test_a_paired_permutation_test_for_scores_matches_scipy_swapping_each_items_pair():
    from runner.analysis.statistics import PERMUTATION, RESAMPLES, paired_test

    rng = np.random.default_rng(7)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.2, 0.8, 12))}
    b = {k: min(1.0, v + 0.1 + rng.normal(0, 0.1)) for k, v in a.items()}
    test = paired_test(a, b)
    x, y = np.array(list(a.values())), np.array([b[k] for k in a])
    # 12 items: 4096 ways to swap, fewer than RESAMPLES, so both are exact
    reference = stats.permutation_test((y, x), lambda u, v, axis=-1: np.mean(u - v, axis=axis), vectorized=True,
                                       permutation_type="samples", n_resamples=RESAMPLES).pvalue
    assert test.name == PERMUTATION and test.p == pytest.approx(reference)


def test_cohens_kappa_matches_the_textbook_example():
    """Wikipedia's: 50 proposals, two readers: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no: kappa 0.4."""
    from runner.analysis.statistics import cohen_kappa

    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # no chance to disagree: undefined


def test_a_p_value_under_alpha_alone_is_no_difference_once_adjusted_over_the_family():
    """B passes 6 items A fails (McNemar p = 0.031), C passes 6 more B fails (0.031), C passes all 12 A fails
    (0.0005). Alone, each pair would differ; adjusted over the 3 pairs (Holm), only A and C do, and the groups
    overlap: A a, B ab, C b."""
    from runner.analysis import comparisons

    a = {f"q{i}": float(i >= 12) for i in range(30)}
    b = {f"q{i}": float(i < 6 or i >= 12) for i in range(30)}
    c = {f"q{i}": 1.0 for i in range(30)}
    units = {"task": {"A": a, "B": b, "C": c}}
    pairs = comparisons.compare(units).set_index(["a", "b"])
    assert pairs.p.to_dict() == pytest.approx({("A", "B"): 0.03125, ("A", "C"): 2 ** -11, ("B", "C"): 0.03125})
    assert pairs.p_adjusted.to_dict() == pytest.approx({("A", "B"): 0.0625, ("A", "C"): 3 * 2 ** -11,
                                                        ("B", "C"): 0.0625})
    assert pairs.separated.to_dict() == {("A", "B"): False, ("A", "C"): True, ("B", "C"): False}
    assert comparisons.groups(units, pairs.reset_index()) == {"C": "a", "B": "ab", "A": "b"}
    assert comparisons.tied_with_best(units, pairs.reset_index()) == {"C": True, "B": True, "A": False}
    bh = comparisons.compare(units, StatsSettings(adjust="bh")).set_index(["a", "b"])
    # Benjamini-Hochberg: the largest p times 3/3 = 0.031, the next min(0.031 * 3/2, 0.031), the smallest
    # 0.0005 * 3: all three differ (it bounds the share of false differences, not the chance of any)
    assert bh.p_adjusted.to_dict() == pytest.approx({("A", "B"): 0.03125, ("A", "C"): 3 * 2 ** -11,
                                                     ("B", "C"): 0.03125})
    assert bh.separated.all()


def test_letters_keep_separated_units_apart_and_every_other_pair_together():
    from runner.analysis.comparisons import letters

    order = list("ABCDE")
    separated = {frozenset("AC"), frozenset("AD"), frozenset("AE"), frozenset("BE")}
    found = letters(order, separated)
    assert found["A"] == "a"  # the best unit's group is a
    for i, x in enumerate(order):
        for y in order[i + 1:]:
            share = bool(set(found[x]) & set(found[y]))
            assert share == (frozenset((x, y)) not in separated), (x, y, found)
    assert letters(order, set()) == dict.fromkeys(order, "a")


def test_the_detectable_difference_and_items_needed_match_the_power_tables():
    """G*Power's paired t-test: d = 0.5 at alpha 0.05 (two-sided) and power 0.8 needs 34 pairs (power 0.8078),
    and 30 pairs detect d = 0.529; a simulation of the t-test at that difference finds it 80% of the time."""
    assert power.items_needed(0.5, 1.0) == 34
    assert power.power(0.5, 34, 1.0) == pytest.approx(0.8078, abs=1e-4)
    assert power.detectable_difference(30, 1.0) == pytest.approx(0.529, abs=1e-3)
    assert power.detectable_difference(30, 0.5) == pytest.approx(0.5 * 0.529, abs=1e-3)  # scales with the spread
    rng = np.random.default_rng(1)
    d = power.detectable_difference(30, 0.4)
    diffs = rng.normal(d, 0.4, size=(4000, 30))
    found = stats.ttest_1samp(diffs, 0, axis=1).pvalue < 0.05
    assert found.mean() == pytest.approx(0.8, abs=0.02)


# --- simulations: each interval and test keeps its promise over many synthetic runs --------------------------

REPLICATIONS = 300


def test_a_cells_95_percent_interval_covers_its_true_mean_about_95_percent_of_the_time():
    """Items whose repeats are alike (each item has its own pass chance, 3 repeats each): the interval resamples
    whole items, so it keeps its 95% where one that treated the 90 calls as independent would not."""
    from runner.analysis.statistics import clustered_mean

    rng = np.random.default_rng(2024)
    truth = 0.6  # the mean of Beta(1.2, 0.8): items' pass chances spread widely, so repeats are correlated
    items = np.repeat(np.arange(30), 3)
    covered, replications = 0, 250
    for _ in range(replications):
        chance = rng.beta(1.2, 0.8, size=30)
        outcomes = rng.binomial(1, np.repeat(chance, 3)).astype(float)
        found = clustered_mean(outcomes, items)
        covered += found.low <= truth <= found.high
    assert 0.91 <= covered / replications <= 0.99, covered


def test_a_paired_differences_95_percent_interval_covers_the_true_difference_about_95_percent_of_the_time():
    from runner.analysis.statistics import paired_difference

    rng = np.random.default_rng(77)
    covered = 0
    for _ in range(REPLICATIONS):
        level = rng.uniform(0, 1, 30)  # items differ in difficulty, both cells see the same items
        a = np.clip(level + rng.normal(0, 0.15, 30), 0, 1)
        b = np.clip(level + 0.1 + rng.normal(0, 0.15, 30), 0, 1)
        truth_a = np.clip(level + rng.normal(0, 0.15, (400, 30)), 0, 1).mean()  # the clip shifts the means
        truth_b = np.clip(level + 0.1 + rng.normal(0, 0.15, (400, 30)), 0, 1).mean()
        found, _ = paired_difference(dict(enumerate(a)), dict(enumerate(b)))
        covered += found.low <= truth_b - truth_a <= found.high
    assert 0.91 <= covered / REPLICATIONS <= 0.99, covered


def test_pass_hat_k_and_pass_at_k_intervals_cover_their_truth_about_95_percent_of_the_time():
    import pandas as pd

    from runner.analysis import repeats

    rng = np.random.default_rng(5)
    chances = rng.beta(2, 1, size=200_000)
    truth_all, truth_any = float(np.mean(chances ** 3)), float(np.mean(1 - (1 - chances) ** 3))
    # every replication is a cell of one table (its model), so per_cell runs once over them all
    chance = rng.beta(2, 1, size=(REPLICATIONS, 40))
    passed = rng.random((REPLICATIONS, 40, 3)) < chance[..., None]
    rep, item, repeat = np.meshgrid(np.arange(REPLICATIONS), np.arange(40), np.arange(3), indexing="ij")
    answers = pd.DataFrame({"model": rep.ravel(), "task": "t", "prompt": "p", "temperature": 0.0, "variant": "",
                            "item": item.ravel(), "repeat": repeat.ravel(), "pass": passed.ravel()})
    cells = repeats.per_cell(answers, pd.DataFrame())
    assert len(cells) == REPLICATIONS and (cells.items_with_k == 40).all()
    covered_all = ((cells.pass_all_k_low <= truth_all) & (truth_all <= cells.pass_all_k_high)).mean()
    covered_any = ((cells.pass_at_k_low <= truth_any) & (truth_any <= cells.pass_at_k_high)).mean()
    assert 0.91 <= covered_all <= 0.99 and 0.91 <= covered_any <= 0.99, (covered_all, covered_any)


def null_sweep(rng, models: int = 4, items: int = 30) -> dict:
    """Models that are all alike: each item has its own pass chance, the same for every model."""
    chance = rng.beta(1.5, 1.5, size=items)
    return {f"m{m}": {f"q{i}": float(v) for i, v in enumerate(rng.random(items) < chance)} for m in range(models)}


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_with_no_true_difference_the_adjusted_tests_call_any_pair_better_at_most_5_percent_of_the_time(method):
    """4 equally good models, 6 pairs, pass/fail on 30 items (McNemar): the share of sweeps in which any pair
    is called different stays at or under alpha once adjusted; unadjusted, it is about three times that."""
    from runner.analysis.statistics import adjusted, paired_test

    rng = np.random.default_rng(31 if method == "holm" else 32)
    any_adjusted = any_raw = 0
    for _ in range(REPLICATIONS):
        units = null_sweep(rng)
        names = sorted(units)
        p = [paired_test(units[a], units[b]).p for i, a in enumerate(names) for b in names[i + 1:]]
        any_adjusted += bool((adjusted(p, method) < 0.05).any())
        any_raw += bool((np.array(p) < 0.05).any())
    # 300 sweeps: the binomial's standard error at 5% is 1.3%; McNemar's exact test is conservative
    assert any_adjusted / REPLICATIONS <= 0.05 + 2 * 0.0126, any_adjusted
    assert any_raw / REPLICATIONS > 0.08, any_raw  # the simulation can tell: without adjustment, too many


def test_with_no_true_difference_the_permutation_test_is_wrong_at_most_5_percent_of_the_time():
    from runner.analysis.statistics import PERMUTATION, paired_test

    rng = np.random.default_rng(8)
    wrong = 0
    replications = 150
    for _ in range(replications):
        level = rng.uniform(0, 1, 30)
        a = {i: float(v) for i, v in enumerate(np.clip(level + rng.normal(0, 0.2, 30), 0, 1))}
        b = {i: float(v) for i, v in enumerate(np.clip(level + rng.normal(0, 0.2, 30), 0, 1))}
        test = paired_test(a, b)
        assert test.name == PERMUTATION
        wrong += test.p < 0.05
    assert wrong / replications <= 0.05 + 2 * 0.0178, wrong


# --- how far to trust a judge -----------------------------------------------------------------------------

A_CELL, B_CELL = "gpt prompt=default temperature=0.7", "gpt prompt=concise temperature=0.7"
SIDES = {A_CELL: {"model": "gpt", "prompt": "default", "temperature": 0.7, "variant": ""},
         B_CELL: {"model": "gpt", "prompt": "concise", "temperature": 0.7, "variant": ""}}


def test_a_pairwise_judges_position_bias_and_its_agreement_with_people_in_the_arena():
    """Items 0-5: the judge picks the default cell in both orders; 6-7: whichever answer it is shown first (its
    orders disagree: a tie); 8-9: the concise cell. People voted on the same items and cells."""
    import pandas as pd

    from runner.analysis import pairwise

    def row(item, order, better):
        shown_first = A_CELL if order == "AB" else B_CELL
        winner = "tie" if better == "tie" else shown_first if better == "A" else \
            (B_CELL if shown_first == A_CELL else A_CELL)
        return {"run_id": "r", "scorer": "pw", "task": "t", "item": item, "repeat": 0, "cell_a": A_CELL,
                "cell_b": B_CELL, "order": order, "judge": "gpt", "status": "ok", "better": better, "winner": winner,
                "reason": "", "cost_usd": None}

    rows = []
    for n in range(10):
        if n <= 5:
            rows += [row(f"q{n}", "AB", "A"), row(f"q{n}", "BA", "B")]
        elif n <= 7:
            rows += [row(f"q{n}", "AB", "A"), row(f"q{n}", "BA", "A")]  # the first shown, both times
        else:
            rows += [row(f"q{n}", "AB", "B"), row(f"q{n}", "BA", "A")]
    people = {0: A_CELL, 1: A_CELL, 2: A_CELL, 3: A_CELL, 4: A_CELL, 5: B_CELL, 6: "tie", 7: "tie", 8: B_CELL,
              9: A_CELL}
    votes = []
    for n, winner in people.items():
        a, b = (B_CELL, A_CELL) if n % 2 else (A_CELL, B_CELL)  # people saw them in either order
        said = "a" if winner == a else "b" if winner == b else ("tie" if n == 6 else "both_bad")
        votes.append({"item": f"q{n}", "step": "turn-1", "a": SIDES[a], "b": SIDES[b], "winner": said})
    judge = ["A"] * 6 + ["tie"] * 2 + ["B"] * 2
    humans = ["A" if people[n] == A_CELL else "B" if people[n] == B_CELL else "tie" for n in range(10)]
    observed = np.mean([x == y for x, y in zip(judge, humans)])  # 0.8
    expected = sum(judge.count(c) * humans.count(c) for c in ("A", "B", "tie")) / 100  # 0.44
    kappa = (observed - expected) / (1 - expected)
    [(title, text)] = pairwise.sections(pd.DataFrame(rows), votes)
    trust = text.split("**How far to trust each judge**", 1)[1]
    low, high = stats.binomtest(2, 10).proportion_ci(method="wilson")
    assert (f"| gpt | 10 | 20% [{low:.0%}, {high:.0%}] | 20% | 10 votes: 80% agree, kappa {kappa:.2f} |"
            in trust), trust
    assert f"{kappa:.2f}" == "0.64"
    # without votes on the same items, it says so rather than a kappa of nothing
    [(_, alone)] = pairwise.sections(pd.DataFrame(rows), [])
    assert "| 20% | no votes on the same items |" in alone


def test_runner_compare_tests_each_change_and_adjusts_over_all_of_them():
    """Three cells: one drops on 6 of 30 items (McNemar p 0.031 alone), the others are unchanged. Adjusted over
    the 3 changes (Holm), the drop is within noise; alone it would have been a regression."""
    import pandas as pd

    from runner.analysis import scores as scores_module

    def frame(passing: dict) -> pd.DataFrame:
        return pd.DataFrame([dict(run_id="r", job="", model=model, task="t", prompt="p", temperature=0.0,
                                  variant="", item=f"q{i}", repeat=0, step="", scorer="s", status="ok",
                                  score=float(i in items), **{"pass": i in items}, reason="", judge="", cost_usd=None)
                             for model, items in passing.items() for i in range(30)])

    before = frame({"a": set(range(20)), "b": set(range(20)), "c": set(range(20))})
    now = frame({"a": set(range(6, 20)), "b": set(range(20)), "c": set(range(20))})
    found = scores_module.changes(before, now).set_index(["model", "scorer"])
    assert found.loc[("a", "overall"), "p"] == pytest.approx(stats.binomtest(0, 6).pvalue)  # 0.03125
    assert found.loc[("a", "overall"), "test"] == "McNemar exact"
    # six rows (overall and s per cell); a's two are 0.031 and the rest 1: Holm gives a 0.031 * 6 -> 0.1875
    assert found.loc[("a", "overall"), "p_adjusted"] == pytest.approx(0.03125 * 6)
    assert found.loc[("a", "overall"), "verdict"] == "within noise"
    text = scores_module.since(before, now, "the earlier run")
    assert "| a | t | p | 0 | overall | 30 | 0.67 → 0.47 |" in text and "| McNemar exact | 0.031 | 0.188 | " \
        "within noise |" in text
    assert "the smallest difference in mean score a change can detect is" in text


def test_report_html_shows_the_decisions_groups_repeats_and_the_pareto_front_in_chromium(sweep, page):
    page.page.goto((sweep / "report.html").as_uri())
    page.page.wait_for_selector("body[data-ready=true]")

    def rows(title: str) -> list[str]:
        section = page.page.locator("section", has=page.page.locator("h2", has_text=title))
        expect(section.locator("table").first).to_be_visible()
        return [" ".join(r.split()) for r in section.locator("table").first.locator("tbody tr").all_text_contents()]

    assert [" ".join(r.split()[:3]) for r in rows("Leaderboard")] == ["1 rival a", "2 strong a", "3 flaky b",
                                                                       "4 weak c"]
    differences = rows("Differences between cells")
    assert len(differences) == 6 and sum("is better" in r for r in differences) == 5
    assert any(r.startswith("strong − rival") and r.endswith("within noise") for r in differences), differences
    repeats = {r.split()[0]: r for r in rows("Repeats")}
    assert "100% [89%, 100%]" in repeats["flaky"] and "0% [0%, 11%]" in repeats["flaky"]
    assert repeats["flaky"].endswith("unreliable") and "unreliable" not in repeats["strong"]
    assert [r.split()[0] for r in rows("Quality for the money")] == ["weak", "strong", "rival"]
    page.page.get_by_text("the cheapest cell statistically tied with the best is strong").first.wait_for()
    assert page.problems == []
