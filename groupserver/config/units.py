"""Byte sizes as written in site.yaml ("256K", "1M", "1G", 262144), parsed once by the master.

Units are binary and case-insensitive: K = 1024, M = 1024**2, G = 1024**3, T = 1024**4; an
optional trailing "B" or "iB" is accepted ("512kb", "1MiB"). A plain integer is a byte count.
"""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_size"]

_MULTIPLIERS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

# Digits with an optional fraction ("1.5M"), then an optional unit and "B"/"iB".
_SIZE_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(i?b)?|(b))?", re.IGNORECASE)

SIZE_HINT = "must be a size such as 262144, '256K', '1M' or '1G'"


def parse_size(value: int | str) -> int:
    """Return the number of bytes `value` names; raise ValueError when it is not a size."""
    if isinstance(value, bool):
        raise ValueError(SIZE_HINT)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if not isinstance(value, str):
        raise ValueError(SIZE_HINT)
    match = _SIZE_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(SIZE_HINT)
    number, unit, _suffix, _bytes = match.groups()
    multiplier = _MULTIPLIERS[(unit or "").lower()]
    if "." in number:
        return int(float(number) * multiplier)
    return int(number) * multiplier


def format_size(n: int) -> str:
    """Return `n` bytes in the shortest exact unit form ("256K", "1M", "1000")."""
    for suffix, multiplier in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n and n % multiplier == 0:
            return f"{n // multiplier}{suffix}"
    return str(n)


class DocType:
    """Annotation marker: how docs/configuration.md names a field's type."""

    def __init__(self, text: str) -> None:
        self.text = text
