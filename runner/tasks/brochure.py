"""`brochure`: the course's company brochure, in three steps recorded as their own rows.

1. `links`: the model picks the landing page's relevant links (about, company, careers), answering in
   the provider's JSON mode after a one-shot example. An answer that is not that JSON is an error row
   (step `links-json`) that keeps the raw text.
2. The chosen pages are read (at most `task.max_links`, only links the landing page has, and only on
   the landing page's own site unless `task.follow_other_sites=true`), from the run's page snapshots
   like the landing page. A hostile page can offer any link: the model only ever sees, and the task only
   ever follows, the ones on that site, and a chosen page that redirects off the site is not followed
   there (its saved copy is judged the same way). The landing page's site is the one its URL names and
   the one its own redirects ended at (http to https, example.com to www.example.com). Chosen links left
   out or not read are named, with the reason, in the write row's note.
3. `write`: the model writes the brochure from the landing page plus those pages, the text cut at
   `task.max_page_chars` as the course cut it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from runner.calls import chat
from runner.errors import ConfigError
from runner.tasks.base import Cell, Session, Template, fill
from runner.tasks.pages import PageTask
from runner.tasks.web import Page, PageError

FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
PROMPT_KEYS = ("links_system", "links_user")
# the links answer's shape: sent as structured output where the model supports it (strict: every key
# required, no others), else JSON mode; chosen_links still checks what comes back
LINK = {"type": "object", "properties": {"type": {"type": "string"}, "url": {"type": "string"}},
        "required": ["type", "url"], "additionalProperties": False}
LINKS_SCHEMA = {"type": "object", "properties": {"links": {"type": "array", "items": LINK}}, "required": ["links"],
                "additionalProperties": False}


class Brochure(PageTask):
    multi_step = True
    options: dict[str, Any] = {
        **PageTask.options,
        "links_system": None,  # step 1's system prompt, with its one-shot JSON example (conf/task/brochure.yaml)
        "links_user": None,  # step 1's user prompt: {url} and {links}
        "max_links": 5,  # pages read in step 2
        "follow_other_sites": False,  # true: also links to other sites than the landing page's
    }
    provides = frozenset({"url", "pages", "company"})  # the write step's fields

    def templates(self) -> list[Template]:
        links_user = Template("task.links_user", self.opts["links_user"], frozenset({"url", "links"}))
        return [*super().templates(), links_user]

    def check(self) -> None:
        for key in PROMPT_KEYS:
            if not isinstance(self.opts[key], str) or not self.opts[key].strip():
                raise ConfigError(f"task.{key} is required for kind brochure (see conf/task/brochure.yaml)")
        value = self.opts["max_links"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"task.max_links={value!r} must be a whole number >= 0")
        if not isinstance(self.opts["follow_other_sites"], bool):
            raise ConfigError(f"task.follow_other_sites={self.opts['follow_other_sites']!r} must be true or false")
        super().check()

    def followed(self, landing: Page) -> list[str]:
        """The landing page's links the brochure may read: those on its site, or all of them."""
        if self.opts["follow_other_sites"]:
            return list(landing.links)
        sites = own_sites(landing)
        return [link for link in landing.links if on_site(link, sites)]

    def redirect_rule(self, landing: Page) -> OwnSite | None:
        """Where a chosen page may redirect: anywhere the address policy allows, or only on the site."""
        return None if self.opts["follow_other_sites"] else OwnSite(own_sites(landing))

    async def run(self, cell: Cell, session: Session) -> None:
        try:
            landing = await self.page(cell, session)
        except PageError as exc:
            session.fail(cell, str(exc))
            return
        followed = self.followed(landing)
        listed, list_note = self.cut("\n".join(followed), "link list")
        fields = {**cell.item, "url": landing.url, "links": listed}
        messages = chat(self.opts["links_system"], fill(self.opts["links_user"], fields))
        answer = await session.call(cell, messages, step="links", json_mode=True, json_schema=LINKS_SCHEMA,
                                    note=list_note)
        if not answer.ok:
            return
        try:
            chosen, ignored = chosen_links(answer.text, landing, followed)
        except ValueError as exc:
            session.fail(cell, f"the links answer is not the JSON asked for: {exc}", step="links-json",
                         details={"raw": answer.text})
            return

        notes = [f"ignored chosen links: {'; '.join(ignored)}"] if ignored else []
        extra: list[tuple[str, Page]] = []
        rule = self.redirect_rule(landing)
        for kind, url in chosen[: int(self.opts["max_links"])]:
            try:
                extra.append((kind, await self.store(session).get(url, hop_rule=rule)))
            except PageError as exc:
                notes.append(f"not read: {exc}")
        if len(chosen) > int(self.opts["max_links"]):
            notes.append(f"read {self.opts['max_links']} of {len(chosen)} chosen links (task.max_links)")
        details, cut_note = self.cut(all_details(landing, extra), "pages text")
        notes.insert(0, cut_note)
        fields = {**cell.item, "url": landing.url, "pages": details,
                  "company": cell.item.get("company") or landing.title}
        await self.answer(session, cell, self.messages(fields), step="write", note="; ".join(n for n in notes if n),
                          details={"pages": [page.final_url for _, page in extra],
                                   "chosen": [url for _, url in chosen]})


