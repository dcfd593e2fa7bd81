"""Pairwise judging: the order swap against the loopback OpenAI fake (a judge that always picks the first
position gives ties, not wins; one that picks a cell's answer in both orders gives that cell the wins), a
verdict that is not JSON, `runner.score` over a finished sweep with 0 answer calls, the Pairwise section at the
end of a multirun, and Bradley-Terry and its interval against scipy run directly on the same data."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect
from scipy import optimize, stats

from runner.analysis import pairwise, statistics
from runner.errors import ConfigError
from tests import forked
from tests.browser import chromium, watched_page  # noqa: F401 - fixtures browser and page
from tests.conftest import clean_env
from tests.fakes.openai_server import openai_server

THREE = "task.inputs=[{audience: owls}, {audience: cats}, {audience: dogs}]"
PROMPTS = "prompt=default,concise,spanish"  # three cells whose answers tell them apart


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def is_pairwise(messages: list[dict]) -> bool:
    return messages[0]["content"].startswith("You are comparing two answers")


def shown(messages: list[dict], position: str) -> str:
    return messages[-1]["content"].split(f"<Answer {position}>")[1].split(f"</Answer {position}>")[0]


def answers_by_prompt(messages: list[dict]) -> str:
    """A cell's answer names its prompt (the system prompt tells them apart)."""
    system = messages[0]["content"]
    kind = "SPANISH" if "Spanish" in system else "SHORT" if "short" in system else "PLAIN"
    return f"{kind} joke for {messages[-1]['content'].split()[-1]}"


def first_position_judge(messages: list[dict]) -> str:
    if not is_pairwise(messages):
        return answers_by_prompt(messages)
    return json.dumps({"reason": "the first one reads better", "better": "A"})


def short_judge(messages: list[dict]) -> str:
    """Picks the concise cell's answer wherever it is shown; for dogs, a verdict that is not the JSON asked for."""
    if not is_pairwise(messages):
        return answers_by_prompt(messages)
    if "joke for dogs" in shown(messages, "A"):
        return "Both are fine, I prefer the first one"
    better = "A" if "SHORT" in shown(messages, "A") else "B" if "SHORT" in shown(messages, "B") else "tie"
    return json.dumps({"reason": f"{better} is shorter", "better": better})


