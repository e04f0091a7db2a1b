"""The access log: Apache combined format plus the group and the request time in µs (workers,
and the front for the requests it refuses); and the error log's set-up and reopening."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, BinaryIO

from groupserver.http.parser import RequestHead
from groupserver.http.response import error_body_size

log = logging.getLogger("groupserver.accesslog")


_STDOUT = 1  # the descriptor, whatever sys.stdout has become
FRONT = "-"  # the group column of the lines the front writes (no group answered them)
COMPLAINT_INTERVAL = 60.0  # seconds between two error lines while the access log cannot be written


class AccessLog:
    """One line per request, written by the worker that served it."""

    def __init__(self, target: str | None, group: str) -> None:
        self.target = target
        self.group = group
        # Unbuffered bytes, to a file or to stdout ("-") alike, so each line is one write(2)
        # appended whole, whichever worker writes it; a write that failed (a full disk) leaves
        # nothing behind to come out torn later; and no line waits in a buffer, to be lost when
        # the process leaves by os._exit (sys.stdout is block-buffered when it is a pipe or a
        # file, as under systemd or docker, unless PYTHONUNBUFFERED is set).
        self.stream: BinaryIO | None = None
        self.dropped = 0  # lines lost since writing last failed (a full disk, say)
        self.next_complaint = 0.0  # time.monotonic() when a failure is logged again
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
            if self.stream is None:
                try:
                    self.stream = open(_STDOUT, "ab", buffering=0, closefd=False)  # noqa: SIM115
                except OSError as exc:
                    log.error("access_log: cannot write to stdout: %s", exc.strerror or exc)
            return
        old = self.stream
        try:
            self.stream = open(self.target, "ab", buffering=0)  # noqa: SIM115
        except OSError as exc:
            log.error(
                "access_log: cannot open %s: %s; %s",
                self.target,
                exc.strerror or exc,
                "still writing to the file open before" if old else "no access log for now",
            )
            return
        if old is not None:
            old.close()

    def write(self, head: RequestHead, outcome: Any, seconds: float) -> None:
        """Write one line for a served request."""
        if self.stream is None:
            return
        remote, status, sent = outcome.remote_addr, outcome.status, outcome.sent
        self._write(remote, _request_line(head), status, sent, head.headers, seconds)

    def write_error(
        self, remote: str, request: RequestHead | bytes | bytearray, status: int, seconds: float
    ) -> None:
        """Write one line for an error response the server gave instead of an app: to a parsed
        request (a 404 for no route, a 503 at queue_timeout, a 504 at request_timeout), or to
        the bytes that came, whose request line shows as far as it came (400, 408, 414, 431,
        505)."""
        if self.stream is None:
            return
        if isinstance(request, RequestHead):
            line, headers = _request_line(request), request.headers
        else:
            line, headers = refused_request_line(request), []
        self._write(remote, line, status, error_body_size(status), headers, seconds)

    def _write(
        self,
        remote: str,
        request: str,
        status: int,
        sent: int,
        headers: list[tuple[str, str]],
        seconds: float,
    ) -> None:
        referer = user_agent = "-"
        for name, value in headers:
            lname = name.lower()
            if lname == "referer":
                referer = value
            elif lname == "user-agent":
                user_agent = value
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        line = (
            f'{remote or "-"} - - [{stamp}] "{request}" {status} {sent or "-"} '
            f'"{_quote(referer)}" "{_quote(user_agent)}" {self.group} {int(seconds * 1_000_000)}\n'
        )
        try:
            data = line.encode()
            written = self.stream.write(data) or 0
            while written < len(data):  # a pipe takes a long line in parts (or a signal cut in)
                data = data[written:]
                written = self.stream.write(data) or 0
        except (OSError, ValueError) as exc:
            self._lost(exc)
            return
        if self.dropped:
            log.warning(
                "access_log: writing to %s again (lines lost: %d)", self.target, self.dropped
            )
            self.dropped = 0

    def _lost(self, exc: Exception) -> None:
        """Count a line that could not be written; say so at once, then once a minute."""
        self.dropped += 1
        now = time.monotonic()
        if now < self.next_complaint:
            return
        self.next_complaint = now + COMPLAINT_INTERVAL
        reason = getattr(exc, "strerror", None) or exc
        log.error(
            "access_log: cannot write to %s: %s; %s keeps serving (lines lost so far: %d)",
            self.target,
            reason,
            "the front" if self.group == FRONT else "the worker",
            self.dropped,
        )


_REQUEST_LINE_SHOWN = 1000  # bytes of a refused request line the access log shows at most
_PRINTABLE = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}


def refused_request_line(data: bytes | bytearray) -> str:
    """The request line of a refused head as far as it came, safe to log: bytes other than
    printable ASCII (and '"', '\\') as \\xNN, as Apache writes them, cut at 1,000 bytes
    ("..." after it); "-" when no byte came."""
    line = bytes(data[: _REQUEST_LINE_SHOWN + 1]).split(b"\n", 1)[0].removesuffix(b"\r")
    if not line:
        return "-"
    cut = len(line) > _REQUEST_LINE_SHOWN
    text = "".join(chr(b) if b in _PRINTABLE else f"\\x{b:02x}" for b in line[:_REQUEST_LINE_SHOWN])
    return text + "..." if cut else text


def _request_line(head: RequestHead) -> str:
    return f"{head.method} {head.target} {head.version}"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


ERROR_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"


def flush_standard_streams() -> None:
    """Flush what was printed to sys.stdout and sys.stderr (by the app, say) before the process
    leaves by os._exit, which does not."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


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
