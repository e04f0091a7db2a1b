"""The WSGI side of a request: environ, wsgi.input, start_response/write, file_wrapper (workers).

Everything here runs in a worker's request thread. It turns one parsed request head into a call of
the application and writes the response to the client socket, framing it by Content-Length,
chunked coding, or connection close (RFC 9112 §6.3), and reports whether the connection may be
kept alive.
"""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from groupserver.http.body import ChunkedDecoder
from groupserver.http.parser import HttpError, RequestHead
from groupserver.http.response import error_body_size, error_response
from groupserver.routing import RouteMatch

log = logging.getLogger("groupserver.worker")

_RECV = 65536
# Body bytes a server reads and throws away after the app ignored them, to keep the connection.
_DRAIN_LIMIT = 256 * 1024
_BAD_RESPONSE_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A final status: no 1xx (WSGI has no interim responses; a client would wait for the final one
# for ever), no CR, LF or other control characters (response splitting).
_STATUS = re.compile(r"[2-9][0-9][0-9] [^\x00-\x08\x0a-\x1f\x7f]*")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ClientDisconnected(ConnectionError):
    """The client closed the connection before the request body was complete."""


class Connection:
    """A client connection owned by one worker, with the bytes read but not yet consumed."""

    __slots__ = (
        "sock",
        "buf",
        "base_environ",
        "requests",
        "last_active",
        "queue_start_us",
        "peer",
        "local",
        "proxies",
        "pending",
        "filled",
    )

    def __init__(
        self,
        sock: socket.socket,
        data: bytes,
        base_environ: dict[str, Any],
        peer: tuple[str, int] | None = None,
        proxies: Any = None,
        local: tuple[str, int] | None = None,
    ) -> None:
        self.sock = sock
        self.buf = bytearray(data)
        self.base_environ = base_environ
        self.requests = 0
        self.last_active = time.monotonic()
        self.queue_start_us = 0
        self.peer = peer  # the client, as the front saw it (accept or a PROXY header)
        self.local = local  # the listener's address
        self.proxies = proxies  # TrustedProxies when the peer may set forwarding headers
        self.pending = False  # the worker's poller saw bytes arrive while a thread had it
        self.filled = False  # its last read filled the buffer: more may be waiting

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self.sock.fileno()

    def close(self) -> None:
        """Close the socket, ignoring errors (the peer may be gone)."""
        try:
            self.sock.close()
        except OSError:
            pass


def base_environ_for(
    sock: socket.socket,
    constants: dict[str, Any],
    peer: tuple[str, int] | None = None,
    local: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """The per-connection part of the environ: server and peer addresses plus group constants.

    Addresses the sender passed along are used as they are; only missing ones cost a syscall.
    """
    env = dict(constants)
    try:
        if local is None:
            local = sock.getsockname()
        if peer is None:
            peer = sock.getpeername()
    except OSError:
        pass
    if isinstance(local, tuple):
        env["SERVER_NAME"] = local[0]
        env["SERVER_PORT"] = str(local[1])
    else:  # a unix socket
        env["SERVER_NAME"] = "localhost"
        env["SERVER_PORT"] = ""
    if isinstance(peer, tuple):
        env["REMOTE_ADDR"] = peer[0]
        env["REMOTE_PORT"] = str(peer[1])
    else:
        env["REMOTE_ADDR"] = ""
        env["REMOTE_PORT"] = ""
    return env


class InputStream:
    """wsgi.input: the request body, de-chunked, that never reads past the end of the request.

    A plain class rather than an io.RawIOBase: creating io objects costs microseconds per request
    and PEP 3333 asks only for read, readline, readlines and iteration.
    """

    __slots__ = ("_conn", "_remaining", "_decoder", "_pending", "_continue_due", "response_started")

    def __init__(
        self,
        conn: Connection,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
        max_body: int | None,
    ) -> None:
        self._conn = conn
        self._remaining = content_length or 0
        self._decoder = ChunkedDecoder(max_body) if chunked else None
        self._pending = bytearray()
        self._continue_due = expect_continue
        self.response_started = False
        if max_body is not None and content_length is not None and content_length > max_body:
            raise HttpError(413, "body too large")

    @property
    def complete(self) -> bool:
        """Whether the whole body has been read off the connection."""
        if self._decoder is not None:
            return self._decoder.done
        return self._remaining == 0

    @property
    def continue_pending(self) -> bool:
        """The client asked for 100-continue and has not been told to send the body yet."""
        return self._continue_due and not self.complete

    def _recv(self) -> bytes:
        conn = self._conn
        if conn.buf:
            data = bytes(conn.buf)
            conn.buf.clear()
            return data
        if self._continue_due:
            self._continue_due = False
            if not self.response_started:
                conn.sock.sendall(_CONTINUE)
        try:
            data = conn.sock.recv(_RECV)
        except BlockingIOError:  # SO_RCVTIMEO: the body paused longer than body_timeout
            raise HttpError(408, "request body timeout") from None
        if not data:
            raise ClientDisconnected("client closed the connection during the request body")
        conn.filled = len(data) == _RECV  # the worker's poller: see WorkerServer._park
        return data

    def _fill(self) -> bool:
        """Move at least one more byte of payload into _pending; False at the end of the body."""
        if self._decoder is None:
            if self._remaining <= 0:
                return False
            data = self._recv()
            if len(data) > self._remaining:
                self._conn.buf[:0] = data[self._remaining :]
                data = data[: self._remaining]
            self._remaining -= len(data)
            self._pending += data
            return True
        decoder = self._decoder
        while not decoder.done:
            payload = decoder.feed(self._recv())
            if decoder.done and decoder.unused:
                self._conn.buf[:0] = decoder.unused
            if payload:
                self._pending += payload
                return True
        return False

    def readable(self) -> bool:
        """Always true (file-like protocol)."""
        return True

    def close(self) -> None:
        """Nothing to release: the connection belongs to the server."""

    def read(self, size: int | None = -1) -> bytes:
        """Read up to size bytes of the body (all of it when size is None or negative)."""
        if size is None or size < 0:
            while self._fill():
                pass
            data = bytes(self._pending)
            self._pending.clear()
            return data
        while len(self._pending) < size and self._fill():
            if self._pending:
                break
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to size bytes) of the body."""
        limit = -1 if size is None else size
        while True:
            end = self._pending.find(b"\n")
            if end >= 0:
                cut = end + 1
                break
            if 0 <= limit <= len(self._pending) or not self._fill():
                cut = len(self._pending)
                break
        if 0 <= limit < cut:
            cut = limit
        data = bytes(self._pending[:cut])
        del self._pending[:cut]
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read the remaining lines."""
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self):  # noqa: D105
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self, limit: int = _DRAIN_LIMIT) -> bool:
        """Discard what the app left unread; False when the connection must close instead."""
        if self.complete:
            return True
        if self._continue_due:
            return False  # the client is still waiting for our go-ahead; don't invite the body
        discarded = len(self._pending)
        self._pending.clear()
        try:
            while discarded <= limit:
                if not self._fill():
                    return True
                discarded += len(self._pending)
                self._pending.clear()
        except (HttpError, OSError):
            # A malformed or oversized body, body_timeout, or the client gone: the response is
            # out already, so all that is left to do is to close the connection.
            pass
        return False