def contents(page: Page) -> str:
    """A page as the course put it into the brochure prompt."""
    return f"Webpage Title:\n{page.title}\nWebpage Contents:\n{page.text}\n\n"


def all_details(landing: Page, extra: list[tuple[str, Page]]) -> str:
    text = "Landing page:\n" + contents(landing) + "\nFound links:\n"
    for kind, page in extra:
        text += f"\n\n{kind}\n" + contents(page)
    return text


def chosen_links(answer: str, landing: Page, followed: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(type, absolute URL) pairs from the model's JSON, keeping only links in `followed` (links the
    landing page has, that the brochure may read), and why each other link was left out.

    Raises ValueError (one line) when the answer is not {"links": [{"type": ..., "url": ...}, ...]}.
    """
    fenced = FENCE.match(answer)  # some models wrap JSON in a code fence even in JSON mode
    try:
        data = json.loads(fenced.group(1) if fenced else answer)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    links = data.get("links") if isinstance(data, dict) else None
    if not isinstance(links, list):
        raise ValueError('expected an object with a "links" list')
    on_page = {_key(link): link for link in landing.links}
    allowed = {_key(link) for link in followed}
    chosen: dict[str, str] = {}
    ignored: list[str] = []
    for entry in links:
        url = entry.get("url") if isinstance(entry, dict) else entry
        kind = entry.get("type") if isinstance(entry, dict) else None
        if not isinstance(url, str):
            continue
        found = on_page.get(_key(url)) or on_page.get(_key(_join(landing.final_url, url)))
        if not found:
            ignored.append(f"{' '.join(url.split())[:200]} (not on the landing page)")  # the model's text: one line
        elif _key(found) not in allowed:
            ignored.append(f"{found} (another site: task.follow_other_sites=false)")
        elif found not in chosen and _key(found) != _key(landing.final_url):
            chosen[found] = str(kind or "page")
    return [(kind, url) for url, kind in chosen.items()], ignored


def site(url: str) -> tuple[str, int | None]:
    """(host without `www.`, port unless it is the scheme's default): what makes a site here."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    host = host[4:] if host.startswith("www.") else host
    try:
        port = parts.port
    except ValueError:
        port = -1  # a port that is not a number matches nothing
    return host, (None if port == {"http": 80, "https": 443}.get(parts.scheme) else port)


def own_sites(landing: Page) -> frozenset[tuple[str, int | None]]:
    """The landing page's site: the one its URL names and the one its own redirects ended at."""
    return frozenset({site(landing.url), site(landing.final_url)})


def on_site(link: str, sites: frozenset[tuple[str, int | None]]) -> bool:
    """Whether a link is on one of these sites: the same host (with or without `www.`) or one of its
    subdomains, on the same port, over http or https."""
    host, port = site(link)
    return any(port == site_port and site_host and (host == site_host or host.endswith("." + site_host))
               for site_host, site_port in sites)


@dataclass(frozen=True)
class OwnSite:
    """The redirect rule of a chosen page: every hop stays on the landing page's site. Frozen, so that the
    page store can remember pages by URL and rule."""

    sites: frozenset[tuple[str, int | None]]

    def __call__(self, url: str) -> str | None:
        if on_site(url, self.sites):
            return None
        return "another site than the landing page's (task.follow_other_sites=false)"


def _join(base: str, url: str) -> str:
    return urljoin(base, url.strip())


def _key(url: str) -> str:
    """Two spellings of one link compare equal (trailing slash, case of the host)."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/') or '/'}?{parts.query}"
