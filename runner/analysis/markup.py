"""Model output and the report's own markdown as HTML that is safe to put in a page.

Model output is untrusted: an answer, a page's text or a judge's reason may hold `<script>`, an
`<img onerror=...>` or a `javascript:` link. Answers are rendered by markdown-it-py with raw HTML off, so
any HTML in them shows as the text it is; the result then goes through nh3 (the Ammonia sanitizer), which
keeps only plain formatting tags and http(s)/mailto links. The report's own markdown (tables whose cells
runner.report has escaped, with `<br>` between lines) is rendered with HTML on, then through the same
sanitizer. Images in answers become links: opening a report fetches nothing.
"""
from __future__ import annotations

import re
from html import escape

import nh3
from markdown_it import MarkdownIt

# what formatting an answer may keep; no img (a remote image is a request made when the report opens),
# no forms, no media, no style
TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
        "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "li", "mark",
        "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "summary", "sup",
        "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var", "wbr"}
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "td": {"align", "colspan", "rowspan"},
              "th": {"align", "colspan", "rowspan"}}
URL_SCHEMES = {"http", "https", "mailto"}
BLANK_LINES = re.compile(r"\n[ \t]*\n")

_cleaner = nh3.Cleaner(tags=TAGS, clean_content_tags={"script", "style"}, attributes=ATTRIBUTES,
                       url_schemes=URL_SCHEMES, link_rel="noopener noreferrer nofollow")


def _image_as_link(self, tokens, idx, options, env) -> str:
    """`![alt](url)` as a link to the image: nothing is loaded when the page opens."""
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    link = token.attrGet("src") or ""
    return f'<a href="{escape(link)}">[image: {escape(alt)}]</a>'


def _parser(html: bool) -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": html}).enable(["table", "strikethrough"])
    parser.add_render_rule("image", _image_as_link)
    return parser


_answers = _parser(html=False)  # raw HTML in an answer is text, shown as written
_reports = _parser(html=True)  # the report's own markdown: <br> and entities it wrote itself


def clean(html: str) -> str:
    """Any HTML reduced to the formatting and links above; scripts, handlers and other URLs are dropped."""
    return _cleaner.clean(html)


# a character or line start that can make markdown of plain text (emphasis, code, links, HTML, entities,
# headings, lists, rules, tables, indented code, hard breaks); text without any renders as its paragraphs
MARKDOWN = re.compile(r"[\\`*_\[\]<>#|~!&]|^ {0,3}([-+=]|\d{1,9}[.)])|^( {4}|\t)| {2,}$", re.M)


def answer_html(text: str) -> str:
    """An answer (or any untrusted text in markdown) as sanitized HTML."""
    text = text or ""
    if not MARKDOWN.search(text):  # most short answers: the parser would only make paragraphs of them
        paragraphs = (" ".join(line.strip() for line in block.splitlines()) for block in BLANK_LINES.split(text))
        return clean("".join(f"<p>{escape(p)}</p>\n" for p in paragraphs if p.strip()))
    return clean(_answers.render(text))


def report_html(markdown: str) -> str:
    """Markdown that runner.report or runner.changes wrote (escaped cells) as sanitized HTML."""
    return clean(_reports.render(markdown or ""))


class Rendered:
    """Each distinct answer rendered once: repeats, cache hits and identical answers share their HTML."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self.texts: list[str] = []
        self.html: list[str] = []

    def __call__(self, text: str) -> int:
        text = text or ""
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.texts)
            self.texts.append(text)
            self.html.append(answer_html(text))
        return found
