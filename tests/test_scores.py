"""Scores: deterministic scorers on known replies, judges through the engine against the loopback fakes,
intervals against scipy run directly on the same data, re-scoring a folder without answer calls, and the
quality gate's exit code. In this process where the process boundary adds nothing; the command line where
the promise is the command line's (files, exit codes)."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from runner.errors import ConfigError
from tests import forked
from tests.conftest import clean_env
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.inprocess import answer
from tests.fakes.openai_server import default_answer, openai_server

ITEMS = "task.inputs=[{audience: owls, expected: owl}, {audience: cats, expected: cat}]"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def scores_of(folder: Path) -> dict[tuple, dict]:
    return {(r["item"], r["scorer"], r["judge"]): r for r in read_csv(folder / "scores.csv")}


# --- deterministic scorers, in this process on the scripted provider -----------------------------------------

REPLIES = {"owls": 'Why did the owl "who" twice? {"joke": 1}', "cats": '{"joke": "cat", "n": 2}'}

SCORERS = {
    "eq": "{type: equals, value: '{\"joke\": \"cat\", \"n\": 2}'}",
    "ieq": "{type: iequals, value: '{\"JOKE\": \"CAT\", \"N\": 2}'}",
    "has": "{type: contains}",  # the item's `expected`
    "ihas": "{type: icontains, value: OWL}",
    "any": "{type: icontains-any, value: [dog, owl]}",
    "all": "{type: contains-all, value: [owl, who]}",
    "re": "{type: regex, value: 'w[h]o'}",
    "start": "{type: starts-with, value: Why}",
    "json": "{type: is-json}",
    "schema": "{type: json-schema, value: {type: object, required: [joke, n], properties: {n: {type: integer}}}}",
    "short": "{type: length, max: 30}",
    "nojson": "{type: not-is-json}",
    "py": "{type: python, function: 'tests.scorer_functions:mentions_owls'}",
    "pyfloat": "{type: python, function: 'tests.scorer_functions:length_share', threshold: 0.4}",
    "pyhalf": "{type: python, function: 'tests.scorer_functions:half'}",  # a score without pass: at 0.5, passes
}
EXPECTED = {  # (item, scorer): pass
    ("owls", "eq"): False, ("cats", "eq"): True,
    ("owls", "ieq"): False, ("cats", "ieq"): True,
    ("owls", "has"): True, ("cats", "has"): True,
    ("owls", "ihas"): True, ("cats", "ihas"): False,
    ("owls", "any"): True, ("cats", "any"): False,
    ("owls", "all"): True, ("cats", "all"): False,
    ("owls", "re"): True, ("cats", "re"): False,
    ("owls", "start"): True, ("cats", "start"): False,
    ("owls", "json"): False, ("cats", "json"): True,
    ("owls", "schema"): False, ("cats", "schema"): True,
    ("owls", "short"): False, ("cats", "short"): True,
    ("owls", "nojson"): True, ("cats", "nojson"): False,
    ("owls", "py"): True, ("cats", "py"): False,
    ("owls", "pyfloat"): True, ("cats", "pyfloat"): False,
    ("owls", "pyhalf"): True, ("cats", "pyhalf"): True,
}


def test_deterministic_scorers_on_known_replies(scripted, run_settings, run_here, tmp_path):
    scripted.otherwise = lambda request: answer(REPLIES["owls" if "owls" in request.messages[-1]["content"]
                                                        else "cats"])
    overrides = [f"+scorer.{name}={spec}" for name, spec in SCORERS.items()]
    run_here(run_settings("model=scripted", ITEMS, *overrides))
    rows = scores_of(tmp_path / "run")
    got = {(item, scorer): row["pass"] == "true" for (item, scorer, _), row in rows.items()}
    assert got == EXPECTED
    assert all(rows[key]["status"] == "ok" for key in rows)
    assert rows[("owls", "py", "")]["reason"] == "owl found for owls"
    assert rows[("owls", "pyfloat", "")]["score"] == str(len(REPLIES["owls"]) / 100)
    assert rows[("cats", "schema", "")]["score"] == "1.0" and rows[("owls", "nojson", "")]["score"] == "1.0"
    assert "does not match" in rows[("cats", "re", "")]["reason"]
    assert len(scripted.received) == 2  # scoring asked the model nothing


def test_a_scorer_reads_the_step_it_names(scripted, run_settings, run_here, tmp_path):
    """Brochure-like: a scorer with `step` scores that call of each cell; without, the final answer only."""
    scripted.otherwise = lambda request: answer("plain words")
    run_here(run_settings("model=scripted", ITEMS, "+scorer.every={type: length, min: 1, step: '*'}",
                          "+scorer.final={type: length, min: 1}"))
    rows = read_csv(tmp_path / "run" / "scores.csv")
    assert sorted((r["scorer"], r["item"]) for r in rows) == [("every", "cats"), ("every", "owls"),
                                                              ("final", "cats"), ("final", "owls")]


@pytest.mark.parametrize("override,named", [
    ("+scorer.bad={type: regex, value: '(unclosed'}", "not a valid regex"),
    ("+scorer.bad={type: json-schema, value: {type: 12}}", "not a valid JSON Schema"),
    ("+scorer.bad={type: python, function: 'no_such_module_here:f'}", "does not import"),
    ("+scorer.bad={type: containz}", "not a scorer type"),
    ("+scorer.bad={type: judge, judges: [no_such_model], rubric: funny}", "is not a model config"),
    ("+scorer.bad={type: equals}", "no `value` and task.inputs[0] has no expected or reference field"),
    ("fail_under=1.5", "fail_under=1.5 is out of range"),
    ("+fail_under.nope=0.5", "no scorer is named 'nope'"),
    ("judge.temperature=2.5", "judge.temperature=2.5 is out of range"),
    ("judge.max_tokens=0", "judge.max_tokens=0 is out of range"),
    ("+judge.top_p=0.9", "unknown key 'judge.top_p'"),
])
def test_bad_scorers_are_config_errors_before_any_call(scripted, run_settings, override, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("(", r"\(")):
        run_settings("model=scripted", "task.inputs=[{audience: owls}]", "+scorer.ok={type: is-json}", override)


def test_a_judge_temperature_its_judge_refuses_is_a_config_error(scripted, run_settings, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with pytest.raises(ConfigError, match=r"judge.temperature=1.5 is out of range for judge claude \(anthropic "
                                          r"accepts 0 to 1\)"):
        run_settings("model=scripted", "task.inputs=[{audience: owls}]", "judges=[claude]", "judge.temperature=1.5")
    assert run_settings("model=scripted", "task.inputs=[{audience: owls}]", "judges=[claude]",
                        "judge.temperature=1").judge.temperature == 1.0


def test_an_unknown_scorer_name_exits_2_with_one_line_and_calls_nothing(runner):
    with openai_server() as server:
        run = runner("model=gpt", "scorer=no_such_scorer",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
        assert run.code == 2 and not server.received
    assert len(run.stderr.strip().splitlines()) == 1 and "no_such_scorer" in run.stderr


# --- intervals against a reference computation -----------------------------------------------------------

def test_intervals_match_scipy_on_known_data():
    from runner.analysis import scores as scores_module
    from runner.analysis import statistics

    rng = np.random.default_rng(3)
    items = [f"q{i}" for i in range(12)]
    rows = []
    for i, item in enumerate(items):
        for repeat in range(3):
            value = float(np.clip(0.1 * (i % 7) + rng.normal(0, 0.1), 0, 1))
            rows.append(dict(run_id="r", job="", model="m", task="t", prompt="p", temperature=0.0, variant="",
                             item=item, repeat=repeat, step="", scorer="s", status="ok", score=value,
                             **{"pass": value >= 0.3}, reason="", judge="", cost_usd=None))
    df = pd.DataFrame(rows)
    cells = scores_module.per_cell(df)
    cell = cells[cells.scorer == "s"].iloc[0]

    # the reference: resample items (their repeats together) with scipy directly
    sums = df.groupby("item").score.sum().to_numpy()
    counts = df.groupby("item").score.count().to_numpy().astype(float)
    reference = stats.bootstrap((sums, counts), lambda s, c, axis=-1: s.sum(axis) / c.sum(axis), paired=True,
                                vectorized=True, n_resamples=statistics.RESAMPLES, method="BCa",
                                random_state=np.random.default_rng(statistics.SEED)).confidence_interval
    assert cell.score == pytest.approx(df.score.mean())
    assert (cell.score_low, cell.score_high) == pytest.approx((reference.low, reference.high), rel=1e-9)
    # clustered: wider than pretending the 36 calls were independent
    naive = stats.bootstrap((df.score.to_numpy(),), np.mean, n_resamples=statistics.RESAMPLES,
                            random_state=np.random.default_rng(0)).confidence_interval
    assert cell.score_high - cell.score_low > naive.high - naive.low
    wilson = stats.binomtest(int(df["pass"].sum()), len(df)).proportion_ci(method="wilson")
    assert (cell.pass_rate_low, cell.pass_rate_high) == pytest.approx((wilson.low, wilson.high))


def test_a_paired_difference_says_whether_it_excludes_zero():
    from runner.analysis import statistics

    a = {f"q{i}": 0.2 + 0.05 * (i % 3) for i in range(10)}
    better = {k: v + 0.3 + 0.01 * (i % 2) for i, (k, v) in enumerate(a.items())}
    noisy = {k: v + (0.1 if i % 2 else -0.1) for i, (k, v) in enumerate(a.items())}
    diff, paired = statistics.paired_difference(a, better)
    assert paired == 10 and diff.excludes_zero and diff.low > 0
    diff, _ = statistics.paired_difference(a, noisy)
    assert not diff.excludes_zero and diff.low < 0 < diff.high


def test_fleiss_kappa_matches_the_textbook_example():
    """Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories: kappa 0.210."""
    from runner.analysis.statistics import fleiss_kappa

    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(np.array(table)) == pytest.approx(0.210, abs=0.001)


# --- judges through the engine, on the OpenAI fake --------------------------------------------------------

def judging(messages: list[dict]) -> bool:
    return messages[0]["content"].startswith("You are grading")


def scripted_judge(messages: list[dict]) -> str:
    """Answers like the OpenAI fake does; as a judge, a verdict chosen by the answer it was shown."""
    if not judging(messages):
        return default_answer(messages)
    shown = messages[-1]["content"].split("<Answer>")[1].split("</Answer>")[0]
    if "owls" in shown:  # in a ```json fence, as models often answer even in JSON mode: the verdict all the same
        return "```json\n" + json.dumps({"reason": "a joke for owls", "pass": True, "score": 0.9}) + "\n```"
    if "cats" in shown:
        return "I think it is fine, 8/10"  # not the JSON asked for
    return json.dumps({"reason": "not for them", "pass": False, "score": 0.2})


JUDGE = "+scorer.funny={type: judge, judges: [gpt], rubric: 'It is a joke for {audience}'}"
THREE = "task.inputs=[{audience: owls}, {audience: cats}, {audience: dogs}]"


def test_a_judge_answers_to_its_verdict_schema_and_an_unparseable_verdict_is_an_error_row(runner):
    with openai_server(answer=scripted_judge) as server:
        run = runner("model=gpt", THREE, JUDGE, env={"OPENAI_BASE_URL": server.url + "/v1",
                                                     "OPENAI_API_KEY": "test-key"})
        judged = [r.json for r in server.requests_to("/v1/chat/completions") if judging(r.json["messages"])]
    assert len(judged) == 3 and all(r["response_format"]["type"] == "json_schema" for r in judged)
    assert {tuple(r["response_format"]["json_schema"]["schema"]["required"]) for r in judged} == {
        ("reason", "pass", "score")}  # the verdict's schema, as structured output
    assert "It is a joke for owls" in "".join(m["content"] for r in judged for m in r["messages"])
    # the question shown is the one the model answered (the user's message, not the system prompt)
    questions = [r["messages"][-1]["content"].split("<Question>\n", 1)[1].split("\n</Question>", 1)[0] for r in judged]
    assert sorted(questions) == [f"Tell a light-hearted joke for an audience of {a}" for a in ("cats", "dogs", "owls")]
    folder = run.root()
    rows = scores_of(folder)
    assert rows[("owls", "funny", "gpt")]["score"] == "0.9" and rows[("owls", "funny", "gpt")]["pass"] == "true"
    assert rows[("owls", "funny", "gpt")]["reason"] == "a joke for owls"
    assert rows[("dogs", "funny", "gpt")]["score"] == "0.2"
    cats = rows[("cats", "funny", "gpt")]
    assert cats["status"] == "error" and cats["score"] == "" and "I think it is fine, 8/10" in cats["reason"]
    assert float(rows[("owls", "funny", "gpt")]["cost_usd"]) > 0  # priced like any gpt call
    # the judging calls are rows of results.csv, told apart by their step
    steps = sorted(r["step"] for r in read_csv(folder / "results.csv"))
    assert steps == ["", "", "", "judge-funny", "judge-funny", "judge-funny"]
    summary = read_csv(folder / "summary.csv")
    assert len(summary) == 1 and summary[0]["calls"] == "3"  # the answers' cell; judging is apart
    assert summary[0]["scored_funny"] == "2" and float(summary[0]["score_funny"]) == pytest.approx(0.55)
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "## Scores" in report and "## What judging cost" in report and "## Leaderboard" in report
    assert "funny (gpt): 0.90 pass: a joke for owls" in report  # the judge's reason beside the answer
    assert (folder / "quality_vs_cost.png").exists() and "quality_vs_cost.png" in report
    page = (folder / "report.html").read_text(encoding="utf-8")
    data = json.loads(page.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    reasons = [j for found in data["judgments"].values() for j in found]
    assert {"scorer": "funny (gpt)", "score": 0.9, "pass": True, "reason": "<p>a joke for owls</p>\n"} in reasons
    assert "Scores" in [part["title"] for part in data["sections"]]
    assert run.code == 1  # an unparseable verdict is a failure, never a silent zero


def test_claude_judges_through_structured_output_without_prefill(runner):
    """Anthropic has no JSON mode: the judge is asked for the verdict's schema as structured output (no prefill,
    which Claude 4.6 and later refuse), and the verdict read back is that object, not an error row."""
    def claude(messages: list[dict]) -> str:
        score = 0.8 if "owls" in messages[-1]["content"] else 0.3
        return json.dumps({"reason": "it fits the audience", "pass": score > 0.5, "score": score})

    with openai_server() as gpt, anthropic_server(answer=claude) as judge:
        run = runner("model=gpt", "task.inputs=[{audience: owls}]",
                     "+scorer.funny={type: judge, judges: [claude], rubric: 'It is a joke for {audience}'}",
                     env={"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key",
                          "ANTHROPIC_BASE_URL": judge.url, "ANTHROPIC_API_KEY": "test-key"})
        asked = [r.json for r in judge.requests_to("/v1/messages")]
    assert run.code == 0, run.stderr
    assert len(asked) == 1 and asked[0]["messages"][-1]["role"] == "user"
    assert asked[0]["output_config"]["format"]["type"] == "json_schema" and "tool_choice" not in asked[0]
    assert asked[0]["system"].startswith("You are grading")
    row = scores_of(run.root())[("owls", "funny", "claude")]
    assert (row["status"], row["score"], row["pass"], row["reason"]) == ("ok", "0.8", "true", "it fits the audience")
    assert float(row["cost_usd"]) > 0  # priced at Claude's list price


def test_a_judge_without_a_key_is_one_line_and_exit_2_before_any_call(runner, tmp_path):
    conf = tmp_path / "myconf" / "model"
    conf.mkdir(parents=True)
    (conf / "keyless.yaml").write_text("provider: openai\nid: gpt-4o-mini\napi_key_env: KEYLESS_JUDGE_KEY\n")
    with openai_server(answer=scripted_judge) as server:
        run = runner("--config-dir", str(tmp_path / "myconf"), "model=gpt", "task.inputs=[{audience: owls}]",
                     "+scorer.funny={type: judge, judges: [keyless], rubric: funny}",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
        assert server.received == []  # not even the answers: they would be paid for with no verdict
    assert run.code == 2
    [line] = run.stderr.strip().splitlines()
    assert "judge keyless (openai/gpt-4o-mini): KEYLESS_JUDGE_KEY is not set" in line, run.stderr


def test_the_gate_exits_3_after_every_file_is_written(runner):
    with openai_server() as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}
        failing = runner("model=gpt", THREE, "~task.scorers", "+scorer.owl={type: icontains, value: owls}",
                         "fail_under=0.5", env=env)
        assert failing.code == 3, failing.stderr
        folder = failing.root()
        assert {"report.md", "summary.csv", "results.csv", "scores.csv"} <= {p.name for p in folder.iterdir()}
        assert "quality gate failed: gpt (task joke, prompt default, T=0.7): overall 0.333 < 0.5" in failing.stderr
        assert "Quality gate `fail_under=0.5`: **failed**" in (folder / "report.md").read_text(encoding="utf-8")
        passing = runner("model=gpt", THREE, "+scorer.owl={type: icontains, value: owls}", "+fail_under.owl=0.3",
                         env=env)  # the joke's own judge (the fake passes every answer) and owl's gate
        assert passing.code == 0, passing.stderr


def test_rescoring_a_folder_makes_no_answer_calls(runner, tmp_path):
    import subprocess

    with openai_server(answer=scripted_judge) as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key",
               "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
        first = runner("-m", "model=gpt", "temperature=0,1", "task.inputs=[{audience: owls}, {audience: dogs}]",
                       env=env)
        assert first.code == 0 and not (first.root() / "0" / "scores.csv").exists()
        answered = len(server.received)
        assert answered == 4
        rescore = subprocess.run(
            [sys.executable, "-m", "runner.score", str(first.root()), "scorer=judge", "scorer.judge.judges=[gpt]",
             "cache=false", "fail_under=0.6", "judge.max_tokens=512"],
            cwd=tmp_path, env=clean_env(**env), capture_output=True, text=True, timeout=300)
        later = server.received[answered:]
    assert len(later) == 4 and all(judging(r.json["messages"]) for r in later)  # judges only: 0 answer calls
    # at the judge's settings, not the cells' (temperature 0 and 1)
    assert {(r.json["temperature"], r.json["max_completion_tokens"]) for r in later} == {(0, 512)}
    assert rescore.returncode == 3, rescore.stderr  # dogs score 0.2: the gate fails
    for job in ("0", "1"):
        rows = read_csv(first.root() / job / "scores.csv")
        assert sorted((r["item"], r["score"]) for r in rows) == [("dogs", "0.2"), ("owls", "0.9")]
    summary = read_csv(first.root() / "summary.csv")
    assert [r["score"] for r in summary] == ["0.55", "0.55"]
    assert "## Scores" in (first.root() / "report.md").read_text(encoding="utf-8")


def test_rescoring_refuses_settings_that_would_change_the_answers(tmp_path):

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.jsonl").write_text("")
    done = forked.run([sys.executable, "-m", "runner.score", str(folder), "model=claude"], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "only scoring settings" in done.stderr


@pytest.mark.timeout(600)
def test_the_embedded_model_judges_end_to_end(runner):
    """The embedded model as the judge: its verdict is a score row, or an error row with its raw text."""
    with openai_server() as server:
        run = runner("model=gpt", "task.inputs=[{audience: owls}]", "max_tokens=120",
                     "+scorer.funny={type: judge, judges: [local], rubric: 'It is a joke'}",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    [row] = read_csv(run.root() / "scores.csv")
    judged = [r for r in read_csv(run.root() / "results.csv") if r["step"] == "judge-funny"]
    assert len(judged) == 1 and judged[0]["model"] == "local" and judged[0]["status"] == "ok"
    if row["status"] == "ok":
        assert 0 <= float(row["score"]) <= 1 and run.code == 0
    else:
        assert row["status"] == "error" and row["reason"].startswith("the verdict is not the JSON asked for")
        assert " ".join(judged[0]["response"].split())[:100] in row["reason"] and run.code == 1


def test_tutor_ships_scorers_and_its_judge_runs_once_judges_are_named(runner):
    with openai_server() as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}
        plain = runner("model=gpt", "task=tutor", env=env)
        assert plain.code == 0, plain.stderr
        assert not [r for r in server.received if judging(r.json["messages"])]  # judges=[]: no judge called
        assert {r["scorer"] for r in read_csv(plain.root() / "scores.csv")} == {"key_terms"}
        judged = runner("model=gpt", "task=tutor", "judges=[gpt]", env=env)
        assert judged.code == 0, judged.stderr
    rows = read_csv(judged.root() / "scores.csv")
    assert sorted((r["item"], r["scorer"], r["judge"]) for r in rows) == [
        ("sorted-by-value", "correct", "gpt"), ("sorted-by-value", "key_terms", ""),
        ("yield-from-set", "correct", "gpt"), ("yield-from-set", "key_terms", "")]
    [cell] = read_csv(judged.root() / "summary.csv")
    assert cell["score_correct"] == "1.0" and cell["score"] != ""  # the fake judge passes every answer


def test_the_plot_rings_the_cells_none_is_both_cheaper_and_better_than():
    from runner.analysis.pareto import frontier

    # cost, score: B costs more and scores less than A (dominated); C is dearer but better; D ties A
    assert frontier([1.0, 2.0, 3.0, 1.0], [0.5, 0.4, 0.9, 0.5]) == [True, False, True, True]


def test_several_judges_give_their_mean_and_their_agreement(runner, tmp_path):
    with openai_server(answer=scripted_judge) as server:
        conf = tmp_path / "myconf" / "model"
        conf.mkdir(parents=True)
        (conf / "second.yaml").write_text(f"provider: openai\nid: gpt-4o-mini\nbase_url: {server.url}/v1\n"
                                          "api_key_env: SECOND_JUDGE_KEY\n")
        run = runner("--config-dir", str(tmp_path / "myconf"), "model=gpt", THREE,
                     "+scorer.funny={type: judge, judges: [gpt, second], rubric: funny}",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key",
                          "SECOND_JUDGE_KEY": "test-key"})
    rows = scores_of(run.root())
    assert rows[("owls", "funny", "second")]["score"] == "0.9" and rows[("dogs", "funny", "gpt")]["score"] == "0.2"
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    agreement = report.split("## Agreement between judges", 1)[1].split("##", 1)[0]
    # owls: both pass, dogs: both fail (cats: no verdict from either): they agree on 2 of 2, kappa 1
    assert "| funny | gpt, second | 2 | 100% | 1.00 |" in agreement
    judging_cost = report.split("## What judging cost", 1)[1].split("##", 1)[0]
    # each judge as it was called: its own model id, at the judge settings
    assert "| gpt | gpt-4.1-mini | 0 | 1024 | 3 |" in judging_cost, judging_cost
    assert "| second | gpt-4o-mini | 0 | 1024 | 3 |" in judging_cost
    scores_section = report.split("## Scores", 1)[1].split("\n## ", 1)[0]
    assert ("Judged by gpt (gpt-4.1-mini, temperature 0, max_tokens 1024); second (gpt-4o-mini, temperature 0, "
            "max_tokens 1024)") in scores_section


def test_a_score_change_since_the_previous_run_is_a_regression_only_when_its_interval_excludes_zero():
    from runner.analysis import scores as scores_module

    def frame(model_scores: dict) -> pd.DataFrame:
        return pd.DataFrame([dict(run_id="r", job="", model=model, task="t", prompt="p", temperature=0.0, variant="",
                                  item=f"q{i}", repeat=0, step="", scorer="s", status="ok", score=value,
                                  **{"pass": value >= 0.5}, reason="", judge="", cost_usd=None)
                             for model, values in model_scores.items() for i, value in enumerate(values)])

    before = frame({"steady": [0.8, 0.6, 0.9, 0.7, 0.8, 0.6, 0.9, 0.7], "worse": [0.9] * 8})
    now = frame({"steady": [0.7, 0.7, 0.8, 0.8, 0.7, 0.7, 0.8, 0.9], "worse": [0.3, 0.4, 0.3, 0.4, 0.3, 0.4, 0.3, 0.4]})
    text = scores_module.since(before, now, "the previous run")
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "**regression**" in lines["worse"] and "within noise" in lines["steady"]


# --- a judge is a fixed instrument: one model, one setting, in every cell ----------------------------------

def test_a_judge_is_the_same_model_with_its_own_settings_in_every_cell(runner):
    """`model.id`, `temperature` and `max_tokens` are the swept model's: the judge named `gpt` is
    conf/model/gpt.yaml's model at judge.temperature and judge.max_tokens in the gpt cells and the claude
    cells alike, and the rows say so."""
    command = ["-m", "model=gpt,claude", "model.id=claude-haiku-4-5", "temperature=0.3,0.9", "max_tokens=48",
               "judges=[gpt]", "task.inputs=[{audience: owls}]", "cache=false"]
    with openai_server() as gpt, anthropic_server() as claude:
        env = {"OPENAI_BASE_URL": gpt.url + "/v1", "OPENAI_API_KEY": "test-key", "ANTHROPIC_BASE_URL": claude.url,
               "ANTHROPIC_API_KEY": "test-key"}
        dry = runner(*command, "dry_run=true", env=env)
        estimated = [r for r in read_csv(dry.root() / "estimate.csv") if r["step"] == "judge-funny"]
        run = runner(*command, env=env)
        asked = [r.json for r in gpt.requests_to("/v1/chat/completions")]
    assert dry.code == 0 and run.code == 0, dry.stderr + run.stderr
    judged = [r for r in asked if judging(r["messages"])]
    assert len(judged) == 4  # one answer in each of the 4 cells
    assert {(r["model"], r["temperature"], r["max_completion_tokens"]) for r in judged} == {("gpt-4.1-mini", 0, 1024)}
    answered = [r for r in asked if not judging(r["messages"])]  # the gpt cells' own answers keep theirs
    assert sorted((r["model"], r["temperature"], r["max_completion_tokens"]) for r in answered) == [
        ("claude-haiku-4-5", 0.3, 48), ("claude-haiku-4-5", 0.9, 48)]
    calls = [r for r in read_csv(run.root() / "results.csv") if r["step"] == "judge-funny"]
    assert sorted((r["job"], r["model"], r["model_id"], r["temperature"], r["max_tokens"]) for r in calls) == [
        (job, "gpt", "gpt-4.1-mini", "0.0", "1024") for job in "0123"]
    scored = [row for job in "0123" for row in read_csv(run.root() / job / "scores.csv")]
    assert {(r["judge"], r["judge_model_id"], r["judge_temperature"], r["judge_max_tokens"]) for r in scored} == {
        ("gpt", "gpt-4.1-mini", "0.0", "1024")}
    assert sorted(r["temperature"] for r in scored) == ["0.3", "0.3", "0.9", "0.9"]  # the cells judged
    # the dry run estimated the very calls the run made
    assert sorted((r["job"], r["model_id"], float(r["temperature"]), r["output_tokens"]) for r in estimated) == [
        (job, "gpt-4.1-mini", 0.0, "1024") for job in "0123"]


# --- a task's default scorers apply where the items have their fields ----------------------------------------

def test_a_tasks_default_scorer_is_na_for_items_without_its_field_and_required_once_named(runner):
    """conf/task/tutor.yaml's own example: the user's questions have no `keywords`, so its default key_terms
    scorer is n/a for them (a skipped row with the reason, in scores.csv and the report) and the run is whole;
    an item that has them is scored. Named on the command line, the scorer is the user's: exit 2."""
    questions = ('task.inputs=[{question: "print(sorted(d, key=d.get))"}, '
                 '{id: sized, question: "len(s)", keywords: [len]}]')
    with openai_server() as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}
        own = runner("model=gpt", "task=tutor", questions, env=env)
        answered = len(server.received)
        named = runner("model=gpt", "task=tutor", questions, "task.scorers.key_terms.field=keywords", env=env)
        assert len(server.received) == answered  # refused before any call
    assert own.code == 0, own.stderr
    rows = {r["item"]: r for r in read_csv(own.root() / "scores.csv")}
    assert len(rows) == 2 and rows["sized"]["status"] == "ok" and rows["sized"]["score"] == "1.0"
    [other] = [r for item, r in rows.items() if item != "sized"]
    assert other["status"] == "skipped" and other["score"] == "" and other["reason"].startswith("n/a: ")
    assert "no keywords field" in other["reason"] and "default scorer" in other["reason"]
    report = (own.root() / "report.md").read_text(encoding="utf-8")
    scores_section = report.split("## Scores", 1)[1].split("\n## ", 1)[0]
    assert "key_terms: n/a for 1 answer" in scores_section and "no keywords field" in scores_section
    assert named.code == 2
    [line] = named.stderr.strip().splitlines()
    assert "scorer key_terms" in line and "task.inputs[0] has no keywords field" in line, named.stderr


