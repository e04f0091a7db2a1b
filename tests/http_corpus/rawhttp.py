"""Raw-socket HTTP/1.1 client and a module-wide server for the black-box HTTP suites.

Used by tests/test_http_blackbox.py and tests/test_http_limits.py. The client sends bytes exactly
as given and reads replies itself (http.client would refuse or repair what these tests need to
see): Content-Length, chunked and close-delimited bodies, and whether the server closed.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from conftest import RunningServer, serving

# Never wait longer than this for one reply: a test must fail, not hang.
REPLY_TIMEOUT = 8.0


@dataclass
class Reply:
    """One response as read off the wire."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool  # False when the connection closed before the framed body ended
    raw_head: bytes = field(repr=False, default=b"")

    def header(self, name: str) -> str | None:
        """The last value of a header (case-insensitive), or None."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found

    @property
    def closes(self) -> bool:
        """The reply announces that the server closes the connection."""
        return "close" in (self.header("Connection") or "").lower()


class RawClient:
    """One TCP connection to the server under test."""

    def __init__(self, server: RunningServer, timeout: float = REPLY_TIMEOUT) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        """Half-close: the server reads EOF, we can still read its answer."""
        self.sock.shutdown(socket.SHUT_WR)

    def _more(self) -> bool:
        """Read what the server sent next into buf; False at EOF (a reset counts as EOF)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self._more():
                return None
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_reply(self) -> Reply | None:
        """Read one response (skipping 1xx); None if the server closed before sending any byte."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._more():
                    if self.buf:
                        raise AssertionError(f"connection closed inside a head: {self.buf!r}")
                    return None
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
            headers = [tuple(part.strip() for part in ln.split(":", 1)) for ln in lines[1:]]
            if not status.startswith("1"):
                break
        reply = Reply(version, int(status), reason, headers, b"", True, head)  # type: ignore[arg-type]
        length = reply.header("Content-Length")
        if "chunked" in (reply.header("Transfer-Encoding") or "").lower():
            self._read_chunked(reply)
        elif length is not None:
            while len(self.buf) < int(length) and self._more():
                pass
            reply.body = self._take(int(length))
            reply.complete = len(reply.body) == int(length)
        elif reply.status not in (204, 304):
            while self._more():
                pass
            reply.body = self._take(len(self.buf))
        return reply

    def _read_chunked(self, reply: Reply) -> None:
        parts = []
        while True:
            line = self._line()
            if line is None:
                reply.complete = False
                break
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (trailer := self._line()) not in (None, b""):
                    pass
                reply.complete = trailer is not None
                break
            while len(self.buf) < size + 2 and self._more():
                pass
            parts.append(self._take(size))
            if self._take(2) != b"\r\n":
                reply.complete = False
                break
        reply.body = b"".join(parts)

    def wait_closed(self, timeout: float) -> float | None:
        """Seconds until the server closed the connection, or None if it stayed open."""
        start = time.monotonic()
        self.sock.settimeout(timeout)
        try:
            if self.buf or self._more():
                raise AssertionError(f"unexpected bytes after the reply: {self.buf!r}")
        except TimeoutError:
            return None
        finally:
            self.sock.settimeout(self.timeout)
        return time.monotonic() - start


def exchange(server: RunningServer, data: bytes, timeout: float = REPLY_TIMEOUT) -> Reply | None:
    """Send data on a new connection and read one reply."""
    with RawClient(server, timeout) as client:
        client.send(data)
        return client.read_reply()


module_server = serving  # a server for a whole test module (see conftest.serving)
