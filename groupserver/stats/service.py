"""Small request/response services inside the master's event loop: stats HTTP and control.

The master is single-threaded (it forks), so these never block: every socket is non-blocking,
requests are small, a connection gets two seconds to send its request, and answers are written
as the socket accepts them.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from groupserver.http.parser import HttpError, Limits, RequestHead, parse_head
from groupserver.http.response import error_response

log = logging.getLogger("groupserver.master")
_LIMITS = Limits(max_request_line=4096, max_header_count=50, max_head_size=16384)
_DEADLINE = 2.0


@dataclass
class _Client:
    sock: socket.socket
    started: float
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytes = b""


class SmallService:
    """Accept connections, read one request, answer it, close."""

    def __init__(
        self,
        listener: socket.socket,
        poller: select.epoll,
        answer: Callable[[bytes], bytes | None],
    ) -> None:
        """answer(request_bytes) returns the whole reply, or None while the request is partial."""
        self.listener = listener
        self.poller = poller
        self.answer = answer
        self.clients: dict[int, _Client] = {}
        listener.setblocking(False)
        poller.register(listener.fileno(), select.EPOLLIN)

    def owns(self, fd: int) -> bool:
        """Whether fd belongs to this service."""
        return fd == self.listener.fileno() or fd in self.clients

    def on_event(self, fd: int) -> None:
        """Handle readiness of one of our descriptors."""
        if fd == self.listener.fileno():
            self._accept()
            return
        client = self.clients.get(fd)
        if client is None:
            return
        if client.out:
            self._write(client)
        else:
            self._read(client)

    def sweep(self, now: float) -> None:
        """Drop clients that took too long."""
        for client in [c for c in self.clients.values() if now - c.started > _DEADLINE * 5]:
            self._drop(client)
        for client in [c for c in self.clients.values() if not c.out]:
            if now - client.started > _DEADLINE:
                self._drop(client)

    def close(self) -> None:
        """Stop serving (the master is exiting)."""
        for client in list(self.clients.values()):
            self._drop(client)
        try:
            self.poller.unregister(self.listener.fileno())
        except OSError:
            pass

    def _accept(self) -> None:
        for _ in range(32):
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            client = _Client(sock, time.monotonic())
            self.clients[sock.fileno()] = client
            self.poller.register(sock.fileno(), select.EPOLLIN)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(16384)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.inbuf += data
        if len(client.inbuf) > 65536:
            self._drop(client)
            return
        try:
            reply = self.answer(bytes(client.inbuf))
        except Exception:  # a bug here must never take the master down
            log.exception("error answering a stats/control request")
            reply = error_response(500)
        if reply is None:
            return
        client.out = reply
        self.poller.modify(client.sock.fileno(), select.EPOLLOUT)
        self._write(client)

    def _write(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        client.out = client.out[sent:]
        if not client.out:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        self.clients.pop(fd, None)
        try:
            self.poller.unregister(fd)
        except OSError:
            pass
        client.sock.close()


def http_answer(
    route: Callable[[RequestHead], tuple[int, str, bytes]],
) -> Callable[[bytes], bytes | None]:
    """Wrap route(head) -> (status, content_type, body) as a SmallService answer for HTTP GETs."""

    def answer(data: bytes) -> bytes | None:
        try:
            parsed = parse_head(data, _LIMITS)
        except HttpError as exc:
            return error_response(exc.status)
        if parsed is None:
            return None
        head = parsed[0]
        if head.method not in ("GET", "HEAD"):
            return error_response(405, extra_headers=(("Allow", "GET, HEAD"),))
        status, content_type, body = route(head)
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "OK")
        head_bytes = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        return head_bytes + (b"" if head.method == "HEAD" else body)

    return answer


def line_answer(handle: Callable[[str], str]) -> Callable[[bytes], bytes | None]:
    """Wrap handle(line) -> reply line as a SmallService answer for a one-line protocol."""

    def answer(data: bytes) -> bytes | None:
        if b"\n" not in data:
            return None
        line = data.split(b"\n", 1)[0].decode("utf-8", "replace")
        return (handle(line) + "\n").encode("utf-8")

    return answer
