"""Human judgments from the arena (`python -m runner.chat -m ...`): votes on two anonymous answers, and the
win rates they give.

A vote is one line of `votes.jsonl` in the chat session's folder, beside the calls it judges, so the
comparison can be rebuilt from the folder like everything else: it adds a "Human votes" section to
report.md and report.html and records the votes in the history database (runner.analysis.history).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from runner.variant import Labels

VOTES_FILE = "votes.jsonl"
TITLE = "Human votes"
# a: the answer shown as A won; b: B won; tie: as good as each other; both_bad: neither was any good
WINNERS = ("a", "b", "tie", "both_bad")
SIDE_KEYS = ("model", "prompt", "temperature", "variant")


def append(folder: Path, vote: dict) -> None:
    """Add one vote to the folder's votes.jsonl, on disk before this returns (a crash loses no vote)."""
    if vote.get("winner") not in WINNERS:
        raise ValueError(f"winner must be one of {', '.join(WINNERS)}, not {vote.get('winner')!r}")
    with open(Path(folder) / VOTES_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(vote, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read(folder: Path) -> list[dict]:
    """The folder's votes; a line that is not a whole vote (cut short by a crash) is left out."""
    path = Path(folder) / VOTES_FILE
    if not path.exists():
        return []
    votes = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            vote = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(vote, dict) and vote.get("winner") in WINNERS and all(
                isinstance(vote.get(side), dict) for side in ("a", "b")):
            votes.append(vote)
    return votes


def side(vote: dict, which: str) -> tuple[str, str, float, str]:
    """Who answered as A or B: (model, prompt, temperature, variant)."""
    data = vote[which]
    return (str(data.get("model", "")), str(data.get("prompt", "")), float(data.get("temperature") or 0),
            str(data.get("variant") or ""))


def win_rates(votes: list[dict]) -> list[dict]:
    """One row per contestant, best first: votes taken part in, won, tied, lost, both bad, and the win rate
    (a tie or a both-bad vote counts half a win for each side, as in Chatbot Arena)."""
    tally: dict[tuple, dict] = {}
    for vote in votes:
        a, b, winner = side(vote, "a"), side(vote, "b"), vote["winner"]
        for me, other_won, i_won in ((a, winner == "b", winner == "a"), (b, winner == "a", winner == "b")):
            row = tally.setdefault(me, dict(zip(SIDE_KEYS, me), votes=0, won=0, tied=0, lost=0, both_bad=0))
            row["votes"] += 1
            row["won"] += i_won
            row["lost"] += other_won
            row["tied"] += winner == "tie"
            row["both_bad"] += winner == "both_bad"
    rows = list(tally.values())
    for row in rows:
        row["win_rate"] = (row["won"] + (row["tied"] + row["both_bad"]) / 2) / row["votes"]
    return sorted(rows, key=lambda r: (-r["win_rate"], -r["votes"], r["model"]))


def table_data(votes: list[dict]) -> tuple[list[str], list[list]]:
    """The win-rate table's header and rows, as text."""
    rows = win_rates(votes)
    labels = Labels(r["variant"] for r in rows)
    return (["model", "prompt", "T", "votes", "won", "tied", "lost", "both bad", "win rate"],
            [[labels(r["model"], r["variant"]), r["prompt"], f"{r['temperature']:g}", r["votes"], r["won"],
              r["tied"], r["lost"], r["both_bad"], f"{r['win_rate']:.0%}"] for r in rows])


NOTE = ("Votes from the arena (`python -m runner.chat -m ...`): two anonymous answers to the same message, "
        "judged by a person. *Win rate*: wins, plus half of each tie and each both-bad vote, over the votes.")


def section(votes: list[dict]) -> list[tuple[str, str]]:
    """The report's "Human votes" section (title, markdown), or nothing when there are no votes."""
    if not votes:
        return []
    from runner.analysis.report import table

    header, rows = table_data(votes)
    return [(TITLE, f"{len(votes)} vote{'s' * (len(votes) != 1)}.\n\n"
             + table(rows, header, ["---"] * 3 + ["---:"] * 6) + "\n\n" + NOTE)]
