"""Counted nouns in what the runner says: '1 call', '2 calls'."""
from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None, thousands: bool = False) -> str:
    """'1 call', '0 calls', '2 batches' (with plural='batches'); '1,000 calls' with thousands=True."""
    shown = f"{number:,}" if thousands else str(number)
    return f"{shown} {noun if number == 1 else plural or noun + 's'}"
