"""Human votes from the arena, as the comparison counts them: votes.jsonl as the arena writes it, then the
report's "Human votes" table (won, tied, lost, both bad, win rate)."""
from __future__ import annotations

from runner.analysis import votes
from runner.analysis.build import build_comparison
from runner.records import Record, RecordWriter


def side(model: str) -> dict:
    return {"model": model, "prompt": "default", "temperature": 0.7, "variant": ""}


def test_a_both_bad_vote_is_half_a_win_for_each_side_never_a_loss(tmp_path):
    with RecordWriter(tmp_path) as writer:  # the calls the votes judge
        for model in ("gpt", "claude"):
            writer.write(Record(run_id="arena", model=model, provider="openai", model_id="m", task="chat",
                                prompt="default", temperature=0.7, item="hello", repeat=0, step="turn-1",
                                response=f"{model} says hi", input_tokens=3, output_tokens=4, latency_s=0.1,
                                started_at="2026-11-30T10:00:00+00:00"))
    for a, b, winner in (("gpt", "claude", "both_bad"), ("claude", "gpt", "a"), ("gpt", "claude", "tie")):
        votes.append(tmp_path, {"run_id": "arena", "item": "hello", "step": "turn-1", "winner": winner,
                                "a": side(a), "b": side(b)})
    build_comparison(tmp_path, history_path=tmp_path / "history.sqlite")
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    table = report.split("## Human votes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["| model | prompt | T | votes | won | tied | lost | both bad | win rate |",
                    "| claude | default | 0.7 | 3 | 1 | 1 | 0 | 1 | 67% |",
                    "| gpt | default | 0.7 | 3 | 0 | 1 | 1 | 1 | 33% |"]