class EmptyInput:
    """wsgi.input of a request without a body: one shared, stateless instance (NO_BODY)."""

    __slots__ = ()

    def readable(self) -> bool:
        """Always true (file-like protocol)."""
        return True

    def close(self) -> None:
        """Nothing to release."""

    def read(self, size: int | None = -1) -> bytes:
        """Always b"" (no body)."""
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        """Always b"" (no body)."""
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Always [] (no body)."""
        return []

    def __iter__(self):  # noqa: D105
        return iter(())

    def drain(self, limit: int = _DRAIN_LIMIT) -> bool:
        """Nothing to discard: the connection stays usable."""
        return True


NO_BODY = EmptyInput()


class FileWrapper:
    """wsgi.file_wrapper: lets the server send a real file with os.sendfile."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):  # noqa: D105
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def sendfile_source(self) -> tuple[int, int, int] | None:
        """(fd, offset, size) when the file can go through os.sendfile, else None."""
        try:
            fd = self.filelike.fileno()
            st = os.fstat(fd)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        if not os.path.stat.S_ISREG(st.st_mode):
            return None
        try:
            offset = self.filelike.tell()
        except (AttributeError, OSError):
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        return fd, offset, max(0, st.st_size - offset)


_date_cache: list[Any] = [0, b""]


