"""`python -m runner.view`: a small local web app over the history database and the outputs folder.

It lists every run (the history's, and run folders under outputs/ that the history does not hold) with
its command, calls, cost and human votes; opens any run's report.html (built on the fly for a run that
has none, from its folder or, when the folder is gone, from the history); and puts two runs side by side:
what `python -m runner.compare` prints, with each changed answer as a word diff.

It reads the same files the runs wrote and keeps nothing of its own. The standard library's HTTP server
serves it, bound to 127.0.0.1 by default; requests whose Host is not the address it listens on, or whose
Origin is another site, are refused (runner.local_web: a web page elsewhere cannot reach it through a
DNS name that points at 127.0.0.1). Pages are built on the server with every text escaped, and carry a
Content-Security-Policy that runs no script of theirs. A run's report.html is served under a policy that
runs only the script runner writes into it (view_pages.run_page): a report.html planted in a run folder
runs nothing.
"""
from __future__ import annotations

import argparse
import re
import socket
import sqlite3
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from runner.analysis import history
from runner.analysis.catalog import Catalog
from runner.analysis.view_pages import PAGE_POLICY, compare_page, escaped, page, run_page, runs_page
from runner.local_web import INTERRUPTED, LOOPBACK, allowed_hosts, refusal

DEFAULT_PORT = 8765


def handler_for(catalog: Catalog, hosts: set[str] | None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "runner.view"

        def log_message(self, *args):  # quiet: the terminal shows the URL, not every request
            pass

        def do_GET(self):  # noqa: N802 - the standard library's name
            refused = refusal(self.headers.get("Host") or "", self.headers.get("Origin"), hosts)
            if refused:
                return self._send(refused[0], page("runner.view", f"<p>{escaped(refused[1])}</p>"))
            url = urlsplit(self.path)
            try:
                if url.path == "/":
                    return self._send(200, runs_page(catalog))
                if url.path == "/compare":
                    return self._send(*compare_page(catalog, parse_qs(url.query).get("run", [])))
                match = re.fullmatch(r"/runs/([hf][0-9a-f]+)/?", url.path)
                if match:
                    return self._send(*run_page(catalog, match.group(1)))
                return self._send(404, page("runner.view", "<p>Not found. <a href=\"/\">The runs</a></p>"))
            except sqlite3.DatabaseError as exc:
                return self._send(500, page("runner.view", f"<p>The history cannot be read: {escaped(exc)}</p>"))

        def _send(self, status: int, text: str, policy: str = PAGE_POLICY):
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", policy)
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve(catalog: Catalog, host: str, port: int) -> ThreadingHTTPServer:
    server = (_Server6 if ":" in host else ThreadingHTTPServer)((host, port), None)
    server.RequestHandlerClass = handler_for(catalog, allowed_hosts(host, server.server_address[1]))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    try:
        return view(argv)
    except KeyboardInterrupt:  # Ctrl-C, while it starts or serves: exit 130 as for a run, no traceback
        return INTERRUPTED


def view(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.view", description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=Path, default=history.DEFAULT_PATH,
                        help=f"the history database (default: {history.DEFAULT_PATH})")
    parser.add_argument("--outputs", type=Path, default=Path("outputs"),
                        help="the outputs folder whose run folders are listed too (default: outputs)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default: {DEFAULT_PORT}; 0: any free one)")
    parser.add_argument("--open", action="store_true", help="open it in the default web browser")
    args = parser.parse_args(argv)
    if args.history.is_dir():
        print(f"runner.view: {args.history} is a folder, not a history file (--history takes the .sqlite file)",
              file=sys.stderr)
        return 2
    catalog = Catalog(args.history, args.outputs)
    try:
        runs = len(catalog.entries())
    except sqlite3.DatabaseError as exc:
        print(f"runner.view: {args.history} cannot be read as a history database: {exc}", file=sys.stderr)
        return 2
    try:
        server = serve(catalog, args.host, args.port)
    except (OSError, OverflowError) as exc:  # OverflowError: a port beyond 0-65535
        print(f"runner.view: cannot listen on {args.host}:{args.port}: {getattr(exc, 'strerror', None) or exc} "
              f"(choose another with --port)", file=sys.stderr)
        return 2
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown_host}:{server.server_address[1]}/"
    beyond = "" if args.host in LOOPBACK else " (reachable from other machines: it has no login)"
    print(f"runner.view: {runs} run{'s' * (runs != 1)} from {args.history} and {args.outputs}/ at {url}{beyond}; "
          f"Ctrl-C stops it", flush=True)
    if args.open:
        threading.Timer(0.5, webbrowser.open, [url]).start()
    try:
        server.serve_forever()  # until Ctrl-C
    finally:
        server.server_close()
    return 0
