"""The course's tasks through the real command line: pages from a local site, the model behind the strict
OpenAI fake. Assertions are on what the servers received (messages, page reads) and what the run wrote."""
from __future__ import annotations

import json
import os

import pytest

from runner.tasks.brochure import LINKS_SCHEMA
from runner.tasks.snapshots import snapshot_name
from runner.tasks.web import Page
from tests.conftest import REPO
from tests.fakes.openai_server import openai_server
from tests.fakes.server import FakeServer
from tests.fakes.site import reads, site
from tests.no_metadata import GUARD_PATH

KEY = {"OPENAI_API_KEY": "test-key"}
# the run's process blocks (and reports on stderr) any connection to a link-local or metadata address
GUARDED = {"PYTHONPATH": f"{GUARD_PATH}{os.pathsep}{REPO}"}


def env_for(ai) -> dict:
    return {**KEY, "OPENAI_BASE_URL": ai.url + "/v1"}


def sent(ai) -> list[list[dict]]:
    """The messages of every chat completion the fake received, in order."""
    return [r.json["messages"] for r in ai.requests_to("/v1/chat/completions")]


def jsonl(root) -> list[dict]:
    return [json.loads(line) for path in sorted(root.rglob("results.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def web():
    with site() as server:
        yield server


def test_summarize_sends_title_and_visible_text_and_nothing_hidden(runner, web):
    with openai_server() as ai:
        run = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/,{web.url}/latin1,{web.url}/cafe]",
                     env=env_for(ai))
    assert run.code == 0, run.stderr
    by_title = {m[1]["content"].splitlines()[0]: m for m in sent(ai)}
    home = by_title["You are looking at a website titled Acme Rockets | Home"]
    assert home[0]["role"] == "system" and "ignoring text that might be navigation related" in home[0]["content"]
    assert "Acme Rockets builds reusable launch vehicles in Springfield." in home[1]["content"]
    assert "SECRET" not in json.dumps(sent(ai))  # scripts, styles, alt text, form values
    latin = by_title["You are looking at a website titled Caf\u00e9 M\u00fcller"]
    assert latin[1]["content"].endswith("Cr\u00e8me br\u00fbl\u00e9e \u00e0 Z\u00fcrich, 5 \u00a3")
    # UTF-8 served as text/html without a charset: its <meta charset> decides, not requests' ISO-8859-1
    cafe = by_title["You are looking at a website titled Caf\u00e9 de la Gare"]
    assert cafe[1]["content"].endswith("Caf\u00e9 cr\u00e8me, na\u00efve \u0152uvre, \u20ac3")
    assert "\u00c3" not in json.dumps(sent(ai), ensure_ascii=False)  # no "CafÃ©" anywhere
    rows = run.rows()
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"] and all(r["note"] == "" for r in rows)


def test_long_page_is_cut_and_the_row_says_so(runner, web):
    with openai_server() as ai:
        run = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/]", "task.max_page_chars=40",
                     env=env_for(ai))
    assert run.code == 0, run.stderr
    user = sent(ai)[0][1]["content"]
    assert user.endswith("\n\nHome\nAbout us\nCareers\nTerms of Service\nP")  # the first 40 characters
    assert run.rows()[0]["note"].startswith("page text cut at 40 of ")


def test_unreadable_pages_fail_only_their_own_cells(runner, web):
    with FakeServer({}) as closed:
        refused = closed.url + "/"
    inputs = f"task.inputs=[{web.url}/gone,{refused},{web.url}/about,{web.url}/brochure.pdf]"
    with openai_server() as ai:
        run = runner("-m", "model=gpt", "temperature=0,0.5", "task=summarize", inputs, env=env_for(ai))
    assert run.code == 1, run.stderr
    rows = run.rows()
    assert len(rows) == 8
    status = {(r["temperature"], r["item"]): (r["status"], r["error"]) for r in rows}
    for t in ("0.0", "0.5"):
        assert status[(t, f"{web.url}/about")] == ("ok", "")
        assert status[(t, f"{web.url}/gone")] == ("error", f"{web.url}/gone: HTTP 404 Not Found")
        assert status[(t, refused)] == ("error", f"{refused}: connection refused")
        assert status[(t, f"{web.url}/brochure.pdf")][1].endswith("not an HTML page (Content-Type application/pdf)")
    assert len(sent(ai)) == 2 and all("founded in 1999" in m[1]["content"] for m in sent(ai))


