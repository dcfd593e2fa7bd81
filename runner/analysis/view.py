"""`python -m runner.view`: a small local web app over the history database and the outputs folder.

It lists every run (the history's, and run folders under outputs/ that the history does not hold) with
its command, calls, cost and human votes; opens any run's report.html (built on the fly for a run that
has none, from its folder or, when the folder is gone, from the history); and puts two runs side by side:
what `python -m runner.compare` prints, with each changed answer as a word diff.

It reads the same files the runs wrote and keeps nothing of its own. The standard library's HTTP server
serves it, bound to 127.0.0.1 by default; requests whose Host is not the address it listens on are refused
(a web page elsewhere cannot reach it through a DNS name that points at 127.0.0.1). Pages are built on
the server with every text escaped, and carry a Content-Security-Policy that runs no script of theirs.
"""
from __future__ import annotations

import argparse
import difflib
import hashlib
import html
import re
import socket
import sqlite3
import sys
import threading
import webbrowser
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from runner import history

DEFAULT_PORT = 8765
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DIFFS_SHOWN = 200
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'"
STYLE = """
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #d1d9e0; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d1d9e0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.command { font-family: ui-monospace, monospace; font-size: 12px; min-width: 300px; max-width: 560px;
             overflow-wrap: anywhere; }
td.when { white-space: nowrap; }
a { color: #0969da; }
.note { color: #59636e; }
.diff { font-family: ui-monospace, monospace; white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f8fa;
        padding: 6px 10px; border-radius: 6px; }
del { background: #ffebe9; color: #82071e; } ins { background: #dafbe1; color: #116329; text-decoration: none; }
button { font: inherit; padding: 4px 12px; }
"""


@dataclass
class Entry:
    """One run the viewer knows: from the history (run set) or only a folder under outputs/."""

    key: str
    folder: Path
    run: history.Run | None = None
    calls: int | None = None
    ok: int | None = None
    error: int | None = None
    skipped: int | None = None
    spent_usd: float | None = None
    votes: list | None = None

    @property
    def name(self) -> str:
        return self.run.run_id if self.run else self.folder.name

    @property
    def command(self) -> str:
        if self.run:
            return self.run.command
        from runner.comparison import command_line

        return command_line(self.folder) if self.folder.is_dir() else ""

    @property
    def started(self) -> str:
        """When it started (UTC): the history's time, else when its folder last changed."""
        if self.run:
            return self.run.started_at[:19].replace("T", " ")
        changed = datetime.fromtimestamp(self.folder.stat().st_mtime, timezone.utc) if self.folder.exists() else None
        return changed.strftime("%Y-%m-%d %H:%M:%S") if changed else ""


class Catalog:
    """What the history and the outputs folder hold, read again for every page (runs keep arriving)."""

    def __init__(self, history_path: Path, outputs: Path) -> None:
        self.history_path = Path(history_path)
        self.outputs = Path(outputs)

    def entries(self) -> list[Entry]:
        found: list[Entry] = []
        known: set[str] = set()
        if self.history_path.is_file():
            totals = self._totals()
            votes = history.votes(self.history_path)
            for run in history.runs(self.history_path):
                counts = totals.get(run.id, (None,) * 5)
                found.append(Entry(f"h{run.id}", Path(run.folder), run, *counts, votes=votes.get(run.id, [])))
                known.add(run.folder)
        from runner.folders import job_folders

        for folder in sorted(self.outputs.glob("*/*")) if self.outputs.is_dir() else []:
            resolved = str(folder.resolve())
            if folder.is_dir() and resolved not in known and job_folders(folder):
                digest = hashlib.sha1(resolved.encode()).hexdigest()[:12]
                found.append(Entry(f"f{digest}", folder.resolve()))
        return found

    def _totals(self) -> dict[int, tuple]:
        db = history.connect(self.history_path)
        try:
            return {row[0]: tuple(row[1:]) for row in
                    db.execute("SELECT id, calls, ok, error, skipped, spent_usd FROM runs")}
        finally:
            db.close()

    def find(self, key: str) -> Entry | None:
        return next((e for e in self.entries() if e.key == key), None)

    def calls(self, entry: Entry):
        """The run's calls: from its folder when it is still there, else from the history."""
        from runner.comparison import read_calls
        from runner.folders import job_folders
        from runner.summary import frame

        if entry.folder.is_dir() and job_folders(entry.folder):
            return frame(read_calls(entry.folder).records)
        return history.calls(self.history_path, entry.run)


