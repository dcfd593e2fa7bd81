"""Page snapshots shared by every job of a run or sweep, so every model reads the same page text.

A page is fetched once and kept as `pages/<sha1 of the URL>.json` in the run's or sweep's root folder.
Later jobs (in this process or in other processes of a parallel launcher) and a re-run into the same
folder read the snapshot instead of fetching again. A snapshot is published with a hard link, which fails
when the file already exists: if two jobs fetch at the same moment, the first one published is the one
both use, so a comparison never mixes two versions of a page. Failed fetches are not kept on disk: a
later job or re-run tries again.

A snapshot is written through the same redaction as every other file (a `?key=` in a URL, a key a page
echoes), and every job, the one that fetched it included, reads the page as written. It is trusted no more
than the web: before it is used, the URL it was saved for must be the one asked for, and that URL and every
URL it was redirected to must pass today's rules (the run's address policy, and the caller's rule for
redirects), as a live fetch would. A snapshot they refuse is an error naming why and which file it is.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from runner.redact import redact, redact_value
from runner.tasks.addresses import AddressPolicy
from runner.tasks.web import HopRule, Page, PageError, check_saved, fetch


def snapshot_name(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest() + ".json"


class PageSnapshots:
    """Pages by URL: from this job's memory, else the root folder's snapshot, else the web (once).

    `fetcher(url, hop_rule=...)` reads a page from the web under the run's `policy`, the one stored pages
    are judged by too.
    """

    def __init__(self, folder: Path | None, fetcher: Callable[..., Page] = fetch,
                 policy: AddressPolicy = AddressPolicy()) -> None:
        self.folder = folder  # None: keep pages in memory only
        self.fetcher = fetcher
        self.policy = policy
        # by URL and redirect rule: a page refused under one rule (the brochure's site) may pass another
        self._pages: dict[tuple[str, HopRule | None], Page | PageError] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, url: str, hop_rule: HopRule | None = None) -> Page:
        """The page's snapshot, or raise PageError (remembered for this job, so repeats do not refetch).
        `hop_rule` (hashable) judges every URL the page was redirected to, fetched or stored."""
        key = (url, hop_rule)
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:  # cells of one job asking for the same page wait for one fetch
            if key not in self._pages:
                self._pages[key] = await asyncio.to_thread(self._load_or_fetch, url, hop_rule)
        found = self._pages[key]
        if isinstance(found, PageError):
            raise found
        return found

    def _load_or_fetch(self, url: str, hop_rule: HopRule | None) -> Page | PageError:
        saved = self._read(url, hop_rule)
        if saved is not None:
            return saved
        try:
            page = self.fetcher(url, hop_rule=hop_rule)
        except PageError as exc:
            return exc
        return self._publish(page, hop_rule)

    def _path(self, url: str) -> Path | None:
        return self.folder / snapshot_name(url) if self.folder is not None else None

    def _read(self, url: str, hop_rule: HopRule | None) -> Page | PageError | None:
        """The saved page as it may be used today, a PageError saying why it may not, or None when there
        is none to read."""
        path = self._path(url)
        if path is None or not path.exists():
            return None
        try:
            page = Page.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # unreadable: fetch again (publishing then keeps the file already there)
        where = f"its saved copy pages/{path.name}"
        if page.url not in (url, redact(url)):  # written redacted (older snapshots: as asked)
            saved_for = " ".join(str(page.url).split())[:200]
            return PageError(f"{url}: {where} is of another URL ({saved_for}); delete it to read the page again")
        page = replace(page, url=url)  # the URL as asked, as the item has it
        try:
            check_saved(page, self.policy, hop_rule)
        except PageError as exc:
            return PageError(f"{exc} ({where})")
        return page

    def _publish(self, page: Page, hop_rule: HopRule | None) -> Page | PageError:
        """Write the snapshot atomically and return the page as written; if another job published first,
        use theirs."""
        stored = redact_value(page.to_dict())  # no key in a URL, or a page echoing one, reaches the file
        written = replace(Page.from_dict(stored), url=page.url)
        path = self._path(page.url)
        if path is None:
            return written
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(stored, out, ensure_ascii=False, indent=1)
            try:
                os.link(temp, path)
            except FileExistsError:
                theirs = self._read(page.url, hop_rule)
                return written if theirs is None else theirs
            except OSError:  # a file system without hard links: an atomic replace, the last writer wins
                os.replace(temp, path)
            return written
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
