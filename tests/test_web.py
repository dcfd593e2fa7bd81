"""Reading web pages: runner.tasks.web against realistic pages served from 127.0.0.1.

Refused addresses are never contacted: tests/no_metadata.py blocks (and records) any connect() this
process makes to a link-local or metadata address, so a broken check fails here without real traffic.
"""
from __future__ import annotations

import asyncio
import json
import socket
from functools import partial

import pytest
import requests

from runner.tasks.addresses import AddressPolicy, AddressRefused
from runner.tasks.snapshots import PageSnapshots, snapshot_name
from runner.tasks.web import USER_AGENT, CheckedAdapter, PageError, fetch
from tests import no_metadata
from tests.fakes.server import FakeServer, Faults, Reply
from tests.fakes.site import ABOUT, reads, site

no_metadata.install()
LINK_LOCAL = "a link-local address, where cloud metadata services answer (refused)"


@pytest.fixture(autouse=True)
def no_metadata_traffic():
    no_metadata.blocked.clear()  # each test asserts on its own attempts
    yield


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


@pytest.mark.parametrize("path,reason", [
    ("/nobody", "the page has no readable text (nothing visible in its body)"),  # a title, no <body>
    ("/blank", "the page has no readable text (nothing visible in its body)"),  # only a script and a picture
    ("/picture", "the page has no readable text (its content is a PNG image, not HTML)"),  # served as text/html
])
def test_a_page_without_readable_text_is_an_error_not_an_empty_page(web, path, reason):
    with pytest.raises(PageError) as caught:
        fetch(web.url + path)
    assert str(caught.value) == f"{web.url}{path}: {reason}"


def test_utf8_page_served_without_charset_is_decoded_from_its_meta(web):
    page = fetch(web.url + "/cafe")
    assert page.title == "Caf\u00e9 de la Gare"
    assert page.text == "Caf\u00e9 cr\u00e8me, na\u00efve \u0152uvre, \u20ac3"


def test_an_html_page_served_without_a_content_type_is_read(web):
    assert "founded in 1999" in fetch(web.url + "/untyped").text


def test_redirect_is_followed_and_links_resolve_against_the_final_url(web):
    page = fetch(web.url + "/old-about")
    assert page.url == web.url + "/old-about" and page.final_url == web.url + "/about"
    assert "founded in 1999" in page.text


@pytest.mark.parametrize("path,reason", [
    ("/gone", "HTTP 404"),
    ("/brochure.pdf", "not an HTML page (Content-Type application/pdf)"),
    ("/untyped-text", "not an HTML page (no Content-Type, and the body is not HTML)"),
    ("/huge", "too big (3"),  # the server says how big: refused before reading
    ("/huge-stream", "too big (more than 100000 bytes)"),  # no length: stops reading past the cap
])
def test_pages_that_cannot_be_used_raise_one_line(web, path, reason):
    with pytest.raises(PageError) as caught:
        fetch(web.url + path, max_bytes=100_000)
    message = str(caught.value)
    assert reason in message and "\n" not in message
    assert message.startswith(web.url + path)


@pytest.mark.parametrize("url,reason", [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is " + LINK_LOCAL),
    ("http://169.254.170.2/v2/credentials", "169.254.170.2 is " + LINK_LOCAL),
    ("http://[fe80::a9fe:a9fe]/", "fe80::a9fe:a9fe is " + LINK_LOCAL),
    ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254 is AWS's instance metadata address (refused)"),
    ("http://100.100.100.200/latest/meta-data/",
     "100.100.100.200 is Alibaba Cloud's instance metadata address (refused)"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 is 169.254.169.254 in IPv6 form, " + LINK_LOCAL),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe is 169.254.169.254 in IPv6 form, " + LINK_LOCAL),
    # the name resolves (numerically, no DNS server needed) to the metadata address
    ("http://2852039166/latest/meta-data/", "2852039166 resolves to 169.254.169.254, " + LINK_LOCAL),
])
def test_link_local_and_metadata_addresses_are_refused_before_connecting(url, reason):
    with pytest.raises(PageError) as caught:
        fetch(url, timeout_s=2)
    assert str(caught.value) == f"{url}: {reason}"
    assert no_metadata.blocked == []  # nothing even tried to connect