# ---- pages ------------------------------------------------------------------------------------------------
def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def _usd(value) -> str:
    from runner.report import usd

    return "" if value is None else usd(value)


def _votes_text(votes: list) -> str:
    if not votes:
        return ""
    from runner.analysis.votes import win_rates

    best = win_rates(votes)[0]
    return f"{len(votes)} vote{'s' * (len(votes) != 1)}; {best['model']} wins {best['win_rate']:.0%}"


def runs_page(catalog: Catalog) -> str:
    entries = sorted(catalog.entries(), key=lambda e: (e.started, e.key), reverse=True)  # newest first
    rows = []
    for e in entries:
        calls = "" if e.calls is None else f"{e.calls} ({e.ok} ok, {e.error} error, {e.skipped} skipped)"
        where = "" if e.run else " <span class=\"note\">(not in the history)</span>"
        rows.append(
            f"<tr class=\"run\" data-key=\"{_e(e.key)}\"><td><input type=\"checkbox\" name=\"run\" value=\"{_e(e.key)}\" "
            f"aria-label=\"compare {_e(e.name)}\"></td>"
            f"<td><a href=\"/runs/{_e(e.key)}\">{_e(e.name)}</a>{where}</td><td class=\"when\">{_e(e.started)}</td>"
            f"<td class=\"command\">{_e(e.command)}</td>"
            f"<td class=\"num\">{_e(calls)}</td><td class=\"num\">{_e(_usd(e.spent_usd))}</td>"
            f"<td>{_e(_votes_text(e.votes))}</td><td class=\"note\">{_e(e.folder)}</td></tr>")
    table = ("<table><thead><tr><th></th><th>run</th><th>started (UTC)</th><th>command</th><th>calls</th>"
             "<th>spent</th><th>human votes</th><th>folder</th></tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>") if rows else "<p class=\"note\">No runs yet: run <code>python -m runner</code>.</p>"
    return _page("runner: runs", (
        f"<h1>Runs</h1><p class=\"note\">{len(entries)} run{'s' * (len(entries) != 1)} from "
        f"<code>{_e(catalog.history_path)}</code> and <code>{_e(catalog.outputs)}</code>. Open a run to read "
        f"its report; tick two to compare them.</p>"
        f"<form method=\"get\" action=\"/compare\">{table}"
        f"<p><button type=\"submit\" id=\"compare\">Compare the two ticked runs</button></p></form>"))


