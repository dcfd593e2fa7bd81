"""Work done in a forked child while this process goes on.

The comparison draws its plots this way while it writes report.md and the history: once the calls are
done a second core is free, and the plots are about a third of the comparison's time after the last
call (0.45 of 1.3 s at 2,000 calls). Where forking is not safe, the work is done at once, here.

    with Aside(lambda: plots.draw(summary, folder)) as plotting:
        ...                      # runs while the child draws
        drawn = plotting.result()  # waits; raises RuntimeError with the child's error
"""
from __future__ import annotations

import gc
import os
import pickle
import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def can_fork() -> bool:
    """Linux, and this process has one thread. fork() copies only the calling thread: a lock another thread
    held (logging's, an SDK's connection pool's) would stay held in the child for good. macOS forks, but its
    system libraries are not safe to use in a forked child; Windows cannot fork."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


class Aside(Generic[T]):
    def __init__(self, work: Callable[[], T], fork: bool = True) -> None:
        """`fork=False`: do the work here, at once, even where a child could do it."""
        self.work = work
        self.fork = fork
        self.pid: int | None = None
        self.outcome: tuple[bool, object] | None = None

    def __enter__(self) -> Aside[T]:
        if not (self.fork and can_fork()):
            self.outcome = _run(self.work)
            return self
        read_end, write_end = os.pipe()
        sys.stdout.flush()  # what this process buffered must not be written a second time by the child
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child: do the work, send the outcome, leave without the parent's clean-up
            try:
                # the collector would walk (and so copy) every page of the parent's objects it shares
                gc.disable()
                os.close(read_end)
                with os.fdopen(write_end, "wb") as out:
                    out.write(pickle.dumps(_run(self.work)))
            finally:
                os._exit(0)
        os.close(write_end)
        self.read_end = read_end
        return self

    def result(self) -> T:
        """The work's result, once it is done; RuntimeError with its error if it failed."""
        if self.outcome is None:
            with os.fdopen(self.read_end, "rb") as source:
                payload = source.read()
            _, status = os.waitpid(self.pid, 0)
            self.outcome = pickle.loads(payload) if payload else \
                (False, f"the child process ended without a result (wait status {status})")
        ok, value = self.outcome
        if not ok:
            raise RuntimeError(value)
        return value

    def __exit__(self, kind, error, traceback) -> None:
        if self.outcome is None:  # never asked for: the child is waited for (no zombie), its result dropped
            try:
                self.result()
            except RuntimeError:
                if kind is None:
                    raise


def _run(work: Callable[[], T]) -> tuple[bool, object]:
    try:
        return True, work()
    except Exception as exc:  # noqa: BLE001 - told to the caller by result(), as text: not every error pickles
        return False, f"{type(exc).__name__}: {exc}"
