"""A real headless Chromium for the tests, through Playwright, and what a page did wrong while it was open.

The browser is RUNNER_CHROMIUM, else the one tests/chromium.py finds or installs (once, into
~/.cache/runner-chromium, from the npm registry; or Playwright's own). Without Playwright or a Chromium the
browser tests skip and say why, except on CI (CI=true), where they must run.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import chromium as chromium_source

REPO = Path(__file__).resolve().parent.parent


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run on CI: {reason}")
    pytest.skip(reason)


@functools.cache
def _found() -> tuple[Path | None, str]:
    """Looked for (or installed) once per test session: every browser test module asks."""
    try:
        return chromium_source.find_or_install(), ""
    except chromium_source.Unavailable as exc:
        return None, f"no Chromium for the browser tests: {exc}; {chromium_source.HOW}"


def chromium_path() -> Path:
    """The Chromium to drive: RUNNER_CHROMIUM, else the one tests/chromium.py finds or installs."""
    executable, why = _found()
    if executable is None:
        _unavailable(why)
    return executable


@dataclass
class Watched:
    """A page, and what went wrong on it: console errors, uncaught exceptions, dialogs (alert() and the like),
    and requests to anywhere but this machine (a page must fetch nothing from a CDN or a URL in an answer)."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return ([f"console: {m}" for m in self.console_errors] + [f"exception: {m}" for m in self.page_errors]
                + [f"dialog: {m}" for m in self.dialogs] + [f"request: {url}" for url in self.outside])


def on_this_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("file", "data", "blob", "about") or parts.hostname in ("127.0.0.1", "localhost", "::1")


# Test modules import the fixtures (chromium, watched_page), so each module has its own: per module, since
# two Playwright instances cannot be alive at once
@pytest.fixture(name="browser", scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable),
                                              env=chromium_source.launch_env(executable))
        yield launched
        launched.close()


@pytest.fixture(name="page")
def watched_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    watched = Watched(opened)
    opened.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: watched.page_errors.append(str(e)))
    opened.on("request", lambda r: None if on_this_machine(r.url) else watched.outside.append(r.url))

    def dialog(d):
        watched.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    opened.on("dialog", dialog)
    yield watched
    context.close()


def screenshot(page, name: str, width: int = 1100, height: int = 700) -> None:
    """With RUNNER_SCREENSHOTS=1, save the viewport as docs/NAME for the docs (the tests' browser takes them)."""
    if os.environ.get("RUNNER_SCREENSHOTS") != "1":
        return
    page.set_viewport_size({"width": width, "height": height})
    (REPO / "docs").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "docs" / name))