@pytest.mark.parametrize("target,reason", [
    ("http://169.254.169.254/latest/meta-data/iam/",
     "redirected to http://169.254.169.254/latest/meta-data/iam/: 169.254.169.254 is " + LINK_LOCAL),
    ("http://[fd00:ec2::254]/", "redirected to http://[fd00:ec2::254]/: fd00:ec2::254 is AWS's instance "
                                "metadata address (refused)"),
    ("file:///etc/passwd", "redirected to a file:// URL (refused)"),
    ("gopher://127.0.0.1:6379/_INFO", "redirected to a gopher:// URL (refused)"),
    ("http://[::1/broken", "redirected to a URL that is not valid"),  # an error row, not a crashed job
])
def test_every_redirect_hop_is_checked_before_it_is_requested(web, target, reason):
    url = f"{web.url}/redirect?to={target}"
    with pytest.raises(PageError) as caught:
        fetch(url, timeout_s=2)
    assert str(caught.value) == f"{url}: {reason}"
    assert no_metadata.blocked == []


def test_loopback_pages_are_allowed_by_default_and_refused_when_private_pages_are():
    with site() as web:
        assert fetch(web.url + "/about").title == "About Acme"  # default: tests and intranets need them
        before = len(web.received)
        strict = AddressPolicy(private=False)
        with pytest.raises(PageError) as literal:
            fetch(web.url + "/about", policy=strict)
        assert str(literal.value) == (f"{web.url}/about: 127.0.0.1 is a loopback address "
                                      f"(refused: task.private_pages=false)")
        port = web.url.rsplit(":", 1)[1]
        with pytest.raises(PageError) as named:  # a name is judged by what it resolves to
            fetch(f"http://localhost:{port}/about", policy=strict)
        assert "/about: localhost resolves to " in str(named.value)
        assert str(named.value).endswith("a loopback address (refused: task.private_pages=false)")
        assert len(web.received) == before  # refused before connecting


def test_behind_a_proxy_a_name_with_a_refused_address_is_refused_before_the_proxy_is_asked(monkeypatch):
    """Through a proxy the connection reaches the proxy, not the page's address: the only check is the name's
    lookup, so every address it gives is checked, not only the first."""
    real = socket.getaddrinfo
    names = {"public.test": ("93.184.216.34",), "multi.test": ("93.184.216.34", "169.254.169.254")}

    def getaddrinfo(host, port, *args, **kwargs):  # the machine's resolver, answering for two test names
        if host not in names:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))
                for address in names[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    page = b"<html><head><title>Proxied</title></head><body><p>from the proxy</p></body></html>"
    with FakeServer({("GET", "http://*"): lambda request: Reply(200, page, {"Content-Type": "text/html"})}) as proxy:
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        assert fetch("http://public.test/", timeout_s=5).title == "Proxied"  # through the proxy
        assert [r.path for r in proxy.received] == ["http://public.test/"]
        with pytest.raises(PageError) as caught:
            fetch("http://multi.test/", timeout_s=5)
        assert len(proxy.received) == 1  # never asked for it
    assert str(caught.value) == "http://multi.test/: multi.test resolves to 169.254.169.254, " + LINK_LOCAL
    assert no_metadata.blocked == []


def test_a_connection_is_refused_by_the_address_it_reached_before_sending_anything():
    """What DNS rebinding needs: the lookup before the request said one thing, the connection reached
    another. The connection itself checks its peer: here, a loopback server under a policy refusing it."""
    with site() as web:
        with requests.Session() as session:
            session.mount("http://", CheckedAdapter(AddressPolicy(private=False)))
            with pytest.raises(AddressRefused) as caught:
                session.get(web.url + "/about", timeout=5)
        assert str(caught.value) == "127.0.0.1 connected to 127.0.0.1, a loopback address " \
                                    "(refused: task.private_pages=false)"
        assert web.received == []  # the request was never sent


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


METADATA_NAMES = [  # (URL, how the refusal names it)
    ("http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
     "metadata.google.internal is the name of Google Cloud's metadata server (refused)"),
    ("http://METADATA.Google.Internal./computeMetadata/v1/",  # any case, a trailing dot: the same name
     "metadata.google.internal. is the name of Google Cloud's metadata server (refused)"),
    ("http://metadata/computeMetadata/v1/", "metadata is the name of Google Cloud's metadata server (its short "
                                            "name) (refused)"),
    ("http://metadata.goog/computeMetadata/v1/", "metadata.goog is the name of Google Cloud's metadata server "
                                                 "(refused)"),
    ("http://instance-data/latest/meta-data/", "instance-data is the name of AWS's instance metadata service "
                                               "(refused)"),
    ("https://metadata.platformequinix.com/metadata", "metadata.platformequinix.com is the name of Equinix "
                                                      "Metal's metadata service (refused)"),
]


@pytest.fixture
def proxy(monkeypatch):
    """A forward proxy on 127.0.0.1 in HTTP_PROXY, as a company network has: it answers every http:// URL
    with a page (http://pages.test/moved with a redirect to Google Cloud's metadata server), and its log
    shows what reached it."""
    moved = Reply(302, b"", headers={"Location": "http://metadata.google.internal/computeMetadata/v1/"})
    routes = {("GET", "http://pages.test/moved"): lambda r: moved,
              ("GET", "http://*"): lambda r: Reply(200, ABOUT, headers={"Content-Type": "text/html"})}
    with FakeServer(routes) as server:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, server.url)
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield server


