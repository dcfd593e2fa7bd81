"""Reading web pages: runner.web against realistic pages served from 127.0.0.1."""
from __future__ import annotations

import asyncio
import json

import pytest

from runner.snapshots import PageSnapshots, snapshot_name
from runner.web import USER_AGENT, PageError, fetch
from tests.fakes.server import Faults, FakeServer
from tests.fakes.site import reads, site


@pytest.fixture(scope="module")
def web():
    with site() as server:
        yield server


def test_title_text_and_links_of_a_real_looking_page(web):
    page = fetch(web.url + "/")
    assert page.title == "Acme Rockets | Home"
    assert "Acme Rockets builds reusable launch vehicles in Springfield." in page.text
    assert "Subscribe to launch news" in page.text  # a button's label is visible text
    assert "SECRET" not in page.text  # scripts, styles, images, noscript, form values
    assert page.links == (
        web.url + "/", web.url + "/about", web.url + "/careers/", web.url + "/terms", web.url + "/privacy",
        "https://partner.test/rockets?ref=acme",
    )
    request = web.received[-1]
    assert request.headers["user-agent"] == USER_AGENT


def test_latin1_page_without_charset_in_the_header_is_decoded_from_its_meta(web):
    page = fetch(web.url + "/latin1")
    assert page.title == "Caf\u00e9 M\u00fcller"
    assert page.text == "Cr\u00e8me br\u00fbl\u00e9e \u00e0 Z\u00fcrich, 5 \u00a3"


def test_page_without_body_gives_its_title_and_no_text(web):
    page = fetch(web.url + "/nobody")
    assert (page.title, page.text, page.links) == ("Only a title", "", ())


def test_redirect_is_followed_and_links_resolve_against_the_final_url(web):
    page = fetch(web.url + "/old-about")
    assert page.url == web.url + "/old-about" and page.final_url == web.url + "/about"
    assert "founded in 1999" in page.text


@pytest.mark.parametrize("path,reason", [
    ("/gone", "HTTP 404"),
    ("/brochure.pdf", "not an HTML page (Content-Type application/pdf)"),
    ("/huge", "too big (3"),  # the server says how big: refused before reading
    ("/huge-stream", "too big (more than 100000 bytes)"),  # no length: stops reading past the cap
])
def test_pages_that_cannot_be_used_raise_one_line(web, path, reason):
    with pytest.raises(PageError) as caught:
        fetch(web.url + path, max_bytes=100_000)
    message = str(caught.value)
    assert reason in message and "\n" not in message
    assert message.startswith(web.url + path)


def test_refused_connection_and_dns_failure_are_one_line():
    with FakeServer({}) as server:
        url = server.url + "/"
    with pytest.raises(PageError, match="connection refused$"):
        fetch(url, timeout_s=5)
    with pytest.raises(PageError, match=r"DNS lookup failed for no-such-host\.invalid$"):
        fetch("http://no-such-host.invalid/", timeout_s=5)


def test_a_server_that_never_answers_times_out():
    with FakeServer({}, faults=Faults(hang=1.0, hang_s=5)) as server:
        with pytest.raises(PageError, match="timed out after 0.5 s"):
            fetch(server.url + "/", timeout_s=0.5)


def test_snapshot_is_written_once_and_read_back_without_fetching(web, tmp_path):
    url = web.url + "/about"
    before = reads(web, "/about")
    first = asyncio.run(PageSnapshots(tmp_path).get(url))
    saved = json.loads((tmp_path / snapshot_name(url)).read_text(encoding="utf-8"))
    assert saved["text"] == first.text and saved["url"] == url
    again = asyncio.run(PageSnapshots(tmp_path).get(url))  # another job, same root folder
    assert again == first
    assert reads(web, "/about") == before + 1
    assert [p.name for p in tmp_path.iterdir()] == [snapshot_name(url)]  # no temp files left


def test_cells_of_one_job_asking_at_once_share_one_fetch(web, tmp_path):
    url = web.url + "/careers/"
    before = reads(web, "/careers/")
    store = PageSnapshots(tmp_path)

    async def many():
        return await asyncio.gather(*(store.get(url) for _ in range(8)))

    pages = asyncio.run(many())
    assert len({p.text for p in pages}) == 1
    assert reads(web, "/careers/") == before + 1


def test_failed_fetch_is_not_kept_on_disk(web, tmp_path):
    store = PageSnapshots(tmp_path)
    with pytest.raises(PageError, match="HTTP 404"):
        asyncio.run(store.get(web.url + "/gone"))
    assert not any(tmp_path.iterdir())