LINK_LOCAL = "a link-local address, where cloud metadata services answer (refused)"


def test_pages_that_must_not_be_fetched_or_sent_are_error_rows_and_never_reach_the_model(runner, web, tmp_path):
    metadata = "http://169.254.169.254/latest/meta-data/"
    items = [metadata, f"{web.url}/redirect?to={metadata}", f"{web.url}/redirect?to=file:///etc/passwd",
             f"{web.url}/picture", f"{web.url}/blank", f"{web.url}/about"]
    (tmp_path / "pages.yaml").write_text(json.dumps(items), encoding="utf-8")
    with openai_server() as ai:
        run = runner("model=gpt", "task=summarize", "task.inputs=pages.yaml", env={**env_for(ai), **GUARDED})
    assert run.code == 1, run.stderr
    assert "test guard" not in run.stderr  # nothing tried to connect to the metadata address
    errors = {r["item"]: r["error"] for r in run.rows()}
    assert errors == {
        metadata: f"{metadata}: 169.254.169.254 is {LINK_LOCAL}",
        items[1]: f"{items[1]}: redirected to {metadata}: 169.254.169.254 is {LINK_LOCAL}",
        items[2]: f"{items[2]}: redirected to a file:// URL (refused)",
        items[3]: f"{items[3]}: the page has no readable text (its content is a PNG image, not HTML)",
        items[4]: f"{items[4]}: the page has no readable text (nothing visible in its body)",
        items[5]: "",
    }
    assert len(sent(ai)) == 1 and "founded in 1999" in sent(ai)[0][1]["content"]  # only the readable page


def test_private_pages_false_refuses_loopback_pages(runner, web):
    with openai_server() as ai:
        run = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/about]", "task.private_pages=false",
                     env=env_for(ai))
    assert run.code == 1, run.stderr
    [row] = run.rows()
    assert row["error"] == f"{web.url}/about: 127.0.0.1 is a loopback address (refused: task.private_pages=false)"
    assert reads(web, "/about") == 0 and not sent(ai)


def test_every_job_of_a_sweep_reads_one_snapshot_of_a_changing_page(runner, web):
    with openai_server() as ai:
        run = runner("-m", "model=gpt", "temperature=0,0.7", "task=summarize", f"task.inputs=[{web.url}/news]",
                     env=env_for(ai))
    assert run.code == 0, run.stderr
    assert reads(web, "/news") == 1  # the second job did not fetch again
    assert [m[1]["content"].split("\n\n")[-1] for m in sent(ai)] == ["Edition 1", "Edition 1"]
    assert (run.root() / "pages" / snapshot_name(f"{web.url}/news")).is_file()


def test_a_rerun_into_the_same_folder_reuses_the_snapshot(runner, web, tmp_path):
    folder = tmp_path / "fixed-run"
    with openai_server() as ai:
        for _ in range(2):
            run = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/news]", f"hydra.run.dir={folder}",
                         "cache=false",
                         env=env_for(ai))
            assert run.code == 0, run.stderr
    assert reads(web, "/news") == 1
    assert [m[1]["content"].split("\n\n")[-1] for m in sent(ai)] == ["Edition 1", "Edition 1"]


def test_parallel_jobs_in_other_processes_read_the_same_snapshot(runner, web):
    with openai_server() as ai:
        run = runner("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=gpt", "temperature=0,0.7",
                     "task=summarize", f"task.inputs=[{web.url}/news]", env=env_for(ai))
    assert run.code == 0, run.stderr
    editions = {m[1]["content"].split("\n\n")[-1] for m in sent(ai)}
    assert len(sent(ai)) == 2 and len(editions) == 1  # a fetch race may happen; both use the first published


def brochure_model(site_url: str):
    """Step 1 picks about, careers, a terms page and a link that is not on the page; step 2 writes."""
    def answer(messages):
        if "links found on a webpage" in messages[0]["content"]:
            return json.dumps({"links": [
                {"type": "about page", "url": f"{site_url}/about"},
                {"type": "careers page", "url": "/careers"},  # relative, without the trailing slash
                {"type": "made up", "url": "https://elsewhere.test/about"},
            ]})
        return "# Acme Rockets\nReusable rockets."
    return answer


