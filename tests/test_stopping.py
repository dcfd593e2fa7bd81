"""A signal ends the run with its exit code whatever code it interrupts (runner.stopping), in a process of its
own: SIGTERM sent while a weakref callback runs, where Python prints an exception raised in a signal handler
and carries on, as it once swallowed the run's stop (exit 0 after SIGTERM, once in 21 tries)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import clean_env

SCRIPT = """
import asyncio, os, signal, sys, weakref
from runner import stopping

stopping.install()
signum = getattr(signal, sys.argv[1])

class Thing:
    pass

def callback(ref):  # the signal comes while this runs: an exception raised here is printed, not passed on
    os.kill(os.getpid(), signum)
    for _ in range(10_000):
        pass

def collected():
    thing = Thing()
    kept = weakref.ref(thing, callback)
    del thing
    return kept

async def calls():
    collected()
    await asyncio.sleep(5)
    print("the calls went on")

try:  # as runner.__main__ does
    if sys.argv[2] == "calls":
        stopping.run(calls())  # raises Terminated (or KeyboardInterrupt) once they are cancelled
    else:
        collected()
        print("carried on")
except KeyboardInterrupt as exc:
    print(f"stopped: {type(exc).__name__}")
    stopping.interrupted(exc)
    sys.exit(stopping.exit_code(130))
sys.exit(stopping.exit_code(0))
"""


@pytest.mark.parametrize("where", ["calls", "elsewhere"])
@pytest.mark.parametrize(("signal_name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_a_weakref_callback_still_ends_the_run_with_its_code(where, signal_name, code):
    done = subprocess.run([sys.executable, "-c", SCRIPT, signal_name, where], env=clean_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == code, done.stdout + done.stderr
    if where == "calls":  # the calls are cancelled: nothing is raised into the callback, and they stop at once
        assert "Exception ignored" not in done.stderr and "the calls went on" not in done.stdout
        assert f"stopped: {'Terminated' if signal_name == 'SIGTERM' else 'KeyboardInterrupt'}" in done.stdout
    else:  # the exception was lost in the callback and the code carried on; the signal noted decides the code
        assert "carried on" in done.stdout and "Exception ignored" in done.stderr