# --- a verdict is a number JSON allows ----------------------------------------------------------------------

def not_a_number_judge(messages: list[dict]) -> str:
    """Python's json writes (and reads) NaN and Infinity, which JSON has not; a judge's model may too."""
    if not judging(messages):
        return default_answer(messages)
    shown = messages[-1]["content"].split("<Answer>")[1].split("</Answer>")[0]
    score = next((s for audience, s in (("owls", "NaN"), ("cats", "Infinity"), ("dogs", '"NaN"'), ("bees", "-Infinity"))
                  if audience in shown), "0.5")
    return f'{{"reason": "hard to say", "pass": true, "score": {score}}}'


def test_a_verdict_whose_score_is_not_a_number_is_an_error_row_never_a_score(runner):
    with openai_server(answer=not_a_number_judge) as server:
        run = runner("model=gpt", "task.inputs=[{audience: owls}, {audience: cats}, {audience: dogs}, "
                     "{audience: bees}, {audience: ants}]",
                     "+scorer.funny={type: judge, judges: [gpt], rubric: funny}", "~task.scorers",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    rows = scores_of(run.root())
    for audience in ("owls", "cats", "dogs", "bees"):
        row = rows[(audience, "funny", "gpt")]
        assert (row["status"], row["score"], row["pass"]) == ("error", "", ""), row
        assert row["reason"].startswith("the verdict is not the JSON asked for") and "hard to say" in row["reason"]
    assert rows[("ants", "funny", "gpt")]["score"] == "0.5"
    [cell] = read_csv(run.root() / "summary.csv")
    assert (cell["scored_funny"], cell["score_funny"]) == ("1", "0.5")  # the one verdict there is
    assert run.code == 1  # verdicts in error fail the run


@pytest.mark.parametrize("text", ['{"reason": "r", "pass": true, "score": NaN}',
                                  '{"reason": "r", "pass": true, "score": 0.5, "confidence": Infinity}',
                                  '{"reason": "r", "pass": false, "score": -Infinity}',
                                  '{"reason": "r", "pass": false, "score": 1e400}'])  # Python reads inf
def test_a_verdict_reads_only_numbers_json_allows(text):
    from runner.scorers import judge

    with pytest.raises(ValueError, match="the verdict is not the JSON asked for"):
        judge.read_verdict(text)


@pytest.mark.parametrize("text", ['{"reason": "r", "better": "A", "confidence": NaN}',
                                  '{"reason": "r", "better": "tie", "margin": -Infinity}'])
def test_a_pairwise_verdict_reads_only_numbers_json_allows(text):
    from runner.scorers import pairwise

    with pytest.raises(ValueError, match="the verdict is not the JSON asked for"):
        pairwise.read_verdict(text)


# --- what the comparison makes of the scores: the gate, pass rates, the leaderboard ------------------------

def compared(folder: Path, fail_under=None):
    """The comparison a run ends with, built from the folder's files (results.jsonl, scores.jsonl)."""
    from runner.analysis.build import build_comparison

    return build_comparison(folder, history_path=folder.parent / "history.sqlite", fail_under=fail_under)


def test_a_mean_score_exactly_at_fail_under_passes_the_gate(scripted, run_settings, run_here, tmp_path):
    scripted.otherwise = lambda request: answer(REPLIES["owls" if "owls" in request.messages[-1]["content"]
                                                        else "cats"])
    run_here(run_settings("model=scripted", ITEMS, "+scorer.owl={type: icontains, value: owl}"))
    folder = tmp_path / "run"  # owls pass, cats fail: a mean of exactly 0.5
    for at_the_mean in (0.5, {"owl": 0.5}):
        comparison = compared(folder, at_the_mean)
        assert comparison.gate_failures == [] and comparison.exit_code == 0
    above = compared(folder, 0.51)
    assert above.exit_code == 3 and above.gate_failures == ["scripted (task joke, prompt default, T=0.7): "
                                                            "overall 0.500 < 0.51"]


def test_a_cell_with_no_score_at_all_fails_the_gate(scripted, run_settings, run_here, tmp_path):
    """A gate that cannot be checked must not pass a CI job: every check raised, so the cell scores n/a."""
    run_here(run_settings("model=scripted", ITEMS, "+scorer.broken={type: python, function: "
                                                   "'tests.scorer_functions:raises'}"))
    for limit in (0.1, {"broken": 0.1}):
        comparison = compared(tmp_path / "run", limit)
        assert comparison.exit_code == 3
        assert len(comparison.gate_failures) == 1 and "has no score (n/a: 0 skipped, 2 in error)" in \
            comparison.gate_failures[0]


def test_a_python_scorers_score_outside_0_to_1_is_an_error_row_not_a_score(scripted, run_settings, run_here,
                                                                           tmp_path):
    run_here(run_settings("model=scripted", "task.inputs=[{audience: owls}]",
                          "+scorer.number={type: python, function: 'tests.scorer_functions:too_high'}",
                          "+scorer.mapping={type: python, function: 'tests.scorer_functions:too_high_in_a_dict'}"))
    rows = {r["scorer"]: r for r in read_csv(tmp_path / "run" / "scores.csv")}
    for name in ("number", "mapping"):
        assert rows[name]["status"] == "error" and rows[name]["score"] == "", rows[name]
        assert "1.7" in rows[name]["reason"] and "not a number from 0 to 1" in rows[name]["reason"]


def test_every_repeat_of_an_item_is_scored(scripted, run_settings, run_here, tmp_path):
    replies = iter(["an owl", "no bird at all", "an owl again", "a cat"])
    scripted.otherwise = lambda request: answer(next(replies))
    run_here(run_settings("model=scripted", "task.inputs=[{audience: owls}]", "repeats=4",
                          "+scorer.owl={type: icontains, value: owl}"))
    rows = read_csv(tmp_path / "run" / "scores.csv")
    assert sorted(r["repeat"] for r in rows) == ["0", "1", "2", "3"]
    [cell] = compared(tmp_path / "run").summary.to_dict("records")
    assert cell["scored"] == 4 and cell["score"] == 0.5


def test_the_leaderboard_puts_the_best_model_first_and_an_unpriced_ones_cost_is_unknown(scripted, run_settings,
                                                                                       run_here, tmp_path):
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "rival.yaml").write_text("provider: scripted\nid: scripted-2\n")  # no price: its cost is unknown, not $0
    sweep = tmp_path / "sweep"
    # the worse model answers first: the leaderboard's order is the scores', not the jobs'
    for job, (model, reply) in enumerate([("scripted", "no bird"), ("rival", "an owl")]):
        scripted.otherwise = lambda request, reply=reply: answer(reply)
        run_here(run_settings(f"model={model}", ITEMS, "+scorer.owl={type: icontains, value: owl}",
                              f"hydra.searchpath=[file://{(tmp_path / 'conf').as_posix()}]"), sweep / str(job))
    compared(sweep)
    report = (sweep / "report.md").read_text(encoding="utf-8")
    board = report.split("## Leaderboard", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in board.splitlines()
            if line.startswith("| ") and "---" not in line]
    assert rows[0][:2] + rows[0][-1:] == ["rank", "model", "answer cost per call"]
    assert [row[:2] for row in rows[1:]] == [["1", "rival"], ["2", "scripted"]]
    assert rows[1][-1] == "n/a" and rows[2][-1].startswith("$")  # priced: a figure
    for title in ("Scores", "Leaderboard"):  # GitHub draws no table whose rows and alignments differ in width
        lines = [line for line in report.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].splitlines()
                 if line.startswith("| ")]
        assert len(lines) > 2 and len({len(line.replace("\\|", "").split(" | ")) for line in lines}) == 1, title