def word_diff(old: str, new: str) -> str:
    """Two answers as one text, removed words in <del>, added ones in <ins>; every word escaped."""
    a, b = re.findall(r"\s+|\S+", old or ""), re.findall(r"\s+|\S+", new or "")
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(_e("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{_e(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{_e(''.join(b[j1:j2]))}</ins>")
    return "".join(out)


def answer_diffs(old, new) -> tuple[list[str], int]:
    """Each answer that changed (ok in both runs, different beyond case and whitespace), as a diff."""
    from runner.summary import CALL_KEYS, final_answers, normalized

    def key(row):
        return tuple("" if row[k] is None or row[k] != row[k] else row[k] for k in CALL_KEYS)

    before = {key(r): r for r in final_answers(old[old.status == "ok"]).to_dict("records")}
    parts, changed = [], 0
    for row in final_answers(new[new.status == "ok"]).sort_values(CALL_KEYS).to_dict("records"):
        was = before.get(key(row))
        if was is None or normalized(was["response"]) == normalized(row["response"]):
            continue
        changed += 1
        if changed <= DIFFS_SHOWN:
            where = (f"{row['model']} · {row['task']} · prompt {row['prompt']} · T={row['temperature']:g} · "
                     f"{row['item']} · repeat {int(row['repeat'])}")
            parts.append(f"<h3>{_e(where)}</h3><div class=\"diff\">{word_diff(was['response'], row['response'])}</div>")
    return parts, changed


def compare_page(catalog: Catalog, keys: list[str]) -> tuple[int, str]:
    from runner import changes
    from runner.analysis.markup import report_html

    if len(keys) != 2:
        return 400, _page("runner: compare", "<h1>Compare</h1><p>Tick two runs to compare. "
                                             "<a href=\"/\">Back to the runs</a></p>")
    entries = [catalog.find(k) for k in keys]
    if None in entries:
        return 404, _page("runner: compare", "<h1>Compare</h1><p>No such run. <a href=\"/\">Back to the runs</a></p>")
    old, new = sorted(entries, key=lambda e: (e.started, e.key))  # the earlier run first
    old_calls, new_calls = catalog.calls(old), catalog.calls(new)
    described = changes.describe(old_calls, new_calls, f"the earlier run {old.name}", f"run {new.name}")
    diffs, changed = answer_diffs(old_calls, new_calls)
    more = f"<p class=\"note\">…and {changed - DIFFS_SHOWN} more.</p>" if changed > DIFFS_SHOWN else ""
    body = (f"<h1>{_e(old.name)} → {_e(new.name)}</h1><p><a href=\"/\">Back to the runs</a> · "
            f"<a href=\"/runs/{_e(old.key)}\">{_e(old.name)}</a> · <a href=\"/runs/{_e(new.key)}\">{_e(new.name)}</a></p>"
            f"<section id=\"changes\">{report_html(described)}</section>"
            f"<h2>Answers that changed</h2><section id=\"diffs\">"
            + ("".join(diffs) if diffs else "<p class=\"note\">No answer in common changed.</p>") + more + "</section>")
    return 200, _page(f"runner: {old.name} → {new.name}", body)


def run_page(catalog: Catalog, key: str) -> tuple[int, str]:
    """The run's report.html as it was written, or built now from its folder or the history."""
    entry = catalog.find(key)
    if entry is None:
        return 404, _page("runner: no such run", "<h1>No such run</h1><p><a href=\"/\">Back to the runs</a></p>")
    written = entry.folder / "report.html"
    if written.is_file():
        return 200, written.read_text(encoding="utf-8")
    return 200, built_report(catalog, entry)


def built_report(catalog: Catalog, entry: Entry) -> str:
    from runner import comparison, plots
    from runner.analysis import report_html, votes
    from runner.summary import summarize

    df = catalog.calls(entry)
    summary = summarize(df)
    folder = entry.folder
    there = folder.is_dir()
    drawn = [folder / name for name in plots.FILES if there and (folder / name).is_file()]
    command = entry.run.command if entry.run else comparison.command_line(folder)
    config = comparison.first_config(folder) if there else ""
    sections = votes.section(entry.votes or (votes.read(folder) if there else []))
    about = [f"run `{entry.name}`, built by runner.view from "
             + ("its folder" if there else f"the history {catalog.history_path} (its folder is gone)")]
    data = report_html.page_data(folder if there else Path(entry.name), df, summary, drawn, command, config, [],
                                 [], sections, about)
    return report_html.page(data)


# ---- the server ---------------------------------------------------------------------------------------------
def handler_for(catalog: Catalog, allowed_hosts: set[str] | None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "runner.view"

        def log_message(self, *args):  # quiet: the terminal shows the URL, not every request
            pass

        def do_GET(self):  # noqa: N802 - the standard library's name
            host = (self.headers.get("Host") or "").lower()
            if allowed_hosts is not None and host not in allowed_hosts:
                return self._send(421, _page("runner.view", "<p>Misdirected request: open the address runner.view "
                                                            "printed.</p>"))
            url = urlsplit(self.path)
            try:
                if url.path == "/":
                    return self._send(200, runs_page(catalog))
                if url.path == "/compare":
                    return self._send(*compare_page(catalog, parse_qs(url.query).get("run", [])))
                match = re.fullmatch(r"/runs/([hf][0-9a-f]+)/?", url.path)
                if match:
                    return self._send(*run_page(catalog, match.group(1)), policy=None)
                return self._send(404, _page("runner.view", "<p>Not found. <a href=\"/\">The runs</a></p>"))
            except sqlite3.DatabaseError as exc:
                return self._send(500, _page("runner.view", f"<p>The history cannot be read: {_e(exc)}</p>"))

        def _send(self, status: int, text: str, policy: str | None = PAGE_POLICY):
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            if policy:  # a report.html carries its own policy (its script allowed by hash)
                self.send_header("Content-Security-Policy", policy)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host headers a loopback server answers; None (any) when it listens beyond this machine."""
    if host not in LOOPBACK:
        return None
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve(catalog: Catalog, host: str, port: int) -> ThreadingHTTPServer:
    server = (_Server6 if ":" in host else ThreadingHTTPServer)((host, port), None)
    server.RequestHandlerClass = handler_for(catalog, allowed_hosts(host, server.server_address[1]))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.view", description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=Path, default=history.DEFAULT_PATH,
                        help=f"the history database (default: {history.DEFAULT_PATH})")
    parser.add_argument("--outputs", type=Path, default=Path("outputs"),
                        help="the outputs folder whose run folders are listed too (default: outputs)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any free one)")
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
    except OSError as exc:
        print(f"runner.view: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
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
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
