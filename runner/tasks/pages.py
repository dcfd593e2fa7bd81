"""What the web-page tasks (summarize, brochure) share: items that are URLs, page snapshots, a text cap.

Pages come from the run's snapshots (runner.tasks.snapshots), so every model of a sweep reads the same text.
A page that cannot be read makes its cell an error row with the reason; the other cells run. Pages are
fetched, and saved pages used, under an address policy (runner.tasks.addresses): never link-local or
cloud-metadata addresses or names, and loopback and private addresses only while `task.private_pages` is
true (the default).
"""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from runner.errors import ConfigError
from runner.tasks.addresses import AddressPolicy
from runner.tasks.base import Cell, Session, Task
from runner.tasks.snapshots import PageSnapshots
from runner.tasks.web import Page, PageError, fetch

PREFETCH = 4  # pages downloaded at once while a job prepares


class PageTask(Task):
    takes_images = False  # its prompts are pages or conversations, not an item's images
    options: dict[str, Any] = {
        "max_page_chars": 5000,  # page text put into one prompt; the course cut the brochure's at 5,000
        "fetch_timeout_s": 20.0,
        "max_page_bytes": 5_000_000,  # a bigger page is an error, not a slow download
        "private_pages": True,  # false: refuse loopback, private, CGNAT and unique-local addresses too
    }

    def __init__(self, run) -> None:
        super().__init__(run)
        self.pages: PageSnapshots | None = None

    def check(self) -> None:
        super().check()
        if not isinstance(self.opts["private_pages"], bool):
            raise ConfigError(f"task.private_pages={self.opts['private_pages']!r} must be true or false")
        for key in ("max_page_chars", "max_page_bytes"):
            value = self.opts[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"task.{key}={value!r} must be a whole number >= 1")
        timeout = self.opts["fetch_timeout_s"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"task.fetch_timeout_s={timeout!r} must be a number of seconds > 0")
        for i, item in enumerate(self.settings.inputs):
            url = self.item_url(item)
            if not url:
                raise ConfigError(f"task.inputs[{i}]: needs a 'url' (or is a URL): {dict(item)!r}")
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises ValueError for a port that is not a number
            except ValueError as exc:
                raise ConfigError(f"task.inputs[{i}]: {url!r} is not a valid URL ({exc})") from None
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"task.inputs[{i}]: {url!r} is not an http(s) URL")

    @staticmethod
    def item_url(item) -> str:
        return str(item.get("url") or item.get("input") or "").strip()

    def store(self, session: Session) -> PageSnapshots:
        if self.pages is None:
            policy = AddressPolicy(private=self.opts["private_pages"])
            fetcher = partial(fetch, timeout_s=float(self.opts["fetch_timeout_s"]),
                              max_bytes=int(self.opts["max_page_bytes"]), policy=policy)
            folder = session.root / "pages" if session.root is not None else None
            self.pages = PageSnapshots(folder, fetcher, policy)  # saved pages are judged by today's policy
        return self.pages

    async def prepare(self, session: Session) -> None:
        """Fetch (or load) every item's page before the first call, a few at a time."""
        store = self.store(session)
        limit = asyncio.Semaphore(PREFETCH)

        async def warm(url: str) -> None:
            async with limit:
                try:
                    await store.get(url)
                except PageError:  # remembered by the store; each of the page's cells records it
                    pass

        urls = dict.fromkeys(self.item_url(item) for item in self.settings.inputs)
        await asyncio.gather(*(warm(url) for url in urls))

    async def page(self, cell: Cell, session: Session) -> Page:
        """The cell's page; raises PageError."""
        return await self.store(session).get(self.item_url(cell.item))

    def cut(self, text: str, what: str = "page text") -> tuple[str, str]:
        """The text within `max_page_chars`, and a note for the record when something was cut."""
        limit = int(self.opts["max_page_chars"])
        if len(text) <= limit:
            return text, ""
        return text[:limit], f"{what} cut at {limit} of {len(text)} characters (task.max_page_chars)"
