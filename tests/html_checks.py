"""What in a piece of HTML could run: scripts, frames, event handlers, script URLs. Used on report.md as
GitHub renders it (markdown-it-py with raw HTML on, GitHub's parser rules) and on pages the runner serves."""
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


def github_html(markdown: str) -> str:
    """Markdown as GitHub's renderer turns it into HTML before its own sanitizer: CommonMark with tables and
    strikethrough, raw HTML passed through."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)
