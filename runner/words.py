"""Counted nouns in what the runner says: '1 call', '2 calls'."""
from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """'1 call', '0 calls', '2 batches' (with plural='batches')."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