def test_metadata_names_are_refused_by_name_and_never_handed_to_a_proxy(proxy):
    # the proxy is used for a name this machine cannot resolve: the case where only the proxy could look it up
    assert fetch("http://pages.test/about", timeout_s=5).title == "About Acme"
    assert [r.path for r in proxy.received] == ["http://pages.test/about"]
    for url, reason in METADATA_NAMES:
        with pytest.raises(PageError) as caught:
            fetch(url, timeout_s=5)
        assert str(caught.value) == f"{url}: {reason}"
    with pytest.raises(PageError) as caught:  # the proxy's answer redirects there
        fetch("http://pages.test/moved", timeout_s=5)
    assert str(caught.value) == ("http://pages.test/moved: redirected to http://metadata.google.internal/"
                                 "computeMetadata/v1/: metadata.google.internal is the name of Google Cloud's "
                                 "metadata server (refused)")
    assert [r.path for r in proxy.received] == ["http://pages.test/about", "http://pages.test/moved"]


def forge(folder, url: str, **fields) -> None:
    """A pages/<sha1>.json that nothing fetched: written by hand, or left by an older setting."""
    page = {"url": url, "final_url": url, "title": "Credentials", "text": "SECRET_ROLE_CREDENTIALS", "links": [],
            **fields}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / snapshot_name(url)).write_text(json.dumps(page), encoding="utf-8")


def test_a_page_saved_under_looser_rules_is_refused_under_todays(web, tmp_path):
    url = web.url + "/careers/"
    asyncio.run(PageSnapshots(tmp_path).get(url))  # saved while loopback pages were allowed (the default)
    before = len(web.received)
    strict = AddressPolicy(private=False)
    store = PageSnapshots(tmp_path, partial(fetch, policy=strict), strict)  # a re-run with private_pages=false
    with pytest.raises(PageError) as caught:
        asyncio.run(store.get(url))
    assert str(caught.value) == (f"{url}: 127.0.0.1 is a loopback address (refused: task.private_pages=false) "
                                 f"(its saved copy pages/{snapshot_name(url)})")
    assert len(web.received) == before  # not fetched instead either
    assert asyncio.run(PageSnapshots(tmp_path).get(url)).title == "Careers at Acme"  # the default still reads it


@pytest.mark.parametrize("url,fields,reason", [
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/role", {},
     "169.254.169.254 is " + LINK_LOCAL),
    ("http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token", {},
     "metadata.google.internal is the name of Google Cloud's metadata server (refused)"),
    ("http://pages.test/about", {"redirects": ["http://pages.test/go", "http://[fd00:ec2::254]/latest/"],
                                 "final_url": "http://[fd00:ec2::254]/latest/"},
     "redirected to http://[fd00:ec2::254]/latest/: fd00:ec2::254 is AWS's instance metadata address (refused)"),
    ("http://pages.test/news", {"final_url": "http://169.254.169.254/latest/user-data"},  # saved before redirects
     "redirected to http://169.254.169.254/latest/user-data: 169.254.169.254 is " + LINK_LOCAL),  # were kept
    ("http://pages.test/terms", {"final_url": "file:///etc/passwd"}, "redirected to a file:// URL (refused)"),
], ids=["metadata-address", "metadata-name", "redirected-to-metadata", "final-url-only", "file-url"])
def test_a_forged_snapshot_is_judged_as_a_live_fetch_would_be(tmp_path, url, fields, reason):
    forge(tmp_path, url, **fields)
    with pytest.raises(PageError) as caught:
        asyncio.run(PageSnapshots(tmp_path).get(url))
    assert str(caught.value) == f"{url}: {reason} (its saved copy pages/{snapshot_name(url)})"
    assert no_metadata.blocked == []