def test_an_answer_half_its_judges_pass_passes(runner, tmp_path):
    """Two judges split 1-1 on the only answer: it passes (at least half of them pass it); its score is their
    mean."""
    import threading

    lock, said = threading.Lock(), []

    def split(messages: list[dict]) -> str:
        if not judging(messages):
            return default_answer(messages)
        with lock:  # the two judges are asked at once: whichever comes first passes it
            said.append(not said)
            passed = said[-1]
        return json.dumps({"reason": "split", "pass": passed, "score": 0.8 if passed else 0.2})

    with openai_server(answer=split) as server:
        conf = tmp_path / "myconf" / "model"
        conf.mkdir(parents=True)
        (conf / "second.yaml").write_text(f"provider: openai\nid: gpt-4o-mini\nbase_url: {server.url}/v1\n"
                                          "api_key_env: SECOND_JUDGE_KEY\n")
        run = runner("--config-dir", str(tmp_path / "myconf"), "model=gpt", "task.inputs=[{audience: owls}]",
                     "+scorer.funny={type: judge, judges: [gpt, second], rubric: funny}",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key",
                          "SECOND_JUDGE_KEY": "test-key"})
    assert run.code == 0, run.stderr
    assert sorted(r["pass"] for r in read_csv(run.root() / "scores.csv")) == ["false", "true"]
    [cell] = read_csv(run.root() / "summary.csv")
    assert float(cell["pass_rate_funny"]) == 1.0 and float(cell["score_funny"]) == pytest.approx(0.5)


