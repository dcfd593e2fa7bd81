"""A small company website on 127.0.0.1, built like real pages: navigation, scripts, styles, a form with
values, relative, mailto: and javascript: links, a latin-1 page and a UTF-8 page without a charset in
their header, a page without <body>, one with nothing visible, a picture served as HTML, redirects
(`/redirect?to=URL` goes anywhere; `/our-team`, on the site, goes to the partner's site; `/to-echo?...`
goes to `/echo?...`), a page that echoes its own URL, a 404, a huge page, a PDF, a page linking to a
partner site, and pictures (`/pictures/...`: a PNG under a wrong Content-Type, an SVG with a script, a huge
one). Its request log says which pages were read.

Words that must never reach a model contain SECRET; words a model should read are plain.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer, Reply

HOME = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Acme Rockets | Home</title>
  <style>.SECRET_STYLE { color: red; }</style>
  <script>var SECRET_SCRIPT = "tracking";</script>
  <link rel="stylesheet" href="/static/site.css">
</head>
<body>
  <nav>
    <a href="/">Home</a>
    <a href="about">About us</a>
    <a href="/careers/">Careers</a>
    <a href="/terms">Terms of Service</a>
    <a href="/privacy#cookies">Privacy</a>
    <a href="mailto:hello@acme.test">Email us</a>
    <a href="javascript:void(0)">Menu</a>
    <a href="#top">Back to top</a>
    <a href="https://partner.test/rockets?ref=acme">Our partner</a>
  </nav>
  <main>
    <h1>Reusable rockets for everyone</h1>
    <p>Acme Rockets builds reusable launch vehicles in Springfield.</p>
    <img src="/rocket.png" alt="SECRET_ALT_TEXT">
    <noscript>SECRET_NOSCRIPT</noscript>
    <form action="/subscribe" method="post">
      <input type="hidden" name="csrf" value="SECRET_CSRF_TOKEN">
      <input type="email" name="email" value="SECRET_PREFILLED_EMAIL">
      <textarea name="msg">SECRET_TEXTAREA</textarea>
      <select name="plan"><option>SECRET_OPTION</option></select>
      <button type="submit">Subscribe to launch news</button>
    </form>
  </main>
  <script>document.write("SECRET_INLINE_SCRIPT");</script>
  <footer>Copyright 2024 Acme Rockets</footer>
</body>
</html>"""

ABOUT = """<html><head><title>About Acme</title></head><body>
<nav><a href="/">Home</a></nav>
<p>Acme was founded in 1999 by Ada Lovelace-Smith. We have flown 42 missions.</p>
</body></html>"""

CAREERS = """<html><head><title>Careers at Acme</title></head><body>
<p>We are hiring propulsion engineers in Springfield.</p>
</body></html>"""

TEAM = "<html><head><title>Partner team</title></head><body><p>Twelve partner engineers.</p></body></html>"
TERMS = "<html><head><title>Terms</title></head><body><p>SECRET_TERMS_TEXT</p></body></html>"
PRIVACY = "<html><head><title>Privacy</title></head><body><p>SECRET_PRIVACY_TEXT</p></body></html>"

# latin-1 bytes; the header says text/html without a charset, the document says iso-8859-1
LATIN1 = ("<html><head><meta charset=iso-8859-1><title>Caf\u00e9 M\u00fcller</title></head>"
          "<body><p>Cr\u00e8me br\u00fbl\u00e9e \u00e0 Z\u00fcrich, 5 \u00a3</p></body></html>").encode("latin-1")

# UTF-8 bytes; the header says text/html without a charset (requests alone would read ISO-8859-1)
UTF8 = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Caf\u00e9 de la Gare</title></head>'
        '<body><p>Caf\u00e9 cr\u00e8me, na\u00efve \u0152uvre, \u20ac3</p></body></html>').encode("utf-8")

# A PNG picture (signature, IHDR) that a misconfigured server labels text/html
PICTURE = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
           b"\x89\x00\x00\x00\rIDATx\x9cc\xf8<html><body>x</body></html>\x00\x00\x00\x00IEND\xaeB`\x82")
NOTHING_VISIBLE = ("<html><head><title>Loading</title></head><body>\n  <div id='app'></div>\n"
                   "  <script>render('SECRET_APP')</script>\n  <img src='/logo.png' alt='SECRET_ALT'>\n</body></html>")

# A picture as a site serves it: the bytes of tests/data/images/red-square.png under a Content-Type that says
# otherwise (a runner must sniff the bytes, not believe the header); an SVG drawing that runs a script; a
# "picture" too big to send
DOT = (Path(__file__).resolve().parents[1] / "data" / "images" / "red-square.png").read_bytes()
DRAWING = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
           b'<script>alert("SECRET_SVG_SCRIPT")</script><rect width="8" height="8" fill="red"/></svg>')
HUGE_PICTURE = DOT[:33] + b"\x00" * 4_000_000  # a PNG's first bytes, then more than any image cap

