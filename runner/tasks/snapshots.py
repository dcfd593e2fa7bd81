"""Page snapshots shared by every job of a run or sweep, so every model reads the same page text.

A page is fetched once and kept as `pages/<sha1 of the URL>.json` in the run's or sweep's root folder.
Later jobs (in this process or in other processes of a parallel launcher) and a re-run into the same
folder read the snapshot instead of fetching again. A snapshot is published with a hard link, which fails
when the file already exists: if two jobs fetch at the same moment, the first one published is the one
both use, so a comparison never mixes two versions of a page. Failed fetches are not kept on disk: a
later job or re-run tries again.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from runner.tasks.web import Page, PageError, fetch


def snapshot_name(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest() + ".json"


class PageSnapshots:
    """Pages by URL: from this job's memory, else the root folder's snapshot, else the web (once)."""

    def __init__(self, folder: Path | None, fetcher: Callable[[str], Page] = fetch) -> None:
        self.folder = folder  # None: keep pages in memory only
        self.fetcher = fetcher
        self._pages: dict[str, Page | PageError] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, url: str) -> Page:
        """The page's snapshot, or raise PageError (remembered for this job, so repeats do not refetch)."""
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:  # cells of one job asking for the same page wait for one fetch
            if url not in self._pages:
                self._pages[url] = await asyncio.to_thread(self._load_or_fetch, url)
        found = self._pages[url]
        if isinstance(found, PageError):
            raise found
        return found

    def _load_or_fetch(self, url: str) -> Page | PageError:
        saved = self._read(url)
        if saved is not None:
            return saved
        try:
            page = self.fetcher(url)
        except PageError as exc:
            return exc
        return self._publish(page)

    def _path(self, url: str) -> Path | None:
        return self.folder / snapshot_name(url) if self.folder is not None else None

    def _read(self, url: str) -> Page | None:
        path = self._path(url)
        if path is None or not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Page.from_dict(data) if data.get("url") == url else None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable: fetch again (publishing then keeps the file already there)

    def _publish(self, page: Page) -> Page:
        """Write the snapshot atomically; if another job published first, use theirs."""
        path = self._path(page.url)
        if path is None:
            return page
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(page.to_dict(), out, ensure_ascii=False, indent=1)
            try:
                os.link(temp, path)
            except FileExistsError:
                return self._read(page.url) or page
            except OSError:  # a file system without hard links: an atomic replace, the last writer wins
                os.replace(temp, path)
            return page
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
