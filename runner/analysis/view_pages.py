"""runner.view's pages, built on the server: the run list, a run's report.html, two runs compared with each
changed answer as a word diff. Every text is escaped (html.escape) or, for report markdown, rendered and
sanitized (runner.analysis.markup); the pages run no script of their own. A run's report runs only the
script runner writes into report.html (report_policy)."""
from __future__ import annotations

import difflib
import html
import re
from pathlib import Path

from runner.analysis.catalog import Catalog, Entry

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


def escaped(value) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escaped(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def _usd(value) -> str:
    from runner.money import dollars

    return "" if value is None else dollars(value)


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
        key, name = escaped(e.key), escaped(e.name)
        rows.append(
            f"<tr class=\"run\" data-key=\"{key}\"><td><input type=\"checkbox\" name=\"run\" value=\"{key}\" "
            f"aria-label=\"compare {name}\"></td>"
            f"<td><a href=\"/runs/{key}\">{name}</a>{where}</td><td class=\"when\">{escaped(e.started)}</td>"
            f"<td class=\"command\">{escaped(e.command)}</td>"
            f"<td class=\"num\">{escaped(calls)}</td><td class=\"num\">{escaped(_usd(e.spent_usd))}</td>"
            f"<td class=\"score\">{escaped(e.scores)}</td>"
            f"<td>{escaped(_votes_text(e.votes))}</td><td class=\"note\">{escaped(e.folder)}</td></tr>")
    table = ("<table><thead><tr><th></th><th>run</th><th>started (UTC)</th><th>command</th><th>calls</th>"
             "<th>spent</th><th>best score (95% interval)</th>"
             "<th>human votes</th><th>folder</th></tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>") if rows else "<p class=\"note\">No runs yet: run <code>python -m runner</code>.</p>"
    return page("runner: runs", (
        f"<h1>Runs</h1><p class=\"note\">{len(entries)} run{'s' * (len(entries) != 1)} from "
        f"<code>{escaped(catalog.history_path)}</code> and <code>{escaped(catalog.outputs)}</code>. Open a run to read "
        f"its report; tick two to compare them.</p>"
        f"<form method=\"get\" action=\"/compare\">{table}"
        f"<p><button type=\"submit\" id=\"compare\">Compare the two ticked runs</button></p></form>"))


def word_diff(old: str, new: str) -> str:
    """Two answers as one text, removed words in <del>, added ones in <ins>; every word escaped."""
    a, b = re.findall(r"\s+|\S+", old or ""), re.findall(r"\s+|\S+", new or "")
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escaped("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{escaped(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{escaped(''.join(b[j1:j2]))}</ins>")
    return "".join(out)


def answer_diffs(old, new) -> tuple[list[str], int]:
    """Each answer that changed (ok in both runs, different beyond case and whitespace), as a diff."""
    from runner.analysis.summary import CALL_KEYS, final_answers, normalized

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
            diff = word_diff(was["response"], row["response"])
            parts.append(f"<h3>{escaped(where)}</h3><div class=\"diff\">{diff}</div>")
    return parts, changed


def compare_page(catalog: Catalog, keys: list[str]) -> tuple[int, str]:
    from runner.analysis import run_diff, scores
    from runner.analysis.markup import report_html

    if len(keys) != 2:
        return 400, page("runner: compare", "<h1>Compare</h1><p>Tick two runs to compare. "
                                             "<a href=\"/\">Back to the runs</a></p>")
    entries = [catalog.find(k) for k in keys]
    if None in entries:
        return 404, page("runner: compare", "<h1>Compare</h1><p>No such run. <a href=\"/\">Back to the runs</a></p>")
    old, new = sorted(entries, key=lambda e: (e.started, e.key))  # the earlier run first
    old_calls, new_calls = catalog.calls(old), catalog.calls(new)
    described = run_diff.describe(old_calls, new_calls, f"the earlier run {old.name}", f"run {new.name}")
    described += "\n\n## Scores\n\n" + scores.between(catalog.scores(old), catalog.scores(new))
    diffs, changed = answer_diffs(old_calls, new_calls)
    more = f"<p class=\"note\">…and {changed - DIFFS_SHOWN} more.</p>" if changed > DIFFS_SHOWN else ""
    body = (f"<h1>{escaped(old.name)} → {escaped(new.name)}</h1><p><a href=\"/\">Back to the runs</a> · "
            f"<a href=\"/runs/{escaped(old.key)}\">{escaped(old.name)}</a> · "
            f"<a href=\"/runs/{escaped(new.key)}\">{escaped(new.name)}</a></p>"
            f"<section id=\"changes\">{report_html(described)}</section>"
            f"<h2>Answers that changed</h2><section id=\"diffs\">"
            + ("".join(diffs) if diffs else "<p class=\"note\">No answer in common changed.</p>") + more + "</section>")
    return 200, page(f"runner: {old.name} → {new.name}", body)


def report_policy() -> str:
    """What a run's report is served under: report.html's own policy (no script runs but the one runner
    writes into it, allowed by its hash), whatever the file's own meta tag says, and a sandbox: the page
    has an origin of its own, so even a script that ran could not read the viewer's other pages."""
    from runner.analysis.report_html import policy

    return f"{policy()}; sandbox allow-scripts"


def run_page(catalog: Catalog, key: str) -> tuple[int, str, str]:
    """The run's report.html as it was written, when it holds the script this runner writes; else (none,
    one from another version, or a file put there by hand or by someone else) built now from the run's
    folder or the history. With the policy to serve it under."""
    from runner.analysis.report_html import script_tag

    entry = catalog.find(key)
    if entry is None:
        return 404, page("runner: no such run", "<h1>No such run</h1><p><a href=\"/\">Back to the runs</a></p>"), \
            PAGE_POLICY
    written = entry.folder / "report.html"
    try:
        text = written.read_text(encoding="utf-8") if written.is_file() else None
    except (OSError, UnicodeDecodeError):
        text = ""
    if text and script_tag() in text:
        return 200, text, report_policy()
    why = None if text is None else "its report.html is not one this version of runner writes"
    return 200, built_report(catalog, entry, why), report_policy()


def built_report(catalog: Catalog, entry: Entry, why: str | None = None) -> str:
    from runner.analysis import plots, report_html, run_folder, votes
    from runner.analysis.summary import summarize

    df = catalog.calls(entry)
    summary = summarize(df)
    folder = entry.folder
    there = folder.is_dir()
    drawn = [folder / name for name in plots.FILES if there and (folder / name).is_file()]
    command = entry.run.command if entry.run else run_folder.command_line(folder)
    config = run_folder.first_config(folder) if there else ""
    sections = votes.section(entry.votes or (votes.read(folder) if there else []))
    about = [f"run `{entry.name}`, built by runner.view from "
             + ("its folder" if there else f"the history {catalog.history_path} (its folder is gone)")
             + (f" ({why})" if why else "")]
    data = report_html.page_data(folder if there else Path(entry.name), df, summary, drawn, command, config, [],
                                 [], sections, about)
    return report_html.page(data)