def test_brochure_asks_for_links_by_json_schema_reads_them_and_writes_from_them(runner, web):
    with openai_server(answer=brochure_model(web.url)) as ai:
        run = runner("model=gpt", "task=brochure", f"task.inputs=[{{company: Acme, url: '{web.url}/'}}]",
                     env=env_for(ai))
    assert run.code == 0, run.stderr
    links_call, write_call = [r.json for r in ai.requests_to("/v1/chat/completions")]
    # gpt-4.1-mini takes structured outputs: the links' schema, strict
    assert links_call["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": LINKS_SCHEMA, "strict": True}}
    assert '"links": [' in links_call["messages"][0]["content"]  # the one-shot example
    listed = links_call["messages"][1]["content"]
    assert f"{web.url}/careers/" in listed and "mailto:" not in listed and "javascript:" not in listed
    assert "partner.test" not in listed  # another site: not offered to the model
    assert "response_format" not in write_call
    write = write_call["messages"][1]["content"]
    assert write.startswith("You are looking at a company called: Acme")
    assert "founded in 1999" in write and "hiring propulsion engineers" in write
    assert reads(web, "/about") == 1 and reads(web, "/careers/") == 1
    assert reads(web, "/terms") == 0 and reads(web, "/privacy") == 0
    assert [(r["step"], r["status"]) for r in run.rows()] == [("links", "ok"), ("write", "ok")]
    assert run.rows()[1]["note"] == "ignored chosen links: https://elsewhere.test/about (not on the landing page)"


@pytest.mark.parametrize("other_sites", [False, True])
def test_brochure_never_reads_links_the_model_invents_nor_by_default_links_to_other_sites(runner, other_sites):
    """The partner is another loopback server (another port: another site); its own log shows what was read."""
    def answer(messages):
        if "links found on a webpage" in messages[0]["content"]:
            return json.dumps({"links": [
                {"type": "about page", "url": f"{web.url}/about"},
                {"type": "team page", "url": f"{partner.url}/team"},  # on the landing page, another site
                {"type": "careers page", "url": f"{partner.url}/careers/"},  # not on the landing page
            ]})
        return "# Acme"

    with site() as partner, site(partner_url=partner.url) as web, openai_server(answer=answer) as ai:
        run = runner("model=gpt", "task=brochure", f"task.inputs=[{{company: Acme, url: '{web.url}/partners'}}]",
                     f"task.follow_other_sites={str(other_sites).lower()}", env=env_for(ai))
    assert run.code == 0, run.stderr
    links_call, write_call = sent(ai)
    assert reads(web, "/about") == 1 and "founded in 1999" in write_call[1]["content"]
    assert reads(partner, "/careers/") == 0  # invented: never read, whatever the option
    note = run.rows()[1]["note"]
    if other_sites:
        assert f"{partner.url}/team" in links_call[1]["content"]
        assert [r.path for r in partner.received] == ["/team"]
        assert "Twelve partner engineers" in write_call[1]["content"]
        assert note == f"ignored chosen links: {partner.url}/careers/ (not on the landing page)"
    else:
        assert f"{partner.url}/team" not in links_call[1]["content"]  # not even offered to the model
        assert partner.received == []
        assert note == (f"ignored chosen links: {partner.url}/team (another site: task.follow_other_sites=false); "
                        f"{partner.url}/careers/ (not on the landing page)")


def test_brochure_with_an_answer_that_is_not_json_is_an_error_that_keeps_the_text(runner, web):
    with openai_server(answer=lambda m: "Sure! The about page looks relevant.") as ai:
        run = runner("model=gpt", "task=brochure", f"task.inputs=[{{company: Acme, url: '{web.url}/'}}]",
                     env=env_for(ai))
    assert run.code == 1, run.stderr
    assert len(sent(ai)) == 1  # no write step
    records = jsonl(run.root())
    assert [(r["step"], r["status"]) for r in records] == [("links", "ok"), ("links-json", "error")]
    assert records[1]["error"].startswith("the links answer is not the JSON asked for: Expecting value")
    assert records[1]["details"]["raw"] == "Sure! The about page looks relevant."


def numbered(prefix: str):
    """A model that says which of its calls this is, so each line can be traced."""
    calls = []

    def answer(messages):
        calls.append(1)
        return f"{prefix} line {len(calls)}"
    return answer


