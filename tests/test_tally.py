"""A job's running tally, as its last log line and the progress line say it: counts and what was spent."""
from __future__ import annotations

from runner.calling.engine import Tally
from runner.records import Record


def record(status: str = "ok", spent: float | None = 0.0, cache_hit: bool = False) -> Record:
    return Record(run_id="r", model="m", provider="openai", model_id="x", task="t", prompt="p", temperature=0.0,
                  item="0", repeat=0, status=status, spent_usd=spent, cache_hit=cache_hit)


def test_counts_and_dollars_spent():
    tally = Tally()
    for r in (record(spent=0.0123), record(spent=0.001, cache_hit=True), record("error", 0.0),
              record("skipped", None)):
        tally.add(r)
    assert (tally.calls, tally.ok, tally.error, tally.skipped, tally.cache_hits, tally.unpriced) == (4, 2, 1, 1, 1, 0)
    assert tally.spent() == "$0.0133 spent"
    assert tally.spent(2) == "$0.0133 spent"  # below ten cents, places enough for three significant digits


def test_calls_with_no_known_price_are_named_not_counted_as_free():
    tally = Tally()
    tally.add(record(spent=None))
    assert tally.spent() == "n/a spent (no known price)"
    tally.add(record(spent=0.5))
    assert tally.unpriced == 1 and tally.spent() == "$0.5000 spent + 1 call at no known price"
    tally.add(record(spent=None))
    assert tally.spent() == "$0.5000 spent + 2 calls at no known price"
    tally.add(record("skipped", None))  # a skipped call went to no model: it paid nothing, priced or not
    assert tally.unpriced == 2
    tally.add(record("error", None))  # a failed call of that model may have been billed: unknown, not $0
    assert tally.unpriced == 3 and tally.spent() == "$0.5000 spent + 3 calls at no known price"


def test_a_model_with_no_known_price_whose_every_call_failed_spent_an_unknown_amount_not_0():
    tally = Tally()
    for _ in range(3):
        tally.add(record("error", None))
    assert tally.spent() == "n/a spent (no known price)"