def test_a_snapshot_of_another_url_under_this_ones_name_is_not_used(web, tmp_path):
    url = web.url + "/about"
    forge(tmp_path, "http://169.254.169.254/latest/meta-data/")
    (tmp_path / snapshot_name("http://169.254.169.254/latest/meta-data/")).rename(tmp_path / snapshot_name(url))
    before = reads(web, "/about")
    with pytest.raises(PageError) as caught:
        asyncio.run(PageSnapshots(tmp_path).get(url))
    assert str(caught.value) == (f"{url}: its saved copy pages/{snapshot_name(url)} is of another URL "
                                 f"(http://169.254.169.254/latest/meta-data/); delete it to read the page again")
    assert reads(web, "/about") == before


def test_a_key_in_a_page_url_is_redacted_in_its_snapshot_which_is_still_found(web, tmp_path):
    """The URL asked for, the redirect and the final URL carry a key, and the page echoes it in its text and
    links: none of it reaches pages/*.json, whose name (the hash of the URL asked for) still finds it."""
    url = f"{web.url}/to-echo?key=AIza-SECRET-KEY-1&page=1"
    first = asyncio.run(PageSnapshots(tmp_path).get(url))
    [saved] = tmp_path.iterdir()
    assert saved.name == snapshot_name(url)
    assert "SECRET" not in saved.read_text(encoding="utf-8")
    echo = f"{web.url}/echo?key=***&page=1"
    assert json.loads(saved.read_text(encoding="utf-8"))["url"] == f"{web.url}/to-echo?key=***&page=1"
    assert (first.url, first.final_url, first.redirects, first.links) == (url, echo, (echo,), (echo,))
    assert first.text == f"You are at {echo}\nthis page"  # what every job of the sweep reads, this one too
    before = reads(web, "/to-echo")
    again = asyncio.run(PageSnapshots(tmp_path).get(url))  # another job, a re-run
    assert again == first and reads(web, "/to-echo") == before


def test_a_saved_page_that_went_to_another_site_is_refused_under_the_brochures_rule(tmp_path):
    """A summarize job read /our-team, which redirects to the partner's site, and saved it; the brochure, whose
    chosen pages stay on the landing page's site, must not take that copy either, in this job or another."""
    from runner.tasks.brochure import OwnSite, own_sites

    with site() as partner, site(partner_url=partner.url) as web:
        url = web.url + "/our-team"
        store = PageSnapshots(tmp_path)
        assert asyncio.run(store.get(url)).title == "Partner team"  # no rule: anywhere the policy allows
        rule = OwnSite(own_sites(fetch(web.url + "/partners")))
        for reader in (store, PageSnapshots(tmp_path)):
            with pytest.raises(PageError) as caught:
                asyncio.run(reader.get(url, hop_rule=rule))
            assert str(caught.value) == (f"{url}: redirected to {partner.url}/team: another site than the landing "
                                         f"page's (task.follow_other_sites=false) (its saved copy pages/"
                                         f"{snapshot_name(url)})")
        assert asyncio.run(store.get(url)).title == "Partner team"  # the rule's refusal is not the page's
        assert [r.path for r in partner.received] == ["/team"]


def test_a_saved_page_that_is_not_one_is_read_again_from_the_web(web, tmp_path):
    url = web.url + "/about"
    forge(tmp_path, url, text=["not", "text"])  # a prompt cannot be made of it
    before = reads(web, "/about")
    page = asyncio.run(PageSnapshots(tmp_path).get(url))
    assert (page.title, reads(web, "/about")) == ("About Acme", before + 1)
