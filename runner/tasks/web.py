"""Web pages the way the course read them, done right: fetch one URL, keep its title, visible text and links.

`fetch(url)` downloads with a browser-like User-Agent, a timeout and a size cap (`download(url)`, which a
task's images use too, reads any URL's body under the same rules). It follows redirects itself and refuses,
before connecting, any hop whose address the `AddressPolicy` refuses (link-local and cloud-metadata addresses
always; runner.tasks.addresses) or that a caller's `hop_rule` refuses (the brochure's: stay on the landing
page's site); each connection also checks the address it actually reached
before sending anything. The page keeps every URL it was redirected to, so that `check_saved` can judge a
stored copy by the rules of the day as a live fetch would be judged. A page with no readable text (a
picture served as HTML, an empty body) is an error, not an empty prompt. `parse(body, url)` lets
BeautifulSoup pick the encoding (the header's charset, else the document's own `<meta charset>`), drops
what a reader never sees (scripts, styles, images, form fields) and makes the links absolute. Every
failure is one `PageError` whose message is one line.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from urllib.parse import urldefrag, urljoin, urlsplit

import requests
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from runner.tasks.addresses import AddressPolicy, AddressRefused

# The course's header: some sites answer a bare python-requests client with a block page
USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/117.0.0.0 Safari/537.36")
HTML_TYPES = ("text/html", "application/xhtml+xml")
HTML_ACCEPT = "text/html,application/xhtml+xml"
MAX_REDIRECTS = 10
# What a reader of the page never sees as text: code, pictures and the values typed into forms
HIDDEN = ["script", "style", "noscript", "template", "svg", "img", "input", "textarea", "select"]
CHUNK = 64 * 1024
# why a redirect to this URL is refused (one line), or None: a caller's rule on top of the address policy
HopRule = Callable[[str], "str | None"]


class PageError(Exception):
    """A page that cannot be read: DNS failure, refused, HTTP error, timeout, not HTML, too big."""


@dataclass(frozen=True)
class Page:
    url: str  # as asked for
    final_url: str  # after redirects
    title: str
    text: str
    links: tuple[str, ...]
    redirects: tuple[str, ...] = ()  # every URL the page was redirected to, in order: the last is final_url

    def to_dict(self) -> dict:
        return {**asdict(self), "links": list(self.links), "redirects": list(self.redirects)}

    @classmethod
    def from_dict(cls, data: dict) -> Page:
        """A page as to_dict wrote it; TypeError for anything else (a file written by hand)."""
        redirects = data.get("redirects", [])  # none in a snapshot saved before they were kept
        texts = [data[key] for key in ("url", "final_url", "title", "text")]
        lists = [data["links"], redirects]
        if not all(isinstance(text, str) for text in texts) or \
                not all(isinstance(urls, list) and all(isinstance(u, str) for u in urls) for urls in lists):
            raise TypeError("not a saved page")
        return cls(*texts, links=tuple(data["links"]), redirects=tuple(redirects))


@dataclass(frozen=True)
class Download:
    """What one URL answered, read whole under the caps: its body, its media type and charset as the
    Content-Type header says, and every URL it was redirected to."""

    url: str
    final_url: str
    body: bytes
    media_type: str  # "" when the server sent no Content-Type
    charset: str | None
    redirects: tuple[str, ...] = ()


def download(url: str, timeout_s: float = 20.0, max_bytes: int = 5_000_000, policy: AddressPolicy = AddressPolicy(),
             hop_rule: HopRule | None = None, accept: str = "*/*",
             check_type: Callable[[str], str | None] | None = None) -> Download:
    """Download one URL whole, following its redirects under the address policy and `hop_rule`, or raise
    PageError. `check_type(media_type)` says why a Content-Type is refused (before the body is read), or None."""
    deadline = time.monotonic() + timeout_s  # requests' timeout is per read; a slow drip must end too
    try:
        with requests.Session() as session:
            adapter = CheckedAdapter(policy)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            response, redirects = _follow(session, url, timeout_s, deadline, policy, hop_rule, accept)
            with response:
                if response.status_code >= 400:
                    raise PageError(f"{url}: HTTP {response.status_code} {response.reason or ''}".rstrip())
                content_type = response.headers.get("Content-Type", "")
                media_type = content_type.split(";")[0].strip().lower()
                refused = check_type(media_type) if check_type is not None else None
                if refused:
                    raise PageError(f"{url}: {refused}")
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise PageError(f"{url}: too big ({int(declared)} bytes, the limit is {max_bytes})")
                body = bytearray()
                for chunk in response.iter_content(CHUNK):
                    body += chunk
                    if len(body) > max_bytes:
                        raise PageError(f"{url}: too big (more than {max_bytes} bytes)")
                    if time.monotonic() > deadline:
                        raise PageError(f"{url}: timed out after {timeout_s:g} s")
                final_url = response.url
                charset = response.encoding if "charset=" in content_type.lower() else None
    except AddressRefused as exc:
        raise PageError(f"{url}: {exc}") from None
    except requests.RequestException as exc:
        raise PageError(f"{url}: {_reason(exc, timeout_s)}") from None
    return Download(url, final_url, bytes(body), media_type, charset, tuple(redirects))


def _html_only(media_type: str) -> str | None:
    return f"not an HTML page (Content-Type {media_type})" if media_type and media_type not in HTML_TYPES else None


def fetch(url: str, timeout_s: float = 20.0, max_bytes: int = 5_000_000,
          policy: AddressPolicy = AddressPolicy(), hop_rule: HopRule | None = None) -> Page:
    """Download and parse one HTML page, or raise PageError. `hop_rule` judges every redirect's target
    before it is requested."""
    got = download(url, timeout_s, max_bytes, policy, hop_rule, HTML_ACCEPT, _html_only)
    binary = _binary_kind(got.body[:1024])
    if binary:
        raise PageError(f"{url}: the page has no readable text (its content is {binary}, not HTML)")
    if not got.media_type and not _looks_like_html(got.body[:1024]):
        raise PageError(f"{url}: not an HTML page (no Content-Type, and the body is not HTML)")
    page = parse(got.body, url, got.final_url, got.charset)
    if not page.text:
        raise PageError(f"{url}: the page has no readable text (nothing visible in its body)")
    return replace(page, redirects=got.redirects)


def check_saved(page: Page, policy: AddressPolicy, hop_rule: HopRule | None = None) -> None:
    """Raise PageError, as a live fetch of it would today, when a stored page's URL or any URL it was
    redirected to is one the rules refuse (a setting changed since it was saved, or the file was forged)."""
    check_hop(page.url, page.url, policy)
    hops = list(page.redirects)
    if page.final_url != (hops[-1] if hops else page.url):  # a final URL no redirect led to: judge it too
        hops.append(page.final_url)
    for hop in hops:
        check_hop(page.url, hop, policy, hop_rule, redirected=True)


def check_hop(url: str, current: str, policy: AddressPolicy, hop_rule: HopRule | None = None,
              redirected: bool = False) -> None:
    """Raise PageError when `current` (url itself, or a URL it redirected to) may not be requested: not
    http(s), refused by the hop rule, or a host the address policy refuses (a name is looked up for it)."""
    hop = f"redirected to {current}: " if redirected else ""
    try:
        parts = urlsplit(current)
    except ValueError:  # a broken IPv6 literal
        raise PageError(f"{url}: {hop}not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        if not redirected:
            raise PageError(f"{url}: not an http(s) URL")
        shown = f"{parts.scheme}://" if current.startswith(f"{parts.scheme}://") else f"{parts.scheme}:"
        raise PageError(f"{url}: redirected to a {shown} URL (refused)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        raise PageError(f"{url}: {hop}not a valid URL") from None
    # the caller's rule first: a hop it refuses is not even looked up
    reason = hop_rule(current) if redirected and hop_rule is not None else None
    if reason:
        raise PageError(f"{url}: {hop}{reason}")
    try:
        policy.check_host(parts.hostname or "", port)  # before connecting (a proxy's connection is not ours)
    except AddressRefused as exc:
        raise PageError(f"{url}: {hop}{exc}") from None


def _follow(session: requests.Session, url: str, timeout_s: float, deadline: float, policy: AddressPolicy,
            hop_rule: HopRule | None, accept: str = HTML_ACCEPT) -> tuple[requests.Response, list[str]]:
    """The response at the end of url's redirects and the URLs they led to, each hop checked before it is
    requested (requests' own redirect handling would connect first). A host name is looked up for the
    check; a direct connection then also checks the address it reached (CheckedAdapter)."""
    current, redirects = url, []
    for _ in range(MAX_REDIRECTS + 1):
        check_hop(url, current, policy, hop_rule, redirected=bool(redirects))
        left = deadline - time.monotonic()
        if left <= 0:
            raise PageError(f"{url}: timed out after {timeout_s:g} s")
        try:
            response = session.get(current, headers={"User-Agent": USER_AGENT, "Accept": accept},
                                   timeout=min(timeout_s, left), stream=True, allow_redirects=False)
        except requests.RequestException:
            raise
        except ValueError:  # requests parses a redirect's Location even when told not to follow it
            raise PageError(f"{url}: redirected to a URL that is not valid") from None
        target = session.get_redirect_target(response)
        if target is None:
            return response, redirects
        response.close()
        current, _ = urldefrag(urljoin(current, target))
        redirects.append(current)
    raise PageError(f"{url}: too many redirects (more than {MAX_REDIRECTS})")


class CheckedAdapter(HTTPAdapter):
    """requests' adapter whose connections check the address they reached before sending a byte."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy  # init_poolmanager, called by HTTPAdapter.__init__, needs it
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _checked_pool(HTTPConnectionPool, HTTPConnection, self.policy),
            "https": _checked_pool(HTTPSConnectionPool, HTTPSConnection, self.policy),
        }


