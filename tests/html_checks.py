"""What in a piece of HTML could run: scripts, frames, event handlers, script URLs. Used on report.md as
rendered below and on pages the runner serves.

And what in report.md is not plain text: `markdown_renderings` renders it as GitHub does (cmark-gfm, its own
parser, with its autolinks) and as linkifying viewers do (markdown-it's GFM-like preset: commonmark, tables,
strikethrough, linkify); `Shown` reads back the tags and the table cells' text a reader sees."""
from __future__ import annotations

import re
from html.parser import HTMLParser

ACTIVE_TAGS = {"script", "iframe", "frame", "object", "embed", "applet", "base", "form", "meta", "link", "svg", "math"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background", "srcset"}
SCRIPT_URL = re.compile(r"^(javascript|vbscript|data):", re.I)


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            # browsers ignore control characters and spaces inside a URL's scheme
            if name in URL_ATTRIBUTES and value and SCRIPT_URL.match(re.sub(r"[\x00-\x20]", "", value)):
                self.found.append(f"<{tag} {name}={value[:40]}>")


def active_content(html: str) -> list[str]:
    finder = _Finder()
    finder.feed(html)
    finder.close()
    return finder.found


# the tags report.md's own markdown makes (headings, lists, tables, its plots, <br> in cells, the config's
# <details>): any other tag in it came from a model, a page or a server
REPORT_MD_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "pre", "code", "em", "strong", "blockquote", "br", "img",
                  "details", "summary", "table", "thead", "tbody", "tr", "th", "td"}


def markdown_renderings(markdown: str) -> dict[str, str]:
    """{renderer: HTML} for report.md: GitHub's cmark-gfm (raw HTML passed through, as before GitHub's
    sanitizer) and markdown-it with linkify (which links bare `name.tld` too)."""
    import cmarkgfm
    from cmarkgfm.cmark import Options
    from markdown_it import MarkdownIt

    return {"github": cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE),
            "markdown-it": MarkdownIt("gfm-like", {"html": True}).render(markdown)}


class Shown(HTMLParser):
    """The tags of rendered markdown, with their attributes, and the text of each table cell (a <br> read
    as a newline)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).replace("\u2060", "").replace("\xa0", " "))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