def http_date() -> bytes:
    """The Date header line, rebuilt at most once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        stamp = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))
        _date_cache[1] = ("Date: " + stamp + "\r\n").encode("ascii")
    return _date_cache[1]


class ResponseError(Exception):
    """The application produced an invalid status, header or body chunk (a 500 if nothing was
    sent yet, else the connection closes)."""


_BODY_TYPES = (bytes, bytearray, memoryview)


def _not_bytes(data: object) -> ResponseError:
    return ResponseError(f"a body chunk from the application is {type(data).__name__}, not bytes")


# Response header lines already checked and encoded, by (name, value): apps send the same few
# headers again and again, so each is validated once (bounded, for apps with varying values).
_PLAIN, _LENGTH, _CLOSE, _HOP, _DATE = object(), object(), object(), object(), object()
_NO_BODY_CODES = frozenset({204, 304})  # a response that ends at its head (RFC 9110 6.4.1)
_HEADER_LINES: dict[tuple[str, str], tuple[object, bytes]] = {}
_STATUS_LINES: dict[tuple[str, str], bytes] = {}
_CACHE_LIMIT = 4096


def _remember(cache: dict, key: object, text: str, shown: object) -> bytes:
    try:
        line = text.encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseError(f"not latin-1: {shown!r}") from None
    if len(cache) < _CACHE_LIMIT:
        cache[key] = line
    return line


def _check_header(item: object) -> tuple[object, bytes]:
    """Validate one response header (against response splitting) and encode its line."""
    try:
        name, value = item  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ResponseError(f"response header is not a pair: {item!r}") from None
    if not isinstance(name, str) or not isinstance(value, str):
        raise ResponseError(f"response header is not a pair of str: {item!r}")
    if not _TOKEN.fullmatch(name) or _BAD_RESPONSE_TEXT.search(value):
        raise ResponseError(f"invalid response header from the application: {item!r}")
    lname = name.lower()
    kind = _PLAIN
    if lname == "content-length":
        if not value.isdigit():
            raise ResponseError(f"invalid Content-Length: {value!r}")
        kind = _LENGTH
    elif lname == "connection":
        kind = _CLOSE if "close" in value.lower() else _HOP
    elif lname in ("transfer-encoding", "keep-alive"):
        kind = _HOP
    elif lname == "date":
        kind = _DATE  # the app's own: ours is not added (Date is a single field)
    try:
        line = f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseError(f"response header is not latin-1: {item!r}") from None
    known = (kind, line)
    if len(_HEADER_LINES) < _CACHE_LIMIT and type(item) is tuple:
        _HEADER_LINES[item] = known  # type: ignore[index]
    return known


def _status_problem(status: object) -> str:
    """Why start_response refused a status (a 1xx, else an invalid status line)."""
    if isinstance(status, str) and status[:1] == "1" and _STATUS.fullmatch("2" + status[1:]):
        return f"a 1xx status is not a final response: {status!r}"
    return f"invalid status line from the application: {status!r}"


class Response:
    """start_response, write() and the framing of one response on one connection."""

    __slots__ = (
        "conn",
        "version",
        "head_only",
        "status",
        "headers",
        "head_sent",
        "chunked",
        "length",
        "sent",
        "keep_alive",
        "input",
        "status_code",
        "head",
    )

    def __init__(self, conn: Connection, head: RequestHead, body: InputStream | None) -> None:
        self.conn = conn
        self.version = head.version
        self.head_only = head.method == "HEAD"
        self.keep_alive = head.keep_alive
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.chunked = False
        self.length: int | None = None
        self.sent = 0
        self.input = body
        self.status_code = 0
        self.head = head  # named in a warning when the body does not match its Content-Length

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 start_response."""
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        if not isinstance(status, str) or not _STATUS.fullmatch(status):
            raise ResponseError(_status_problem(status))
        self.status = status
        self.status_code = int(status[:3])
        self.headers = headers
        return self.write

    def _head_bytes(self, body_len: int | None) -> bytes:
        """Build the response head; body_len is the whole body's size when already known."""
        status = self.status
        if status is None:
            raise ResponseError("the application returned without calling start_response")
        status_line = _STATUS_LINES.get((self.version, status))
        if status_line is None:
            status_line = _remember(
                _STATUS_LINES, (self.version, status), f"{self.version} {status}\r\n", status
            )
        lines = [status_line, http_date()]  # an app's own Date takes the place of ours
        self.length = None
        for item in self.headers:
            try:
                known = _HEADER_LINES.get(item)
            except TypeError:  # an unhashable header item (a list): checked below
                known = None
            if known is None:
                known = _check_header(item)
            kind, line = known
            if kind is _PLAIN:
                lines.append(line)
            elif kind is _LENGTH:
                if self.length is None:
                    self.length = int(item[1])
                    lines.append(line)
                else:
                    self._repeated_length(int(item[1]))
            elif kind is _CLOSE:
                self.keep_alive = False
            elif kind is _DATE:
                lines[1] = line
            # _HOP: Connection without close, Transfer-Encoding, Keep-Alive are ours (PEP 3333)
        if self.status_code in _NO_BODY_CODES:
            self._without_body(lines, self.status_code)
        elif self.length is None:
            if body_len is not None:
                self.length = body_len
                lines.append(b"Content-Length: %d\r\n" % body_len)
            elif self.version == "HTTP/1.1":
                self.chunked = not self.head_only
                if self.chunked:
                    lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False
        if self.input is not None and not self.input.complete and self.input.continue_pending:
            self.keep_alive = False  # the body we never asked for may still arrive
        if not self.keep_alive:
            lines.append(b"Connection: close\r\n")
        elif self.version == "HTTP/1.0":
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _repeated_length(self, length: int) -> None:
        """A second Content-Length: the same value is sent once, another one is refused (a
        client or proxy could frame the response either way)."""
        if length != self.length:
            raise ResponseError(f"conflicting Content-Length headers: {self.length} and {length}")

    def _without_body(self, lines: list[bytes], code: int) -> None:
        """A 204 or 304 ends at its head (RFC 9110 6.4.1): a body the app gives is dropped.

        Sent on a kept-alive connection, those bytes would be read as the next response. A 304
        keeps the app's Content-Length (the size of what a 200 would have sent); a 204 must not
        have one (RFC 9110 8.6).
        """
        self.head_only = True
        self.length = None
        if code == 204:
            lines[1:] = [line for line in lines[1:] if line[:15].lower() != b"content-length:"]

    def _mark_head_sent(self) -> None:
        self.head_sent = True
        if self.input is not None:
            self.input.response_started = True

    def write(self, data: bytes) -> None:
        """The write() callable and the path of every body chunk."""
        if type(data) is not bytes and not isinstance(data, _BODY_TYPES):
            raise _not_bytes(data)  # before the head goes out: the client gets a clean 500
        if not self.head_sent:
            head = self._head_bytes(None)
            self._mark_head_sent()
            if self.head_only:
                self.conn.sock.sendall(head)
                return
            if self.chunked:
                if data:
                    self.sent += len(data)
                    self.conn.sock.sendall(b"%s%x\r\n%s\r\n" % (head, len(data), data))
                else:
                    self.conn.sock.sendall(head)
            else:
                self._send_framed(data, head)
            return
        if self.head_only or not data:
            return
        if self.chunked:
            self.sent += len(data)
            self.conn.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._send_framed(data, b"")

    def _send_framed(self, data: bytes, head: bytes) -> None:
        if self.length is not None:
            room = self.length - self.sent
            if len(data) > room:
                data = data[:room]  # never send more than we promised
                self.keep_alive = False
                self.head_only = True  # as for a 204: no more of the body goes out
                log.warning(
                    "%s %s: the application sent more than the %d bytes its Content-Length "
                    "announced; the rest was dropped and the connection closed",
                    self.head.method,
                    self.head.target,
                    self.length,
                )
        self.sent += len(data)
        self.conn.sock.sendall(head + data if head else data)

    def send_single(self, data: bytes) -> None:
        """Send a whole response whose body is this one chunk (the common case): one syscall."""
        if type(data) is not bytes and not isinstance(data, _BODY_TYPES):
            raise _not_bytes(data)
        head = self._head_bytes(len(data))
        self._mark_head_sent()
        if self.head_only:
            self.conn.sock.sendall(head)
            return
        if self.length is not None and self.length != len(data):
            self._send_framed(data, head)
            return
        self.sent = len(data)
        self.conn.sock.sendall(head + data)

    def send_file(self, wrapper: FileWrapper) -> bool:
        """Send a file with os.sendfile; False when it can't (the caller iterates instead)."""
        source = wrapper.sendfile_source()
        if source is None or self.chunked:
            return False
        fd, offset, size = source
        if not self.head_sent:
            head = self._head_bytes(size)
            self._mark_head_sent()
            self.conn.sock.sendall(head)
        if self.head_only:
            return True
        if self.length is not None:
            size = min(size, self.length - self.sent)
        sock = self.conn.sock
        while size > 0:
            try:
                n = sock.sendfile(_FileRange(fd), offset, size)
            except (BlockingIOError, InterruptedError):
                continue
            if n == 0:
                break
            offset += n
            size -= n
            self.sent += n
        return True

    def finish(self) -> None:
        """End the response (send the head if nothing was written, the last chunk if chunked)."""
        if not self.head_sent:
            self.send_single(b"")
            return
        if self.chunked and not self.head_only:
            self.conn.sock.sendall(b"0\r\n\r\n")
        elif self.length is not None and self.sent < self.length and not self.head_only:
            self.keep_alive = False  # promised more than the app gave: the client must see a close
            log.warning(
                "%s %s: the application sent %d of the %d bytes its Content-Length announced; "
                "the connection was closed, so the client sees the response cut short",
                self.head.method,
                self.head.target,
                self.sent,
                self.length,
            )