def test_debate_alternates_the_two_models_with_a_growing_history(runner, tmp_path):
    user_conf = tmp_path / "my-conf" / "model"
    user_conf.mkdir(parents=True)
    with openai_server(answer=numbered("gpt")) as ai, openai_server(answer=numbered("rival")) as rival:
        (user_conf / "rival.yaml").write_text(
            f"provider: openai\nid: rival-1\nbase_url: {rival.url}/v1\nstream: false\n", encoding="utf-8")
        run = runner("--config-dir", str(tmp_path / "my-conf"), "model=gpt", "task=debate",
                     "task.opponent=rival", "task.turns=3", env=env_for(ai))
    assert run.code == 0, run.stderr
    mine, theirs = sent(ai), sent(rival)
    assert len(mine) == len(theirs) == 3
    for turn in range(3):
        assert "argumentative" in mine[turn][0]["content"] and "polite" in theirs[turn][0]["content"]
        assert len(mine[turn]) == 3 + 2 * turn and len(theirs[turn]) == 4 + 2 * turn
        # each sees its own lines as the assistant's and the other's as the user's
        assert mine[turn][-1] == {"role": "user", "content": "Hi" if turn == 0 else f"rival line {turn}"}
        assert theirs[turn][-1] == {"role": "user", "content": f"gpt line {turn + 1}"}
        assert theirs[turn][-2] == {"role": "assistant", "content": "Hi" if turn == 0 else f"rival line {turn}"}
    assert mine[2][1:] == [{"role": "assistant", "content": "Hi there"}, {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "gpt line 1"}, {"role": "user", "content": "rival line 1"},
                           {"role": "assistant", "content": "gpt line 2"}, {"role": "user", "content": "rival line 2"}]
    rows = run.rows()
    assert [(r["step"], r["model"], r["model_id"]) for r in rows] == [
        (f"turn-{t}-{side}", name, model_id) for t in (1, 2, 3)
        for side, name, model_id in (("model", "gpt", "gpt-4.1-mini"), ("opponent", "rival", "rival-1"))]
    assert all(r["input_tokens"] and r["output_tokens"] for r in rows)
    assert [r["details"]["speaker"] for r in jsonl(run.root())] == ["gpt", "rival"] * 3
    report = (run.root() / "report.md").read_text(encoding="utf-8")
    assert "### gpt vs rival · greeting" in report and "| turn-3-opponent | rival | rival line 3 |" in report


def test_an_opponent_without_its_key_has_its_turns_skipped(runner, tmp_path):
    user_conf = tmp_path / "my-conf" / "model"
    user_conf.mkdir(parents=True)
    (user_conf / "rival.yaml").write_text("provider: openai\nid: rival-1\napi_key_env: RIVAL_KEY\n", encoding="utf-8")
    with openai_server() as ai:
        run = runner("--config-dir", str(tmp_path / "my-conf"), "model=gpt", "task=debate", "task.opponent=rival",
                     env=env_for(ai))
    assert run.code == 1, run.stderr
    assert [(r["step"], r["model"], r["status"], r["error"]) for r in run.rows()] == [
        ("turn-1-model", "gpt", "ok", ""),
        ("turn-1-opponent", "rival", "skipped", "RIVAL_KEY is not set in the environment or in ./.env")]
    assert len(sent(ai)) == 1


def test_summarize_item_that_is_not_a_url_is_a_config_error(runner):
    run = runner("model=gpt", "task=summarize", "task.inputs=[www.example.com]", env=KEY)
    assert run.code == 2
    assert "task.inputs[0]: 'www.example.com' is not an http(s) URL" in run.stderr


def test_unknown_opponent_is_a_config_error_before_any_call(runner):
    with openai_server() as ai:
        run = runner("-m", "model=gpt", "task=debate", "task.opponent=nobody", env=env_for(ai))
    assert run.code == 2
    said = run.stderr.strip().splitlines()[-1]
    assert said.startswith("runner: config error: task.opponent='nobody' is not a model config (available: ")
    assert not ai.received and not (run.cwd / "outputs").exists()


