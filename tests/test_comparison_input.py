"""`python -m runner.comparison` and `python -m runner.compare` on damaged or unusable input: they say what
is wrong and where, in one line each, and never lose what was already written."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.records import Record, RecordWriter
from tests import forked
from tests.conftest import clean_env
from tests.fakes.openai_server import openai_server
from tests.test_cells import env_for, read_csv


def module(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return forked.run([sys.executable, "-m", name, *args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=300)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_damaged_results_jsonl_lines_are_named_and_the_fuller_results_csv_is_kept(runner, tmp_path):
    with openai_server() as server:
        run = runner("-m", "model=gpt", "model.id=gpt-4o-mini,gpt-4o", "repeats=3", "cache=false",
                     env=env_for(server))
    assert run.code == 0, run.stderr[-2000:]
    root = run.root()
    assert len(read_csv(root / "results.csv")) == 6
    cut, broken = root / "0" / "results.jsonl", root / "1" / "results.jsonl"
    data = cut.read_bytes()
    cut.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 40])  # the last line cut short, no newline
    lines = broken.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = "#" + lines[1][1:]  # a middle line damaged
    broken.write_text("".join(lines), encoding="utf-8")

    rebuilt = module("runner.comparison", str(root), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    said = [line for line in rebuilt.stderr.splitlines() if line.startswith("runner.comparison: ")]
    assert len(said) == 3, rebuilt.stderr
    assert str(Path("0") / "results.jsonl") + ", line 3: cut short" in said[0]
    assert str(Path("1") / "results.jsonl") + ", line 2: not a JSON record" in said[1]
    assert "results.csv held 6 calls" in said[2] and "holds 4" in said[2] and "results.csv.bak" in said[2]
    assert len(read_csv(root / "results.csv")) == 4
    assert len(read_csv(root / "results.csv.bak")) == 6  # nothing that was written is lost
    report = (root / "report.md").read_text(encoding="utf-8")
    warnings = [line for line in report.splitlines() if line.startswith("> **Warning:**")]
    assert any("0/results.jsonl, line 3" in w.replace(os.sep, "/") for w in warnings)
    assert any("1/results.jsonl, line 2" in w.replace(os.sep, "/") for w in warnings)
    assert any("results.csv.bak" in w for w in warnings)

    # rebuilt again from the same files: nothing more is lost, so the kept file is not replaced
    again = module("runner.comparison", str(root), cwd=tmp_path)
    assert again.returncode == 0 and "results.csv held" not in again.stderr
    assert sorted(p.name for p in root.glob("results.csv*")) == ["results.csv", "results.csv.bak"]


def _read_only(folder: Path):
    """Make a folder read-only for this user: permission bits, or for root (who ignores them) the
    immutable attribute. Returns how to undo it."""
    if os.name != "posix":
        pytest.skip("a read-only folder is made with POSIX permissions here")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    chattr = shutil.which("chattr")
    if not chattr or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a way to make a folder read-only")
    return lambda: subprocess.run([chattr, "-i", str(folder)], check=True)


def test_comparison_into_a_read_only_folder_says_so_in_one_line_and_exits_2(tmp_path):
    folder = tmp_path / "run"
    with RecordWriter(folder) as writer:
        writer.write(Record(run_id="run", model="gpt", provider="openai", model_id="gpt-4o", task="joke",
                            prompt="default", temperature=0.7, item="a", repeat=0, response="hello"))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    undo = _read_only(folder)
    try:
        result = module("runner.comparison", str(folder), "--history", str(tmp_path / "history.sqlite"),
                        cwd=tmp_path)
    finally:
        undo()
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("runner.comparison: cannot write the comparison into ") and str(folder) in line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_compare_on_a_corrupt_history_or_a_folder_says_so_in_one_line_and_exits_2(tmp_path):
    (tmp_path / "history.sqlite").write_bytes(b"this is not a database\n" * 100)
    corrupt = module("runner.compare", "--history", "history.sqlite", cwd=tmp_path)
    assert corrupt.returncode == 2
    assert "history.sqlite cannot be read as a history database" in one_line(corrupt.stderr)
    assert (tmp_path / "history.sqlite").read_bytes() == b"this is not a database\n" * 100

    (tmp_path / "outputs").mkdir()
    folder = module("runner.compare", "--history", "outputs", cwd=tmp_path)
    assert folder.returncode == 2 and "outputs is a folder, not a history file" in one_line(folder.stderr)
    for args in (["outputs"], ["outputs", "outputs"]):  # a folder that holds no run
        result = module("runner.compare", *args, cwd=tmp_path)
        assert result.returncode == 2 and "no run 'outputs'" in one_line(result.stderr)


def test_a_record_with_a_field_of_the_wrong_type_is_named_and_left_out(tmp_path):
    """Valid JSON, wrong types (hand-edited, or written by another tool): each such line is named with its
    file, line and field, as a damaged line is, and the comparison is built from the others."""
    folder = tmp_path / "run"
    with RecordWriter(folder) as writer:
        for item in ("a", "b"):
            writer.write(Record(run_id="run", model="gpt", provider="openai", model_id="gpt-4o", task="joke",
                                prompt="default", temperature=0.7, item=item, repeat=0, response="hello",
                                input_tokens=10, output_tokens=5, latency_s=0.5))
    good = json.loads((folder / "results.jsonl").read_text(encoding="utf-8").splitlines()[0])
    wrong = [{"input_tokens": "ten"}, {"latency_s": []}, {"status": 3}, {"status": "fine"}, {"cache_hit": "yes"},
             {"repeat": True}]
    with open(folder / "results.jsonl", "a", encoding="utf-8") as handle:
        for n, change in enumerate(wrong):
            handle.write(json.dumps({**good, "item": f"bad {n}", **change}) + "\n")
    rebuilt = module("runner.comparison", str(folder), "--history", str(tmp_path / "history.sqlite"), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    said = [line for line in rebuilt.stderr.splitlines() if line.startswith("runner.comparison: ")]
    where = str(folder / "results.jsonl")
    assert said == [f"runner.comparison: skipped {where}, line 3: input_tokens is \"ten\", not a whole number",
                    f"runner.comparison: skipped {where}, line 4: latency_s is [], not a number",
                    f"runner.comparison: skipped {where}, line 5: status is 3, not a text",
                    f"runner.comparison: skipped {where}, line 6: status is \"fine\", not one of ok, error, skipped",
                    f"runner.comparison: skipped {where}, line 7: cache_hit is \"yes\", not true or false",
                    f"runner.comparison: skipped {where}, line 8: repeat is true, not a whole number"], rebuilt.stderr
    assert [row["item"] for row in read_csv(folder / "results.csv")] == ["a", "b"]
    [summary] = read_csv(folder / "summary.csv")
    assert (summary["calls"], summary["input_tokens"]) == ("2", "20")


def test_one_call_is_one_call_not_1_calls(tmp_path):
    folder = tmp_path / "run"
    with RecordWriter(folder) as writer:
        writer.write(Record(run_id="run", model="gpt", provider="openai", model_id="gpt-4o", task="joke",
                            prompt="default", temperature=0.7, item="a", repeat=0, response="hello"))
    rebuilt = module("runner.comparison", str(folder), "--history", str(tmp_path / "history.sqlite"), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith("1 call from 1 job: "), rebuilt.stdout