def _checked_pool(pool: type, connection: type, policy: AddressPolicy) -> type:
    class Checked(connection):
        def _new_conn(self):
            sock = super()._new_conn()
            try:
                policy.check_peer(self.host, sock.getpeername()[0])
            except AddressRefused:
                sock.close()
                raise
            return sock

    return type(f"Checked{pool.__name__}", (pool,), {"ConnectionCls": Checked})


# Magic numbers of what servers send as text/html by mistake (pictures, documents, archives)
BINARY_MAGIC = {b"\x89PNG": "a PNG image", b"GIF8": "a GIF image", b"\xff\xd8\xff": "a JPEG image",
                b"RIFF": "a RIFF file (WebP, WAV or AVI)", b"%PDF": "a PDF document", b"PK\x03\x04": "a ZIP archive",
                b"\x1f\x8b": "gzip data"}


def _binary_kind(head: bytes) -> str | None:
    for magic, kind in BINARY_MAGIC.items():
        if head.startswith(magic):
            return kind
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 has NULs and a BOM
        return "binary data"
    return None


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<!--"))


def _reason(exc: requests.RequestException, timeout_s: float) -> str:
    """One line a user can act on, from requests' nested urllib3/socket exceptions."""
    if isinstance(exc, requests.Timeout):
        return f"timed out after {timeout_s:g} s"
    if isinstance(exc, requests.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return "not a valid URL"
    text = str(exc)
    if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return f"DNS lookup failed for {urlsplit(exc.request.url if exc.request else '').hostname or 'the host'}"
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return "connection refused"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed: " + " ".join(text.split())[:200]
    return f"{type(exc).__name__}: " + " ".join(text.split())[:200]


def parse(body: bytes | str, url: str, final_url: str | None = None, charset: str | None = None) -> Page:
    """Title, visible text and absolute links of an HTML document (a page without <body> has no text)."""
    final_url = final_url or url
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(body, "html.parser", from_encoding=charset if isinstance(body, bytes) else None)
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    base = soup.find("base", href=True)
    base_url = urljoin(final_url, base["href"]) if base else final_url
    links: dict[str, None] = {}  # ordered and without repeats
    for anchor in soup.find_all("a", href=True):
        link = _absolute(anchor["href"], base_url)
        if link:
            links[link] = None
    text = ""
    if soup.body is not None:
        for hidden in soup.body(HIDDEN):
            hidden.decompose()
        text = soup.body.get_text(separator="\n", strip=True)
    return Page(url=url, final_url=final_url, title=title or "No title found", text=text, links=tuple(links))


def _absolute(href: str, base_url: str) -> str | None:
    """An http(s) link without its fragment, or None for mailto:, javascript:, tel: and in-page anchors."""
    href = href.strip()
    if not href or href.startswith("#"):
        return None
    link, _ = urldefrag(urljoin(base_url, href))
    if urlsplit(link).scheme not in ("http", "https"):
        return None
    return link
