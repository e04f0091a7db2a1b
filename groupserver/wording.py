"""Small helpers for the words in messages (every process)."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """'1 thread', '5 threads', '1 process', '3 processes', '1 request', '0 requests'."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"
