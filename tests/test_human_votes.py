"""Human votes from the arena, as the comparison counts them: votes.jsonl as the arena writes it, then the
report's "Human votes" section (won, tied, lost, both bad, win rate; best first)."""
from __future__ import annotations

from pathlib import Path

from runner.analysis import votes
from runner.analysis.build import build_comparison
from runner.records import Record, RecordWriter


def side(model: str, temperature: float = 0.7) -> dict:
    return {"model": model, "prompt": "default", "temperature": temperature, "variant": ""}


def human_votes(folder: Path, cast: list[tuple[dict, dict, str]]) -> list[str]:
    """Cast these votes (side A, side B, winner) in an arena folder, build its comparison, and return the
    report's "Human votes" section: its first line, then the table's rows (header first)."""
    with RecordWriter(folder) as writer:  # a call the votes judge: the folder is a run
        writer.write(Record(run_id="arena", model="gpt", provider="openai", model_id="m", task="chat",
                            prompt="default", temperature=0.7, item="hello", repeat=0, step="turn-1",
                            response="hi", input_tokens=3, output_tokens=4, latency_s=0.1,
                            started_at="2026-11-30T10:00:00+00:00"))
    for a, b, winner in cast:
        votes.append(folder, {"run_id": "arena", "item": "hello", "step": "turn-1", "winner": winner, "a": a, "b": b})
    build_comparison(folder, history_path=folder / "history.sqlite")
    section = (folder / "report.md").read_text(encoding="utf-8").split("## Human votes", 1)[1].split("\n## ", 1)[0]
    lines = section.strip().splitlines()
    return [lines[0]] + [line for line in lines if line.startswith("| ") and "---" not in line]


def test_a_both_bad_vote_is_half_a_win_for_each_side_never_a_loss(tmp_path):
    gpt, claude = side("gpt"), side("claude")
    assert human_votes(tmp_path, [(gpt, claude, "both_bad"), (claude, gpt, "a"), (gpt, claude, "tie")]) == [
        "3 votes.",
        "| model | prompt | T | votes | won | tied | lost | both bad | win rate |",
        "| claude | default | 0.7 | 3 | 1 | 1 | 0 | 1 | 67% |",
        "| gpt | default | 0.7 | 3 | 0 | 1 | 1 | 1 | 33% |"]


def test_equal_win_rates_rank_the_contestant_with_more_votes_first_and_t_0_stays_0(tmp_path):
    cold, claude, llama = side("gpt", 0.0), side("claude"), side("llama")
    assert human_votes(tmp_path, [(cold, claude, "tie"), (claude, llama, "tie")]) == [
        "2 votes.",
        "| model | prompt | T | votes | won | tied | lost | both bad | win rate |",
        "| claude | default | 0.7 | 2 | 0 | 2 | 0 | 0 | 50% |",
        "| gpt | default | 0 | 1 | 0 | 1 | 0 | 0 | 50% |",
        "| llama | default | 0.7 | 1 | 0 | 1 | 0 | 0 | 50% |"]