def test_a_judges_score_above_1_is_an_error_row_not_a_score(runner):
    def overjoyed(messages: list[dict]) -> str:
        if not judging(messages):
            return default_answer(messages)
        return json.dumps({"reason": "best joke ever", "pass": True, "score": 1.5})

    with openai_server(answer=overjoyed) as server:
        run = runner("model=gpt", "task.inputs=[{audience: owls}]", JUDGE,
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    [row] = read_csv(run.root() / "scores.csv")
    assert row["status"] == "error" and row["score"] == "" and "1.5" in row["reason"]
    assert run.code == 1  # a verdict that is not one is a failure, never a score


def test_a_judge_scorers_threshold_decides_pass_from_the_score(runner):
    """With `threshold`, an answer passes when the judge's score reaches it, whatever the judge's own pass."""
    def verdict(messages: list[dict]) -> str:
        if not judging(messages):
            return default_answer(messages)
        shown = messages[-1]["content"].split("<Answer>")[1].split("</Answer>")[0]
        if "owls" in shown:  # the judge says pass, its score is under the threshold
            return json.dumps({"reason": "a joke, barely", "pass": True, "score": 0.6})
        return json.dumps({"reason": "not quite", "pass": False, "score": 0.8})

    with openai_server(answer=verdict) as server:
        run = runner("model=gpt", "task.inputs=[{audience: owls}, {audience: dogs}]",
                     "+scorer.funny={type: judge, judges: [gpt], rubric: funny, threshold: 0.7}",
                     env={"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"})
    assert run.code == 0, run.stderr
    rows = {r["item"]: r for r in read_csv(run.root() / "scores.csv")}
    assert (rows["owls"]["score"], rows["owls"]["pass"]) == ("0.6", "false")
    assert (rows["dogs"]["score"], rows["dogs"]["pass"]) == ("0.8", "true")


def test_a_step_scorer_gives_each_call_it_reads_a_row_of_its_own_named_by_its_step(scripted, run_settings, run_here,
                                                                                  tmp_path):
    scripted.otherwise = lambda request: answer("Hats are 60% off!" if "shoes" in request.messages[-1]["content"]
                                                else "Hello, welcome in.")
    run_here(run_settings("model=scripted", "task=chat", "task.inputs=[{id: shopper, messages: [Hi, I want shoes]}]",
                          "+scorer.hats={type: icontains, value: hat, step: 'turn-*'}"))
    rows = read_csv(tmp_path / "run" / "scores.csv")
    assert sorted((r["scorer"], r["step"], r["pass"]) for r in rows) == [("hats", "turn-1", "false"),
                                                                          ("hats", "turn-2", "true")]


def test_a_rerun_into_a_judged_folder_scores_the_answers_recorded_after_the_judging(runner):
    """The same command re-run into the same folder (hydra.run.dir) appends its calls after the first run's
    judging calls; every answer of the folder is scored, not only those before the first verdict."""
    with openai_server(answer=scripted_judge) as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "test-key"}
        first = runner("model=gpt", "task.inputs=[{audience: owls}]", JUDGE, "hydra.run.dir=outputs/runs/same",
                       env=env)
        assert first.code == 0, first.stderr
        again = runner("model=gpt", "task.inputs=[{audience: owls}, {audience: dogs}]", JUDGE,
                       "hydra.run.dir=outputs/runs/same", env=env)
    assert again.code == 0, again.stderr
    rows = scores_of(again.cwd / "outputs/runs/same")
    assert sorted((item, r["score"]) for (item, _, _), r in rows.items()) == [("dogs", "0.2"), ("owls", "0.9")]