def test_chat_sends_the_whole_history_each_turn(runner):
    with openai_server(answer=numbered("shop")) as ai:
        run = runner("model=gpt", "task=chat", env=env_for(ai))
    assert run.code == 0, run.stderr
    calls = sent(ai)
    assert [len(m) for m in calls] == [2, 4, 6]
    assert "Hats are 60% off" in calls[0][0]["content"]
    assert calls[2][1:] == [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "shop line 1"},
                            {"role": "user", "content": "I'd like to buy some shoes"},
                            {"role": "assistant", "content": "shop line 2"},
                            {"role": "user", "content": "Do you have anything else on sale?"}]
    assert [r["step"] for r in run.rows()] == ["turn-1", "turn-2", "turn-3"]


def test_joke_and_tutor_fill_their_parameters(runner):
    with openai_server() as ai:
        run = runner("-m", "model=gpt", "task=joke,tutor", env=env_for(ai))
    assert run.code == 0, run.stderr
    assert any("audience of Data Scientists" in m[-1]["content"] for m in sent(ai))
    assert any('yield from {book.get("author") for book in books' in m[-1]["content"] for m in sent(ai))


def test_a_template_field_missing_from_an_item_is_refused_before_any_call(runner, tmp_path):
    (tmp_path / "jokes.csv").write_text("topic\nrockets\nboats\n", encoding="utf-8")
    with openai_server() as ai:
        run = runner("-m", "model=gpt", "temperature=0,1", "task=joke", "task.inputs=jokes.csv", env=env_for(ai))
    assert run.code == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "runner: config error: task joke: task.user uses {audience}, which task.inputs[0] does not have "
        "(its fields: topic; write {{audience}} for a literal {audience}) (in job: model=gpt temperature=0 "
        "task=joke task.inputs=jokes.csv)")
    assert not ai.received and not (run.cwd / "outputs").exists()


def test_fields_a_task_fills_itself_are_not_asked_of_the_items_and_double_braces_stay_literal(runner, web):
    with openai_server() as ai:
        refused = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/about]",
                         "+prompt.system='Summarize {title} for {audience}.'", env=env_for(ai))
        run = runner("model=gpt", "task=summarize", f"task.inputs=[{{url: '{web.url}/about', audience: kids}}]",
                     "+prompt.system='Summarize {title} for {audience}, in {{format}}.'", env=env_for(ai))
    assert refused.code == 2 and reads(web, "/about") == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "runner: config error: task summarize: prompt.system (prompt=default) uses {audience}, which "
        "task.inputs[0] does not have (its fields: input; ")
    assert run.code == 0, run.stderr
    assert sent(ai)[0][0]["content"] == "Summarize About Acme for kids, in {format}."


def test_the_brochures_site_is_the_landing_pages_before_and_after_its_own_redirects():
    from runner.tasks.brochure import OwnSite, own_sites

    landing = Page(url="http://acme.test/", final_url="https://www.acme.test/en/", title="Acme", text="Acme",
                   links=())
    rule = OwnSite(own_sites(landing))
    for url in ("https://acme.test/about", "http://www.acme.test/careers/", "https://jobs.acme.test/"):
        assert rule(url) is None, url
    for url in ("https://acme.test:8443/", "https://partner.test/team", "https://acme.test.partner.test/",
                "https://notacme.test/", "http://169.254.169.254/"):
        assert rule(url) == "another site than the landing page's (task.follow_other_sites=false)", url
    moved = Page(url="http://acme.test/", final_url="https://acme-rockets.test/", title="Acme", text="Acme",
                 links=())  # the site moved: both names are its own
    assert OwnSite(own_sites(moved))("https://acme-rockets.test/about") is None
    assert OwnSite(own_sites(moved))("http://acme.test/about") is None


@pytest.mark.parametrize("other_sites", [False, True])
def test_a_chosen_page_on_the_site_that_redirects_to_another_site_is_not_followed_there(runner, other_sites):
    """/our-team is on the landing page's site and answers 302 to the partner's site (another port)."""
    def answer(messages):
        if "links found on a webpage" in messages[0]["content"]:
            return json.dumps({"links": [{"type": "about page", "url": f"{web.url}/about"},
                                         {"type": "team page", "url": f"{web.url}/our-team"}]})
        return "# Acme"

    with site() as partner, site(partner_url=partner.url) as web, openai_server(answer=answer) as ai:
        run = runner("model=gpt", "task=brochure", f"task.inputs=[{{company: Acme, url: '{web.url}/partners'}}]",
                     f"task.follow_other_sites={str(other_sites).lower()}", env=env_for(ai))
    assert run.code == 0, run.stderr
    links_call, write_call = sent(ai)
    assert f"{web.url}/our-team" in links_call[1]["content"]  # on the site: offered
    assert reads(web, "/our-team") == 1 and "founded in 1999" in write_call[1]["content"]
    note = run.rows()[1]["note"]
    if other_sites:
        assert [r.path for r in partner.received] == ["/team"]
        assert "Twelve partner engineers" in write_call[1]["content"] and note == ""
    else:
        assert partner.received == []  # not even requested
        assert "Twelve partner engineers" not in json.dumps(sent(ai))
        assert note == (f"not read: {web.url}/our-team: redirected to {partner.url}/team: another site than the "
                        f"landing page's (task.follow_other_sites=false)")


