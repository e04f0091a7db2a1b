"""Process names that ps, htop, top and killall show (every process sets its own)."""

from __future__ import annotations

import ctypes
import ctypes.util

import setproctitle

_PR_SET_NAME = 15

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def set_process_title(title: str, short_name: str | None = None) -> None:
    """Set the full title (``ps -o args``) and the kernel's 15-byte name (``ps -o comm``, top)."""
    setproctitle.setproctitle(title)
    name = (short_name or title).encode("utf-8", "replace")[:15]
    if _libc is not None:
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
