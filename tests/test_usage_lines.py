"""The usage lines of conf/'s comments (`#   python -m runner ...`) and of `python -m runner --help` work as
written, against the loopback fakes with every key (how: tests/docs_examples.py). A module of their own, so that
pytest-xdist runs them beside the pages' examples (tests/test_docs.py)."""
from __future__ import annotations

import pytest

from tests import docs_examples
from tests.docs_examples import CONFIG_EXAMPLES, EXAMPLES, check, check_help_line, help_examples

# the module's shared folder (a module-scoped fixture: this module gets its own)
workspace = docs_examples.workspace


@pytest.mark.timeout(900)
@pytest.mark.parametrize("example", CONFIG_EXAMPLES, ids=[f"{e.where} {e.command[:70]}" for e in CONFIG_EXAMPLES])
def test_the_config_usage_line_works_as_written(example, workspace):
    check(example, workspace)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("line", [e for e in help_examples() if e.command not in {d.command for d in EXAMPLES}],
                         ids=lambda e: e.command[:70])
def test_the_help_usage_lines_work(line, workspace):
    check_help_line(line, workspace)
