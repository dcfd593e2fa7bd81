"""The docs run: every shell example of README.md and docs/ works as written (how each is checked:
tests/docs_examples.py), and the docs site builds strictly (no broken link, page or anchor). The usage lines of
conf/'s comments and of `--help`: tests/test_usage_lines.py."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests import docs_examples
from tests.conftest import REPO, clean_env
from tests.docs_examples import DOCS, EXAMPLES, PAGE_EXAMPLES, check, help_examples

# the module's shared folder (a module-scoped fixture: this module gets its own)
workspace = docs_examples.workspace


@pytest.mark.slow  # a run per example
@pytest.mark.timeout(900)
@pytest.mark.parametrize("example", PAGE_EXAMPLES, ids=[f"{e.where} {e.command[:70]}" for e in PAGE_EXAMPLES])
def test_the_example_works_as_written(example, workspace):
    check(example, workspace)


def test_every_page_and_config_comment_is_read():
    """The extraction itself: a fence or a comment it missed would leave examples unchecked."""
    commands = [e.command for e in EXAMPLES]
    assert "python -m runner" in commands and len(commands) > 40
    assert any(e.where.startswith("conf/task/tutor.yaml") for e in EXAMPLES)
    assert any(e.where.startswith("docs/contributing/") for e in EXAMPLES)
    assert any(e.needs for e in EXAMPLES) and any(e.server for e in EXAMPLES)
    assert len(help_examples()) >= 5


def test_the_docs_build_strictly(tmp_path):
    if not _importable("mkdocs"):
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]' (.ci/run installs it, so CI never skips)")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, env={**clean_env(), "NO_MKDOCS_2_WARNING": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert (tmp_path / "site" / "index.html").exists()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_a_copied_file_is_the_file():
    """A block marked `<!-- copy of: PATH -->` is that file's beginning, word for word: it cannot drift."""
    copies = 0
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for name, block in re.findall(r"<!-- copy of: (\S+) -->\n```\w*\n(.*?)^```", text, re.S | re.M):
            assert (REPO / name).read_text(encoding="utf-8").startswith(block), f"{path.name}: {name} has changed"
            copies += 1
    assert copies >= 2


def test_no_page_speaks_of_how_it_was_made():
    words = re.compile(r"\b(this stop|the issue|issue \d+|this branch|this session|helpers?|this change)\b", re.I)
    for path in DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not words.search(line), f"{path.relative_to(REPO)}:{number}: {line}"