def test_a_rerun_with_private_pages_false_refuses_the_pages_saved_before(runner, web):
    with openai_server() as ai:
        first = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/about]", "cache=false",
                       "hydra.run.dir=outputs/runs/fixed", env=env_for(ai))
        assert first.code == 0, first.stderr
        again = runner("model=gpt", "task=summarize", f"task.inputs=[{web.url}/about]", "cache=false",
                       "hydra.run.dir=outputs/runs/fixed", "task.private_pages=false", env=env_for(ai))
    assert again.code == 1, again.stderr
    first_row, row = again.rows()  # the folder's results: the first run's, then this one's
    assert (first_row["status"], row["status"]) == ("ok", "error")
    assert row["error"] == (f"{web.url}/about: 127.0.0.1 is a loopback address (refused: task.private_pages="
                            f"false) (its saved copy pages/{snapshot_name(f'{web.url}/about')})")
    assert reads(web, "/about") == 1 and len(sent(ai)) == 1  # neither fetched again nor sent


def test_forged_snapshots_of_metadata_urls_are_refused_and_never_reach_the_model(runner, tmp_path):
    """pages/<sha1>.json written by someone else into the folder a scheduled job re-runs into."""
    urls = ["http://169.254.169.254/latest/meta-data/iam/security-credentials/role",
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"]
    pages = tmp_path / "outputs/runs/weekly/pages"
    pages.mkdir(parents=True)
    for url in urls:
        forged = {"url": url, "final_url": url, "title": "Credentials", "text": "SECRET_ROLE_CREDENTIALS",
                  "links": []}
        (pages / snapshot_name(url)).write_text(json.dumps(forged), encoding="utf-8")
    (tmp_path / "pages.yaml").write_text(json.dumps(urls), encoding="utf-8")
    with openai_server() as ai:
        run = runner("model=gpt", "task=summarize", "task.inputs=pages.yaml", "hydra.run.dir=outputs/runs/weekly",
                     env={**env_for(ai), **GUARDED})
    assert run.code == 1, run.stderr
    assert "test guard" not in run.stderr and not sent(ai)
    assert sorted(r["error"] for r in run.rows()) == [
        f"{urls[0]}: 169.254.169.254 is {LINK_LOCAL} (its saved copy pages/{snapshot_name(urls[0])})",
        f"{urls[1]}: metadata.google.internal is the name of Google Cloud's metadata server (refused) "
        f"(its saved copy pages/{snapshot_name(urls[1])})"]
    assert "SECRET_ROLE_CREDENTIALS" not in (run.root() / "report.md").read_text(encoding="utf-8")


def test_a_key_in_a_page_url_reaches_no_file_of_the_run(runner, web, tmp_path):
    """The URL asked for, the page it redirects to and the page's own text and links carry the key."""
    url = f"{web.url}/to-echo?key=AIza-SECRET-KEY-1&page=1"
    (tmp_path / "pages.yaml").write_text(json.dumps([url]), encoding="utf-8")
    with openai_server() as ai:
        run = runner("-m", "model=gpt", "temperature=0,0.5", "task=summarize", "task.inputs=pages.yaml",
                     env=env_for(ai))
    assert run.code == 0, run.stderr
    assert reads(web, "/to-echo") == 1  # the second job found the snapshot by the URL asked for
    [snapshot] = (run.root() / "pages").iterdir()
    assert snapshot.name == snapshot_name(url)
    assert f"You are at {web.url}/echo?key=***&page=1" in snapshot.read_text(encoding="utf-8")
    leaks = [str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()
             and path.name != "pages.yaml" and b"AIza-SECRET-KEY-1" in path.read_bytes()]
    assert leaks == []