def env_for(server, tmp_path: Path) -> dict:
    return {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key",
            "RUNNER_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture(scope="module")
def first_position(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, list[dict]]:
    """A multirun of three cells with a pairwise scorer whose judge always picks the answer shown first:
    (the finished command, its sweep folder, the judging requests the fake received)."""
    cwd = tmp_path_factory.mktemp("pairwise")
    with openai_server(answer=first_position_judge) as server:
        done = forked.run([sys.executable, "-m", "runner", "-m", "model=gpt", PROMPTS, THREE, "scorer=pairwise",
                               "hydra.sweep.dir=outputs/sweeps/pairs"], cwd=cwd,
                              env=clean_env(**env_for(server, cwd)), capture_output=True, text=True, timeout=600)
        judged = [r.json for r in server.requests_to("/v1/chat/completions") if is_pairwise(r.json["messages"])]
    return done, cwd / "outputs/sweeps/pairs", judged


def test_a_judge_that_always_picks_the_first_position_gives_ties_at_the_end_of_a_multirun(first_position):
    done, folder, judged = first_position
    assert done.returncode == 0, done.stderr
    assert len(judged) == 18  # 3 pairs of cells x 3 items x 2 orders x 1 judge
    assert "this run is one cell" not in done.stderr  # a sweep's jobs are cells of a sweep
    assert "runner: pairwise judging: 18 call(s)" in done.stderr  # the judging sessions' counts, summed
    assert all(r["response_format"]["type"] == "json_schema" for r in judged)  # the verdict's schema
    assert {tuple(r["response_format"]["json_schema"]["schema"]["required"]) for r in judged} == {("reason", "better")}
    rows = read_csv(folder / "pairwise.csv")
    assert len(rows) == 18 and {r["status"] for r in rows} == {"ok"}
    assert {(r["order"], r["better"]) for r in rows} == {("AB", "A"), ("BA", "A")}
    # the first position is cell_a in one order and cell_b in the other: every pair is a tie
    assert all(r["winner"] == (r["cell_a"] if r["order"] == "AB" else r["cell_b"]) for r in rows)
    assert len({(r["item"], r["cell_a"], r["cell_b"]) for r in rows}) == 9
    assert all(float(r["cost_usd"]) > 0 for r in rows)  # priced like any gpt call
    assert [json.loads(line)["order"] for line in (folder / "pairwise.jsonl").read_text().splitlines()].count("BA") == 9
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "## Pairwise" in report and "## What judging cost" in report
    assert f"run `{folder.name}`, 3 job(s)" in report  # the judges' folder is no job
    section = report.split("## Pairwise", 1)[1].split("\n## ", 1)[0]
    assert "both orders agreed on 0 of 9 pairs" in section
    assert "picked the answer shown first in 18" in section
    board = [line for line in section.splitlines() if line.startswith(("| 1 |", "| 2 |", "| 3 |"))]
    assert len(board) == 3 and all("| 1000 [1000, 1000] | 50% | 6 |" in line for line in board), section
    # the judging calls are recorded like any call, apart from the answers
    steps = [r["step"] for r in read_csv(folder / "results.csv")]
    assert sum(s.startswith("judge-pairwise@") for s in steps) == 18 and steps.count("") == 9
    assert [r["calls"] for r in read_csv(folder / "summary.csv")] == ["3", "3", "3"]
    page = (folder / "report.html").read_text(encoding="utf-8")
    data = json.loads(page.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    assert "Pairwise" in [part["title"] for part in data["sections"]]


def test_rescoring_a_sweep_pairwise_makes_no_answer_calls_and_a_cell_picked_in_both_orders_wins(runner, tmp_path):
    with openai_server(answer=short_judge) as server:
        env = env_for(server, tmp_path)
        first = runner("-m", "model=gpt", PROMPTS, THREE, env=env)
        assert first.code == 0, first.stderr
        answered = len(server.received)
        assert answered == 9
        rescore = forked.run([sys.executable, "-m", "runner.score", str(first.root()), "scorer=pairwise"],
                                 cwd=tmp_path, env=clean_env(**env), capture_output=True, text=True, timeout=300)
        later = server.received[answered:]
        rows = read_csv(first.root() / "pairwise.csv")
        report = (first.root() / "report.md").read_text(encoding="utf-8")
        # judged again: every verdict comes from the response cache, nothing is asked twice
        again = forked.run([sys.executable, "-m", "runner.score", str(first.root()), "scorer=pairwise"],
                               cwd=tmp_path, env=clean_env(**env), capture_output=True, text=True, timeout=300)
        assert len(server.received) == answered + len(later)
    assert len(later) == 18 and all(is_pairwise(r.json["messages"]) for r in later)  # judges only: 0 answer calls
    folder = first.root()
    dogs = [r for r in rows if r["item"] == "dogs"]
    assert len(dogs) == 6 and all(r["status"] == "error" and r["winner"] == "" for r in dogs)
    assert all("Both are fine, I prefer the first one" in r["reason"] for r in dogs)  # the raw text, not a tie
    assert rescore.returncode == 1, rescore.stderr  # a verdict in error fails the run
    counted = pairwise.outcomes(pairwise.read(folder))
    assert len(counted) == 6  # owls and cats: 3 pairs each; dogs' pairs count nowhere
    for r in counted.itertuples():
        concise = "prompt=concise" in r.cell_a or "prompt=concise" in r.cell_b
        expected = (1.0 if "prompt=concise" in r.cell_a else 0.0) if concise else 0.5
        assert r.points_a == expected and r.agreed
    section = report.split("## Pairwise", 1)[1].split("\n## ", 1)[0]
    first_row = next(line for line in section.splitlines() if line.startswith("| 1 |"))
    assert "concise" in first_row and "| 100% | 4 |" in first_row
    assert "6 error" in section
    assert again.returncode == 1 and read_csv(folder / "pairwise.csv") == rows
    assert section == (folder / "report.md").read_text(encoding="utf-8").split("## Pairwise", 1)[1] \
        .split("\n## ", 1)[0]  # the same verdicts, from the cache


def test_report_html_shows_the_pairwise_ranking_in_chromium(first_position, page):
    _, folder, _ = first_position
    page.page.goto((folder / "report.html").as_uri())
    page.page.wait_for_selector("body[data-ready=true]")
    section = page.page.locator("section", has=page.page.locator("h2", has_text="Pairwise"))
    expect(section.locator("table").first).to_be_visible()
    ranked = section.locator("table").first.locator("tbody tr").all_text_contents()
    assert len(ranked) == 3 and all("1000 [1000, 1000]" in row and "50%" in row for row in ranked), ranked
    assert "both orders agreed on 0 of 9 pairs" in section.text_content()
    assert page.problems == []


def test_a_pairwise_judge_is_its_own_config_at_the_judge_settings_whatever_the_cells_are(runner, tmp_path):
    """The sweep's cells override model.id, temperature and max_tokens; the pairwise judge `gpt` is still
    conf/model/gpt.yaml's model, asked at judge.temperature and judge.max_tokens, and its rows say so."""
    with openai_server(answer=first_position_judge) as server:
        run = runner("-m", "model=gpt", "prompt=default,concise", "model.id=swept-model", "temperature=0.9",
                     "max_tokens=48", "task.inputs=[{audience: owls}]", "scorer=pairwise", "judge.max_tokens=300",
                     env=env_for(server, tmp_path))
        asked = [r.json for r in server.requests_to("/v1/chat/completions")]
    assert run.code == 0, run.stderr
    judged = [r for r in asked if is_pairwise(r["messages"])]
    assert len(judged) == 2  # one pair, both orders
    assert {(r["model"], r["temperature"], r["max_completion_tokens"]) for r in judged} == {("gpt-4.1-mini", 0, 300)}
    rows = read_csv(run.root() / "pairwise.csv")
    assert {(r["judge"], r["judge_model_id"], r["judge_temperature"], r["judge_max_tokens"]) for r in rows} == {
        ("gpt", "gpt-4.1-mini", "0.0", "300")}
    calls = [r for r in read_csv(run.root() / "results.csv") if r["step"].startswith("judge-")]
    assert {(r["model_id"], r["temperature"], r["max_tokens"]) for r in calls} == {("gpt-4.1-mini", "0.0", "300")}


@pytest.mark.parametrize("override, named", [
    ("+scorer.pw={type: pairwise, rubric: better}", "a pairwise scorer needs `judges`"),
    ("+scorer.pw={type: pairwise, judges: [gpt]}", "a pairwise scorer needs a `rubric`"),
    ("+scorer.pw={type: not-pairwise, judges: [gpt], rubric: better}", "cannot be negated"),
    ("+scorer.pw={type: pairwise, judges: [no_such_model], rubric: better}", "is not a model config"),
])
def test_bad_pairwise_scorers_are_config_errors_before_any_call(scripted, run_settings, override, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("`", "`")):
        run_settings("model=scripted", "task.inputs=[{audience: owls}]", override)


def test_a_pairwise_judge_without_a_key_is_one_line_and_exit_2_before_any_call(runner, tmp_path):
    with openai_server() as server:
        run = runner("-m", "model=gpt", "prompt=default,concise", "task.inputs=[{audience: owls}]",
                     "scorer=pairwise", "scorer.pairwise.judges=[claude]",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
        assert server.received == []
    assert run.code == 2
    [line] = run.stderr.strip().splitlines()
    assert "judge claude" in line and "ANTHROPIC_API_KEY" in line, run.stderr


# --- Bradley-Terry and its interval against a reference computation --------------------------------------

def reference_fit(wins: np.ndarray, prior: float) -> np.ndarray:
    """The same model by direct maximisation with scipy (not Newton): the log-likelihood of the points won, plus
    each cell's virtual tie against a cell of strength 1; log-strengths centred on 0."""
    def loss(theta):
        diff = theta[:, None] - theta[None, :]
        fit = -np.sum(wins * -np.logaddexp(0, -diff))
        fit -= prior / 2 * np.sum(-np.logaddexp(0, -theta) - np.logaddexp(0, theta))
        return fit

    theta = optimize.minimize(loss, np.zeros(len(wins)), method="BFGS", options={"gtol": 1e-10}).x
    return theta - theta.mean()


KNOWN = np.array([[0, 7, 9, 4], [3, 0, 6, 5.5], [1, 4, 0, 2.5], [6, 4.5, 7.5, 0]])  # points i won against j


def test_bradley_terry_matches_a_direct_maximum_likelihood_fit():
    for prior in (0.0, pairwise.PRIOR):
        assert pairwise.bradley_terry(KNOWN, prior=prior) == pytest.approx(reference_fit(KNOWN, prior), abs=1e-5)
    # without the prior, the maximum-likelihood equations: each cell's expected points equal its points
    strength = np.exp(pairwise.bradley_terry(KNOWN, prior=0))
    games = KNOWN + KNOWN.T
    expected = (games * strength[:, None] / (strength[:, None] + strength[None, :])).sum(axis=1)
    assert expected == pytest.approx(KNOWN.sum(axis=1), abs=1e-6)
    # a cell that won every game keeps a finite rating
    assert np.isfinite(pairwise.bradley_terry(np.array([[0, 5.0], [0, 0]]))).all()


def test_the_ranking_and_its_interval_match_scipy_bootstrapping_the_reference_fit(monkeypatch):
    rng = np.random.default_rng(7)
    cells = ["gpt prompt=default temperature=0.7", "claude prompt=default temperature=0.7",
             "gemini prompt=default temperature=0.7"]
    strength = {cells[0]: 1.0, cells[1]: 0.3, cells[2]: -0.4}
    rows = []
    for item in range(12):
        for a, b in [(0, 1), (0, 2), (1, 2)]:
            for repeat in range(2):
                p = 1 / (1 + np.exp(strength[cells[b]] - strength[cells[a]]))
                points = rng.choice([1.0, 0.5, 0.0], p=[p * 0.8, 0.2, (1 - p) * 0.8])
                rows.append(("pw", "joke", f"i{item}", repeat, "gpt", cells[a], cells[b], points, True))
    frame = pd.DataFrame(rows, columns=pairwise.OUTCOME_KEYS + ["points_a", "agreed"])
    monkeypatch.setattr(pairwise, "RESAMPLES", 300)
    ranked = pairwise.ranking(frame).set_index("cell")
    # the reference: scipy's bootstrap over items, each resample fitted by scipy.optimize
    order = sorted(cells)
    items = sorted(set(frame.item))
    per_item = np.zeros((len(items), 3, 3))
    for r in frame.itertuples():
        i, a, b = items.index(r.item), order.index(r.cell_a), order.index(r.cell_b)
        per_item[i, a, b] += r.points_a
        per_item[i, b, a] += 1 - r.points_a

    def rating(picked, axis=-1):
        fits = [reference_fit(per_item[row].sum(axis=0), pairwise.PRIOR) for row in np.atleast_2d(picked)]
        return (1000 + pairwise.ELO * np.array(fits)).T

    result = stats.bootstrap((np.arange(len(items)),), rating, vectorized=True, n_resamples=300,
                             method="percentile", batch=250, random_state=np.random.default_rng(statistics.SEED))
    point = rating(np.arange(len(items)))[:, 0]
    for k, cell in enumerate(order):
        assert ranked.loc[cell, "rating"] == pytest.approx(point[k], abs=1e-3)
        assert ranked.loc[cell, "rating_low"] == pytest.approx(result.confidence_interval.low[k], abs=1e-3)
        assert ranked.loc[cell, "rating_high"] == pytest.approx(result.confidence_interval.high[k], abs=1e-3)
    assert list(ranked.index)[0] == cells[0] and ranked.loc[cells[0], "rating_low"] < point[order.index(cells[0])]


def test_a_win_rate_counts_ties_half_with_wilsons_interval():
    whole = pairwise.wilson_share(7, 10)
    assert (whole.low, whole.high) == pytest.approx(tuple(stats.binomtest(7, 10).proportion_ci(method="wilson")))
    frame = pd.DataFrame([("pw", "t", f"i{n}", 0, "gpt", "a x=1", "b x=1", points, True)
                          for n, points in enumerate([1, 1, 0.5, 0.5, 0])],
                         columns=pairwise.OUTCOME_KEYS + ["points_a", "agreed"])
    rates = pairwise.win_rates(frame).set_index("cell")
    assert rates.loc["a x=1", "rate"] == pytest.approx(3 / 5) and rates.loc["b x=1", "rate"] == pytest.approx(2 / 5)
    assert rates.loc["a x=1", ["wins", "ties", "games"]].tolist() == [2, 2, 5]


def test_a_pair_is_won_only_when_both_orders_pick_the_same_cell():
    def row(item, order, winner, status="ok"):
        better = "tie" if winner == "tie" else "A" if (winner == "a x=1") == (order == "AB") else "B"
        return {"run_id": "r", "scorer": "pw", "task": "t", "item": item, "repeat": 0, "cell_a": "a x=1",
                "cell_b": "b x=1", "order": order, "judge": "gpt", "status": status, "better": better,
                "winner": winner, "reason": "", "cost_usd": None}

    rows = pd.DataFrame([row("both-a", "AB", "a x=1"), row("both-a", "BA", "a x=1"),
                         row("both-b", "AB", "b x=1"), row("both-b", "BA", "b x=1"),
                         row("split", "AB", "a x=1"), row("split", "BA", "b x=1"),
                         row("half-tie", "AB", "a x=1"), row("half-tie", "BA", "tie"),
                         row("one-error", "AB", "a x=1"), row("one-error", "BA", "", status="error")])
    found = pairwise.outcomes(rows).set_index("item")
    assert found.points_a.to_dict() == {"both-a": 1.0, "both-b": 0.0, "split": 0.5, "half-tie": 0.5}
    assert found.agreed.to_dict() == {"both-a": True, "both-b": True, "split": False, "half-tie": False}


def test_a_single_run_with_a_pairwise_scorer_says_it_judges_nothing(runner, tmp_path):
    """One run is one cell: there is no pair to judge, and the user is told so rather than left wondering."""
    with openai_server(answer=first_position_judge) as server:
        run = runner("model=gpt", "task.inputs=[{audience: owls}]", "scorer=pairwise", env=env_for(server, tmp_path))
    assert run.code == 0, run.stderr
    assert len(server.received) == 1  # the answer; no judge call
    assert "a pairwise scorer compares a sweep's cells and this run is one cell" in run.stderr
    assert not (run.root() / "pairwise.csv").exists()