class _FileRange:
    """The minimal file object socket.sendfile needs, over a raw fd."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


@dataclass(slots=True)
class RequestOutcome:
    """What happened to one request, for the access log and the keep-alive decision."""

    status: int
    sent: int
    keep_alive: bool
    remote_addr: str  # REMOTE_ADDR as the app got it (a trusted proxy's X-Forwarded-For applied)


def build_environ(
    conn: Connection,
    head: RequestHead,
    route: RouteMatch,
    body: InputStream | EmptyInput,
    header_keys: dict[str, str],
) -> dict[str, Any]:
    """The WSGI environ for one request (the per-connection part is copied, not rebuilt)."""
    env = conn.base_environ.copy()
    env["REQUEST_METHOD"] = head.method
    env["SCRIPT_NAME"] = route.script_name
    env["PATH_INFO"] = route.path_info
    env["QUERY_STRING"] = head.query
    env["RAW_URI"] = env["REQUEST_URI"] = head.target
    env["SERVER_PROTOCOL"] = head.version
    env["wsgi.input"] = body
    env["groupserver.route"] = route.name
    env["groupserver.queue_start"] = conn.queue_start_us
    for name, value in head.headers:
        key = header_keys.get(name)
        if key is None:
            key = _environ_key(name)
            if len(header_keys) < 2048:
                header_keys[name] = key
        if not key:
            continue
        if key in env and key.startswith("HTTP_"):
            env[key] += "," + value
        else:
            env[key] = value
    env.pop("HTTP_CONTENT_LENGTH", None)
    env.pop("HTTP_CONTENT_TYPE", None)
    if head.target[0] != "/" and head.host is not None:
        env["HTTP_HOST"] = head.host  # absolute-form: the target's authority wins (RFC 9112 3.2.2)
    if conn.proxies is not None and (
        "HTTP_X_FORWARDED_FOR" in env or "HTTP_X_FORWARDED_PROTO" in env or "HTTP_FORWARDED" in env
    ):
        conn.proxies.apply(env)
    if route.environ:
        env.update(route.environ)
    return env


def client_address(conn: Connection, head: RequestHead) -> str:
    """REMOTE_ADDR as build_environ would give the app (a trusted proxy's headers applied), for
    a request the worker answers itself (not a per-request path: the env is built for it)."""
    remote: str = conn.base_environ["REMOTE_ADDR"]
    if conn.proxies is None:
        return remote
    return conn.proxies.client_address(remote, head.headers)


def _environ_key(name: str) -> str:
    if "_" in name:
        # X_Forwarded_For and X-Forwarded-For would both become HTTP_X_FORWARDED_FOR: a client
        # could spoof a header a proxy set. Drop the underscore spelling (as gunicorn does).
        return ""
    upper = name.upper().replace("-", "_")
    if upper in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return upper
    return "HTTP_" + upper


def run_app(
    app: Callable[..., Iterable[bytes]],
    conn: Connection,
    head: RequestHead,
    route: RouteMatch,
    header_keys: dict[str, str],
    max_body: int | None,
    record: Any = None,
) -> RequestOutcome:
    """Call the application for one request and write its response; never raises for app errors.

    ``record`` (optional) gets the Response as ``record.response`` so a watchdog can see whether
    anything was sent yet.
    """
    body: InputStream | EmptyInput
    if head.chunked or head.content_length:
        try:
            body = InputStream(
                conn, head.content_length, head.chunked, head.expect_continue, max_body
            )
        except HttpError as exc:  # Content-Length over the limit: refuse before the app runs
            try:
                conn.sock.sendall(error_response(exc.status))
            except OSError:
                pass
            return RequestOutcome(
                exc.status, error_body_size(exc.status), False, client_address(conn, head)
            )
    else:
        body = NO_BODY
    env = build_environ(conn, head, route, body, header_keys)
    remote = env["REMOTE_ADDR"]
    if head.content_length is not None:
        env["CONTENT_LENGTH"] = str(head.content_length)
    response = Response(conn, head, None if body is NO_BODY else body)
    if record is not None:
        record.response = response
    result = None
    try:
        result = app(env, response.start_response)
        if isinstance(result, FileWrapper) and response.status is not None:
            if not response.send_file(result):
                for chunk in result:
                    response.write(chunk)
        elif type(result) is list and len(result) == 1 and not response.head_sent:
            response.send_single(result[0])
        else:
            for chunk in result:
                if chunk:
                    response.write(chunk)
        response.finish()
    except (ConnectionError, TimeoutError, BlockingIOError) as exc:
        if isinstance(exc, ConnectionError):
            log.debug("client went away during %s %s: %r", head.method, head.target, exc)
        else:  # SO_SNDTIMEO / SO_RCVTIMEO ran out: our decision, which a slow-client attack shows
            log.info(
                "dropped a client that stopped reading or sending for write_timeout or "
                "body_timeout, during %s %s",
                head.method,
                head.target,
            )
        return RequestOutcome(response.status_code or 499, response.sent, False, remote)
    except HttpError as exc:
        # raised from wsgi.input: a malformed or oversized body
        return _fail(conn, response, exc.status, head, None, remote)
    except BaseException as exc:
        # The application's own failure. SystemExit and KeyboardInterrupt too: raised in a
        # request thread they would end that thread, and the worker would stop serving.
        return _fail(conn, response, 500, head, exc, remote)
    finally:
        if result is not None and hasattr(result, "close"):
            try:
                result.close()
            except Exception:
                log.exception("close() of the response iterable failed for %s", head.target)
    keep = response.keep_alive and body.drain()
    return RequestOutcome(response.status_code, response.sent, keep, remote)


def _fail(
    conn: Connection,
    response: Response,
    status: int,
    head: RequestHead,
    exc: BaseException | None,
    remote: str,
) -> RequestOutcome:
    if exc is not None:
        log.error(
            "error in the application for %s %s",
            head.method,
            head.target,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    if not response.head_sent:
        try:
            conn.sock.sendall(error_response(status))
        except OSError:
            pass
        return RequestOutcome(status, error_body_size(status), False, remote)
    return RequestOutcome(response.status_code, response.sent, False, remote)


__all__ = [
    "NO_BODY",
    "ClientDisconnected",
    "Connection",
    "EmptyInput",
    "FileWrapper",
    "InputStream",
    "RequestOutcome",
    "Response",
    "base_environ_for",
    "build_environ",
    "run_app",
]