NO_BODY = "<html><head><title>Only a title</title></head></html>"
NOT_FOUND = "<html><head><title>Not found</title></head><body>No such page</body></html>"
HUGE = "<html><head><title>Huge</title></head><body>" + "<p>big page</p>\n" * 200_000 + "</body></html>"


def html(text: str | bytes, status: int = 200, content_type: str = "text/html; charset=utf-8") -> Reply:
    return Reply(status, text, headers={"Content-Type": content_type})


def _huge_stream(_request) -> Reply:
    """The huge page without a Content-Length: only reading it tells how big it is."""
    body = HUGE.encode()
    return Reply(200, headers={"Content-Type": "text/html"},
                 chunks=(body[i:i + 65536] for i in range(0, len(body), 65536)))


class News:
    """A page that changes on every read, as a news front page does: which edition a model saw shows
    whether all models of a sweep read one snapshot."""

    def __init__(self) -> None:
        self.edition = 0

    def __call__(self, _request) -> Reply:
        self.edition += 1
        return html(f"<html><head><title>Acme News</title></head><body><p>Edition {self.edition}</p></body></html>")


def _redirect(request) -> Reply:
    """A redirect to wherever ?to= says, as an open redirect on a real site would."""
    target = parse_qs(urlsplit(request.path).query).get("to", ["/"])[0]
    return Reply(302, b"", headers={"Location": target})


def _echo(request) -> Reply:
    """A page that shows the URL it was asked for, in its text and as a link, as search pages do."""
    url = f"http://{request.headers.get('host', '')}{request.path}"
    return html(f"<html><head><title>Echo</title></head><body><p>You are at {url}</p>"
                f"<a href='{request.path}'>this page</a></body></html>")


def _to_echo(request) -> Reply:
    """A redirect to /echo with the same query (a sign-in page passing its parameters on)."""
    query = urlsplit(request.path).query
    return Reply(302, b"", headers={"Location": "/echo" + (f"?{query}" if query else "")})


def partners_page(partner_url: str) -> str:
    """A landing page with links on its own site and on the partner's site (another host or port), and one
    on its own site that redirects to the partner's."""
    return (f"<html><head><title>Acme Partners</title></head><body><p>Acme works with partners.</p>"
            f"<a href='/about'>About</a> <a href='{partner_url}/team'>Partner team</a> "
            f"<a href='/our-team'>Our team</a></body></html>")


def site(partner_url: str = "http://partner.test") -> FakeServer:
    routes = {
        ("GET", "/partners"): lambda r: html(partners_page(partner_url)),
        ("GET", "/cafe"): lambda r: html(UTF8, content_type="text/html"),
        ("GET", "/picture"): lambda r: html(PICTURE, content_type="text/html"),
        ("GET", "/pictures/dot.png"): lambda r: Reply(200, DOT, headers={"Content-Type": "application/octet-stream"}),
        ("GET", "/pictures/drawing.svg"): lambda r: Reply(200, DRAWING, headers={"Content-Type": "image/svg+xml"}),
        ("GET", "/pictures/huge.png"): lambda r: Reply(200, headers={"Content-Type": "image/png"}, chunks=(
            HUGE_PICTURE[i:i + 65536] for i in range(0, len(HUGE_PICTURE), 65536))),
        ("GET", "/blank"): lambda r: html(NOTHING_VISIBLE),
        ("GET", "/redirect"): _redirect,
        ("GET", "/our-team"): lambda r: Reply(302, b"", headers={"Location": f"{partner_url}/team"}),
        ("GET", "/to-echo"): _to_echo,
        ("GET", "/echo"): _echo,
        ("GET", "/news"): News(),
        ("GET", "/about"): lambda r: html(ABOUT),
        ("GET", "/team"): lambda r: html(TEAM),
        ("GET", "/careers/"): lambda r: html(CAREERS),
        ("GET", "/terms"): lambda r: html(TERMS),
        ("GET", "/privacy"): lambda r: html(PRIVACY),
        ("GET", "/latin1"): lambda r: html(LATIN1, content_type="text/html"),
        ("GET", "/nobody"): lambda r: html(NO_BODY),
        ("GET", "/old-about"): lambda r: Reply(301, b"", headers={"Location": "/about"}),
        ("GET", "/gone"): lambda r: html(NOT_FOUND, status=404),
        ("GET", "/huge-stream"): _huge_stream,
        ("GET", "/huge"): lambda r: html(HUGE),
        ("GET", "/brochure.pdf"): lambda r: Reply(200, b"%PDF-1.4 SECRET", headers={"Content-Type": "application/pdf"}),
        # no Content-Type at all: an HTML body is still a page, plain text is not
        ("GET", "/untyped"): lambda r: Reply(200, ABOUT.encode()),
        ("GET", "/untyped-text"): lambda r: Reply(200, b"just some words, no markup at all"),
        ("GET", "/"): lambda r: html(HOME),
    }
    return FakeServer(routes)


def reads(server: FakeServer, path: str) -> int:
    """How many times the page at `path` was requested."""
    return sum(1 for r in server.received if r.method == "GET" and r.path.split("?", 1)[0] == path)
