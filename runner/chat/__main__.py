"""`python -m runner.chat`: chat with any configured model in the browser, or vote in a two-model arena.

    python -m runner.chat                              the embedded local model, the course's store chatbot
    python -m runner.chat model=claude prompt=concise  any model, prompt, temperature... (Hydra overrides)
    python -m runner.chat -m model=gpt,claude          the arena: two anonymous models, you vote

Needs Gradio, the optional extra `ui` (pip install -e ".[ui]"). Conversations are saved in
outputs/chats/<time>/ (a run folder, with report.md and report.html) and the history database.
Exit codes: 0 stopped with Ctrl-C; 2 bad config, a missing key or no Gradio, said in one line.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path

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
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--open", action="store_true", help="open it in the default web browser")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if importlib.util.find_spec("gradio") is None:
        print(INSTALL, file=sys.stderr)
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
    from runner.chat.app import arena_app, chat_app

    app = arena_app(session) if session.arena else chat_app(session)
    try:
        _, url, _ = app.queue().launch(server_name=args.host, server_port=args.port, inbrowser=args.open,
                                       prevent_thread_lock=True, quiet=True, ssr_mode=False, show_error=True)
    except OSError as exc:
        print(f"runner.chat: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        session.close()
        return 2
    who = " vs ".join(c.label for c in found) if session.arena else found[0].label
    try:  # from here on, Ctrl-C (even right after the line below) ends the session the same way
        print(f"runner.chat: {'arena of ' if session.arena else 'chat with '}{who} at {url} ; saved in {folder} "
              f"(Ctrl-C stops it)", flush=True)
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()  # the server's threads, when Ctrl-C came before Gradio's own wait began
        if session.close():
            print(f"runner.chat: the session is in {folder / 'report.md'} and the history", file=sys.stderr)
        else:
            print("runner.chat: nothing was said; nothing saved", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
