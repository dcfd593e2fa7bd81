"""How a run stops on a signal: SIGTERM (what cron, systemd and CI send) ends it with exit code 143, Ctrl-C
(SIGINT) with 130, whatever it was doing when the signal came.

The handler never raises into the code the signal interrupts while the calls run: it cancels the asyncio
task that runs them (`run`), as asyncio.run does for Ctrl-C, so every call in flight stops at an await and an
answer already paid for is still cached and recorded (runner.calling.engine). Outside the calls (Hydra
composing the config, the comparison) it raises `Terminated` or KeyboardInterrupt, as Ctrl-C does. Python
cannot pass on an exception raised inside a weakref callback or a __del__ method (it prints it and carries
on), so the exit code is decided by the signal recorded here (`exit_code`), not by the exception reaching
the top.
"""
from __future__ import annotations

import signal
import sys

EXIT_CODES = {signal.SIGINT: 130}
if hasattr(signal, "SIGTERM"):
    EXIT_CODES[signal.SIGTERM] = 143

requested: int | None = None  # the signal that asked the run to stop
_calls = None  # the asyncio task running the calls, while there is one
_holding = False  # a signal is only noted: Python is still starting, or the run is exiting


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the run stops as Ctrl-C stops it (files flushed, clients closed), exit code 143."""


def _stopped() -> KeyboardInterrupt:
    return KeyboardInterrupt() if requested == signal.SIGINT else Terminated()


def _stop(signum, frame) -> None:
    global requested
    first = requested is None
    requested = requested or signum
    if _holding:
        return
    task = _calls
    if first and task is not None and not task.done():
        task.cancel()
        task.get_loop().call_soon_threadsafe(lambda: None)  # wake the loop from its wait for sockets
        return
    raise _stopped()  # outside the calls, or a second signal: stop now


def install(hold: bool = False) -> None:
    """Handle SIGTERM and Ctrl-C as above; `hold`: only note them for now (Python is still importing what
    the run needs). A signal noted before is acted on here. Windows has no SIGTERM from outside (a process
    is ended with TerminateProcess, which nothing can catch): there only Ctrl-C is handled. Nothing is done
    outside the main thread (the Hydra app called from another program's thread), where signals cannot be
    handled."""
    global _holding
    _holding = hold
    for signum in EXIT_CODES:
        if sys.platform == "win32" and signum != signal.SIGINT:
            continue
        try:
            signal.signal(signum, _stop)
        except ValueError:
            return
    if requested is not None and not hold:
        raise _stopped()


def run(main):
    """asyncio.run(main), a signal cancelling it instead of raising wherever the loop happens to be; a stop
    ends as Terminated (or KeyboardInterrupt) once the calls have been cancelled."""
    import asyncio

    async def calls():
        global _calls
        _calls = asyncio.current_task()
        try:
            return await main
        finally:
            _calls = None

    try:
        result = asyncio.run(calls())
    except asyncio.CancelledError:
        if requested is None:
            raise
        result = None
    if requested is not None and not _holding:
        raise _stopped()
    return result


def interrupted(exc: KeyboardInterrupt) -> None:
    """A KeyboardInterrupt (or Terminated) reached the top: note its signal, if none was noted yet."""
    global requested
    if requested is None:
        requested = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT


def exit_code(code: int) -> int:
    """The code the process ends with: 143 or 130 once a signal asked the run to stop, whatever else
    happened; `code` otherwise. From here on a signal is only noted."""
    global _holding
    _holding = True
    return EXIT_CODES.get(requested, code) if requested is not None else code
