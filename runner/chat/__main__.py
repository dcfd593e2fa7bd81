"""`python -m runner.chat`: chat with any configured model in the browser, or vote in a two-model arena.

    python -m runner.chat                              the embedded local model, the course's store chatbot
    python -m runner.chat model=claude prompt=concise  any model, prompt, temperature... (Hydra overrides)
    python -m runner.chat -m model=gpt,claude          the arena: two anonymous models, you vote

Needs Gradio, the optional extra `ui` (pip install -e ".[ui]"). Conversations are saved in
outputs/chats/<time>/ (a run folder, with report.md and report.html) and the history database.
It listens on 127.0.0.1 and answers only requests addressed to that address, sent by its own pages.
Exit codes: 130 stopped with Ctrl-C; 2 bad config, a missing key, a port in use or no Gradio, said in one line.
"""
from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

DEFAULT_PORTS = range(7860, 7960)  # Gradio's: the first free one, as `gradio app.py` picks it
INSTALL = 'runner.chat needs Gradio, the optional extra "ui": pip install -e ".[ui]"'


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runner.chat", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides, as for python -m runner")
    parser.add_argument("-m", "--multirun", action="store_true", help="the arena: the overrides sweep two contestants")
    parser.add_argument("--folder", type=Path, default=None,
                        help="where the session is saved (default: outputs/chats/<time>)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: 7860 or the next free one; 0: any free one)")
    parser.add_argument("--open", action="store_true", help="open it in the default web browser")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    from runner.local_web import INTERRUPTED

    try:
        return chat(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # Ctrl-C at any moment, the session's last comparison included: no traceback
        return INTERRUPTED


def chat(argv: list[str]) -> int:
    args = parse(argv)
    if importlib.util.find_spec("gradio") is None:
        print(INSTALL, file=sys.stderr)
        return 2
    try:
        port = chosen_port(args.host, args.port)
    except (OSError, OverflowError) as exc:  # OverflowError: a port beyond 0-65535
        if args.port is None and getattr(exc, "errno", None) == errno.EADDRINUSE:
            where = f"{args.host}, on any port of {DEFAULT_PORTS[0]}-{DEFAULT_PORTS[-1]}"
        else:
            where = f"{args.host}:{DEFAULT_PORTS[0] if args.port is None else args.port}"
        print(f"runner.chat: cannot listen on {where}: {_why(exc)} (--host and --port choose where; --port 0 "
              f"picks a free port)", file=sys.stderr)
        return 2
    from dotenv import load_dotenv

    from runner.chat.contestants import contestants
    from runner.errors import ConfigError
    from runner.folders import new_folder
    from runner.providers.keys import MissingKey
    from runner.redact import protect_logging

    load_dotenv(Path.cwd() / ".env", override=False)  # keys: the environment wins over .env
    protect_logging()
    try:
        found = contestants(args.overrides, args.multirun)
    except (ConfigError, MissingKey) as exc:
        print(f"runner.chat: config error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local app
    from runner.chat.session import ChatSession

    try:
        folder = Path(args.folder) if args.folder else \
            Path(new_folder(f"outputs/chats/{datetime.now():%Y-%m-%d_%H-%M-%S}"))
        folder.mkdir(parents=True, exist_ok=True)
        session = ChatSession(folder, found, "python -m runner.chat " + shlex.join(argv))
    except OSError as exc:
        print(f"runner.chat: cannot write the session's folder: {exc}", file=sys.stderr)
        return 2
    from starlette.middleware import Middleware

    from runner.chat.app import arena_app, chat_app
    from runner.chat.host_check import HostCheck
    from runner.local_web import LOOPBACK

    app = arena_app(session) if session.arena else chat_app(session)
    try:
        _, url, _ = app.queue().launch(server_name=f"[{args.host}]" if ":" in args.host else args.host,  # IPv6
                                       server_port=port, inbrowser=args.open,
                                       prevent_thread_lock=True, quiet=True, ssr_mode=False, show_error=True,
                                       app_kwargs={"middleware": [Middleware(HostCheck, listen_host=args.host)]})
    except OSError:  # the port was taken since it was checked (Gradio's own message names its settings)
        print(f"runner.chat: cannot listen on {args.host}:{port}: another program took the port (--port chooses "
              f"another; --port 0 picks a free port)", file=sys.stderr)
        session.close()
        return 2
    who = " vs ".join(c.label for c in found) if session.arena else found[0].label
    beyond = "" if args.host in LOOPBACK else " (reachable from other machines: no login, and it calls models " \
                                              "with your keys)"
    try:  # from here on, Ctrl-C (even right after the line below) ends the session the same way
        print(f"runner.chat: {'arena of ' if session.arena else 'chat with '}{who} at {url} ; saved in {folder}"
              f"{beyond} (Ctrl-C stops it)", flush=True)
        while app.is_running:  # until Ctrl-C (KeyboardInterrupt: exit 130, in main); Gradio's own wait,
            time.sleep(0.2)    # block_thread(), would catch it and return as if nothing had happened
    finally:
        app.close(verbose=False)  # the server and its threads; the lines below say what happened
        if session.close():
            print(f"runner.chat: the session is in {folder / 'report.md'} and the history", file=sys.stderr)
        else:
            print("runner.chat: nothing was said; nothing saved", file=sys.stderr)
    return 0


def chosen_port(host: str, port: int | None) -> int:
    """The port to listen on: `port` if it is free (0: one the system picks), by default the first free one of
    Gradio's usual ports. Gradio is given the number: with 0 it would fail to reach its own server."""
    from runner.local_web import free_port

    if port is not None:
        return free_port(host, port)
    for candidate in DEFAULT_PORTS:
        try:
            return free_port(host, candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:  # not a taken port: the address itself is wrong
                raise
            taken = exc
    raise taken


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
