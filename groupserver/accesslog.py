"""The access log: Apache combined format plus the group and the request time in µs (workers);
and the error log's set-up and reopening."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from groupserver.http.parser import RequestHead

log = logging.getLogger("groupserver.accesslog")


class AccessLog:
    """One line per request, written by the worker that served it."""

    def __init__(self, target: str | None, group: str) -> None:
        self.target = target
        self.group = group
        self.stream: TextIO | None = None
        self.reopen()

    @classmethod
    def open(cls, target: str | None, group: str) -> AccessLog:
        """An access log writing to target ("-" for stdout, a path, or None for no log)."""
        return cls(target, group)

    @property
    def enabled(self) -> bool:
        """Whether lines are written at all."""
        return self.stream is not None

    def reopen(self) -> None:
        """Reopen the file (after logrotate moved it; USR1).

        A file that cannot be opened (its directory gone, no permission) never stops the
        worker: it logs why and keeps writing to the file it had, if any; the next USR1 tries
        again.
        """
        if self.target is None:
            return
        if self.target == "-":
            self.stream = sys.stdout
            return
        old = self.stream
        try:
            self.stream = open(self.target, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            log.error(
                "access_log: cannot open %s: %s; %s",
                self.target,
                exc.strerror or exc,
                "still writing to the file open before" if old else "no access log for now",
            )
            return
        if old is not None and old is not sys.stdout:
            old.close()

    def write(self, head: RequestHead, outcome: Any, seconds: float) -> None:
        """Write one line for a served request."""
        if self.stream is None:
            return
        referer = user_agent = "-"
        for name, value in head.headers:
            lname = name.lower()
            if lname == "referer":
                referer = value
            elif lname == "user-agent":
                user_agent = value
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        line = (
            f"{outcome.remote_addr or '-'} - - [{stamp}] "
            f'"{head.method} {head.target} {head.version}" {outcome.status} '
            f'{outcome.sent or "-"} "{_quote(referer)}" "{_quote(user_agent)}" '
            f"{self.group} {int(seconds * 1_000_000)}\n"
        )
        try:
            self.stream.write(line)
        except (OSError, ValueError):
            pass


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


ERROR_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"


def setup_error_log(path: str | None, level: str) -> None:
    """Send every process's log records to path (None: stderr) from level up (at start-up, and
    on a reload that changes error_log or log_level: processes forked later inherit it)."""
    if path:
        handler: logging.Handler = logging.FileHandler(path, delay=True)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(ERROR_LOG_FORMAT))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def reopen_error_logs() -> None:
    """Close the error log's file handlers; logging reopens them on the next record (USR1)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.close()
