"""Sans-I/O request body framing for the chunked transfer coding (RFC 9112 section 7.1).

Public API:
    ChunkedDecoder(max_body=None)
        feed(data) -> bytes   decoded payload available so far (may be b""); raises HttpError(400)
                              on malformed framing and HttpError(413) as soon as a chunk-size line
                              announces more payload than max_body allows in total
        done: bool            the last chunk, the trailers and the final CRLF have been consumed
        unused: bytes         bytes fed after the end of the body (the next pipelined request)

A Content-Length body needs no decoder: the caller reads exactly that many bytes.

Strictness: chunk-size is 1 to 16 hex digits with nothing before it; chunk extensions
(`;name[=token|"quoted"]`, optional whitespace around ";" and "=") are validated and dropped;
chunk data must be followed by exactly CRLF; every line must end in CRLF (a bare LF or CR is a
400); trailer lines must be valid field lines, at most 100 of them, 8 KiB each and 64 KiB in
total. A size line longer than 1 KiB is a 400, so buffering stays bounded whatever the peer
sends. Once a feed has raised, the decoder is spent and every further feed raises a 400.
"""

from __future__ import annotations

import re

from groupserver.http.parser import HttpError

__all__ = ["ChunkedDecoder"]

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
_EXTENSION = (
    rb"[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?"
)
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:" + _EXTENSION + rb")*")
_TRAILER_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*[\t\x20-\x7e\x80-\xff]*")

MAX_SIZE_LINE = 1024
MAX_TRAILER_LINES = 100
MAX_TRAILER_BYTES = 65536
MAX_TRAILER_LINE = 8190

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE, _FAILED = range(6)


class ChunkedDecoder:
    """Incremental decoder for a chunked request body; feed it bytes in any split."""

    __slots__ = ("max_body", "done", "unused", "_state", "_buf", "_remaining", "_total",
                 "_trailer_lines", "_trailer_bytes")  # fmt: skip

    def __init__(self, max_body: int | None = None) -> None:
        self.max_body = max_body
        self.done = False
        self.unused = b""
        self._state = _SIZE
        self._buf = bytearray()
        self._remaining = 0  # bytes of the current chunk's data still to come
        self._total = 0  # payload bytes announced so far, checked against max_body
        self._trailer_lines = 0
        self._trailer_bytes = 0

    def feed(self, data: bytes) -> bytes:
        """Consume data and return the payload bytes it completes (b"" if none yet)."""
        state = self._state
        if state == _DONE:
            self.unused += data
            return b""
        if state == _FAILED:
            raise HttpError(400, "chunked body already failed")
        try:
            return self._feed(data)
        except HttpError:
            self._state = _FAILED
            self._buf.clear()
            raise

    def _feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        buf = self._buf
        # Work straight on data when nothing is buffered: large chunk data then costs one copy.
        if buf:
            buf += data
            src: bytes | bytearray = buf
        else:
            src = data if type(data) is bytes else bytes(data)
        pos = 0
        end = len(src)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                out.append(src[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _DATA_END
            elif state == _SIZE:
                line, pos = _take_line(src, pos, MAX_SIZE_LINE, "chunk size line too long")
                if line is None:
                    break
                self._on_size_line(line)
            elif state == _DATA_END:
                if src[pos] != 0x0D:
                    raise HttpError(400, "chunk data not followed by CRLF")
                if end - pos < 2:
                    break
                if src[pos + 1] != 0x0A:
                    raise HttpError(400, "chunk data not followed by CRLF")
                pos += 2
                self._state = _SIZE
            elif state == _TRAILER:
                line, pos = _take_line(src, pos, MAX_TRAILER_LINE, "trailer field too long")
                if line is None:
                    break
                if not line:
                    self._state = _DONE
                    self.done = True
                    self.unused = bytes(src[pos:])
                    pos = end
                    break
                self._on_trailer_line(line)
            else:  # pragma: no cover - _DONE/_FAILED are handled by feed()
                break
        if src is buf:
            del buf[:pos]
        elif pos < end:
            buf += src[pos:]
        return b"".join(out)

    def _on_size_line(self, line: bytes) -> None:
        m = _SIZE_LINE.fullmatch(line)
        if m is None:
            raise HttpError(400, "invalid chunk size line")
        size = int(m.group(1), 16)
        if size == 0:
            self._state = _TRAILER
            return
        self._total += size
        if self.max_body is not None and self._total > self.max_body:
            raise HttpError(413, "request body too large")
        self._remaining = size
        self._state = _DATA

    def _on_trailer_line(self, line: bytes) -> None:
        self._trailer_lines += 1
        self._trailer_bytes += len(line) + 2
        if self._trailer_lines > MAX_TRAILER_LINES:
            raise HttpError(400, "too many trailer fields")
        if self._trailer_bytes > MAX_TRAILER_BYTES:
            raise HttpError(400, "trailer section too large")
        if _TRAILER_LINE.fullmatch(line) is None:
            raise HttpError(400, "invalid trailer field")


def _take_line(
    buf: bytes | bytearray, pos: int, limit: int, too_long: str
) -> tuple[bytes | None, int]:
    """Return (line without CRLF, position after it), or (None, pos) if it is incomplete."""
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        # Fail now rather than buffering towards the limit: a bare LF, or a CR that is not
        # the last byte so far, can never become a valid line ending.
        if buf.find(b"\n", pos) >= 0 or buf.find(b"\r", pos, len(buf) - 1) >= 0:
            raise HttpError(400, "bare CR or LF in chunked body")
        pending = len(buf) - pos
        if buf.endswith(b"\r"):
            pending -= 1  # may be the CR of the line's CRLF
        if pending > limit:
            raise HttpError(400, too_long)
        return None, pos
    if eol - pos > limit:
        raise HttpError(400, too_long)
    line = bytes(buf[pos:eol])
    if b"\n" in line or b"\r" in line:
        raise HttpError(400, "bare CR or LF in chunked body")
    return line, eol + 2
