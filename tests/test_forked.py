"""The tests' forked runs (tests/forked.py) are what `python -m MODULE` would be: the folder, the environment,
sys.argv and sys.path[0], exit code, stdout and stderr, signals, a timeout; and fresh random numbers each time."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests import forked
from tests.conftest import REPO, clean_env

PROBE = textwrap.dedent("""
    import json, os, random, sys, time
    import numpy
    if sys.argv[1:] == ["sleep"]:
        time.sleep(60)
    print(json.dumps({"cwd": os.getcwd(), "seen": os.environ.get("PROBE_SEEN"), "argv": sys.argv,
                      "path0": sys.path[0], "name": __name__, "draw": (random.random(), numpy.random.random())}))
    print("on stderr", file=sys.stderr)
    sys.exit(3)
""")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or os.environ.get("RUNNER_TESTS_FORK") == "0",
                                reason="runs are not forked here (RUNNER_TESTS_FORK=0, or no os.fork)")


@pytest.fixture
def probe(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    return tmp_path


def test_a_forked_run_is_what_python_dash_m_makes_of_it(probe):
    env = clean_env(PROBE_SEEN="yes")
    command = [sys.executable, "-m", "probe", "one", "two"]
    fresh = subprocess.run(command, cwd=probe, env=env, capture_output=True, text=True, timeout=60)
    done = forked.shared().run(command[1:], probe, env, timeout=60)
    assert done is not None
    assert (done.returncode, done.stderr) == (fresh.returncode, fresh.stderr) == (3, "on stderr\n")
    mine, theirs = json.loads(done.stdout), json.loads(fresh.stdout)
    mine.pop("draw"), theirs.pop("draw")
    assert mine == theirs and mine["seen"] == "yes" and mine["argv"][1:] == ["one", "two"]


def test_each_forked_run_draws_its_own_random_numbers(probe):
    """Python's and numpy's generators, seeded as a new process seeds them (numpy's were imported before)."""
    draws = [json.loads(forked.run([sys.executable, "-m", "probe"], cwd=probe, env=clean_env()).stdout)["draw"]
             for _ in range(2)]
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]


def test_an_environment_that_changes_how_python_starts_is_not_forked(probe):
    assert forked.shared().run(["-m", "probe"], probe, clean_env(PYTHONHASHSEED="1"), timeout=60) is None
    done = forked.run([sys.executable, "-m", "probe"], cwd=probe, env=clean_env(PYTHONHASHSEED="1"))
    assert done.returncode == 3  # a subprocess ran it


def test_a_forked_run_takes_signals_and_times_out_like_a_process(probe):
    started = forked.shared().start(["-m", "probe", "sleep"], probe, clean_env())
    assert started.poll() is None
    started.send_signal(signal.SIGTERM)
    assert started.wait(timeout=30) == -signal.SIGTERM
    with pytest.raises(subprocess.TimeoutExpired):
        forked.shared().run(["-m", "probe", "sleep"], probe, clean_env(), timeout=0.5)
    assert forked.shared().run(["-m", "probe"], probe, clean_env(), timeout=60).returncode == 3  # still serving


CONNECTS = textwrap.dedent("""
    import socket
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("169.254.169.254", 80))
            print("connected")
        except OSError as exc:
            print(type(exc).__name__)
""")


def test_a_run_guarded_by_the_tests_sitecustomize_is_forked_and_guarded_the_same(tmp_path):
    """PYTHONPATH with tests/guard first (tests/no_metadata.py) is forked: the child runs that sitecustomize as
    Python's site would, and a connection to the metadata address is blocked as in a fresh process."""
    from tests.no_metadata import GUARD_PATH

    (tmp_path / "connects.py").write_text(CONNECTS, encoding="utf-8")
    env = clean_env(PYTHONPATH=f"{GUARD_PATH}{os.pathsep}{REPO}")
    command = [sys.executable, "-m", "connects"]
    fresh = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    done = forked.shared().run(command[1:], tmp_path, env, timeout=60)
    assert done is not None  # forked, not run as a subprocess
    assert (done.stdout, done.stderr) == (fresh.stdout, fresh.stderr) == (
        "ConnectionRefusedError\n", "test guard: blocked a connection to 169.254.169.254\n")


def test_a_sitecustomize_of_another_folder_is_not_forked(tmp_path):
    """Another folder's sitecustomize may act on imports (tests/test_install.py hides modules): never forked."""
    (tmp_path / "sitecustomize.py").write_text("", encoding="utf-8")
    env = clean_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    assert forked.shared().run(["-m", "json.tool", "--help"], tmp_path, env, timeout=60) is None


SCANS = textwrap.dedent("""
    import sys
    from hydra.core.plugins import Plugins
    Plugins.instance()  # what a run's start-up scans and imports
    print(sorted(name for name in sys.modules if name.split(".")[0] in ("joblib", "submitit", "loky")))
""")


def test_a_forked_child_holds_no_module_a_runs_plugin_scan_would_not_import(tmp_path):
    """The helper imports the hydra_plugins modules Hydra's scan imports, not more: a run that found joblib
    imported would end the slow way (runner.__main__.exit_now), as no user's run does."""
    (tmp_path / "scans.py").write_text(SCANS, encoding="utf-8")
    command = [sys.executable, "-m", "scans"]
    fresh = subprocess.run(command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    done = forked.shared().run(command[1:], tmp_path, clean_env(), timeout=60)
    assert done is not None and fresh.returncode == done.returncode == 0, done.stderr
    assert done.stdout == fresh.stdout == "[]\n"
