"""Hand-off channels: pass a client socket, and the bytes already read from it, to a daemon group.

Each group owns one ``SOCK_SEQPACKET`` socketpair, created by the master before it forks. Any
process (the front, or a worker that finds a keep-alive request belonging elsewhere) writes to the
``send`` end; the group's workers read from the ``recv`` end. The channel is the group's queue: a
connection waits there, in the kernel, until a worker with a free request thread takes it, and it
survives the death of any worker because the master keeps both ends open.

The file descriptions are shared by every process, so nothing here ever sets ``O_NONBLOCK`` on
them; each call says for itself whether it may wait (``MSG_DONTWAIT``).
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from dataclasses import dataclass

# queue_start (µs since the epoch), flags, requests already served on the connection, lengths
# of the peer and local addresses that follow ("host port" each; empty when not known)
_META = struct.Struct("!qBIBB")
FLAG_NEEDS_HEAD = 1  # handed back idle: wait for the next request head before routing

# A head is at most 96 KiB by the config's limits (max_head_size); the front never sends more
# than this.
MAX_MESSAGE = 128 * 1024
_CHANNEL_BUFFER = 4 * 1024 * 1024
_ANCILLARY = socket.CMSG_SPACE(struct.calcsize("i"))
# Most bytes read from a connection that can go with it: a message also holds the metadata and
# two addresses. Whoever reads a head (front or worker) reads no more than this.
MAX_DATA = MAX_MESSAGE - _META.size - 510


@dataclass(slots=True)
class Handoff:
    """One connection taken from a channel."""

    sock: socket.socket
    data: bytes
    queue_start_us: int
    flags: int
    peer: tuple[str, int] | None = None  # the client (from accept, or a PROXY header)
    served: int = 0  # requests served on this connection before (max_keepalive_requests)
    local: tuple[str, int] | None = None  # the listener's address (SERVER_NAME/PORT)


class ChannelFull(Exception):
    """The group's queue has no room right now (try again when the channel is writable)."""


class HandoffChannel:
    """The two ends of one group's queue."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.send_end, self.recv_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for end in (self.send_end, self.recv_end):
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                try:
                    end.setsockopt(socket.SOL_SOCKET, opt, _CHANNEL_BUFFER)
                except OSError:
                    pass

    def close(self) -> None:
        """Close both ends (master, when the group is gone)."""
        self.send_end.close()
        self.recv_end.close()

    def send(
        self,
        conn: socket.socket,
        data: bytes | bytearray,
        queue_start_us: int | None = None,
        flags: int = 0,
        wait: float = 0.0,
        peer: tuple[str, int] | None = None,
        served: int = 0,
        local: tuple[str, int] | None = None,
    ) -> None:
        """Queue ``conn`` with the ``data`` already read from it; the caller then closes conn.

        Passing the addresses the sender knows spares the worker two system calls.
        Raises ChannelFull when the queue stays full for ``wait`` seconds.
        """
        send_handoff(self.send_end, conn, data, queue_start_us, flags, wait, peer, served, local)

    def receive(self) -> Handoff | None:
        """Take one queued connection without waiting; None when the queue is empty."""
        return receive_handoff(self.recv_end)

    def receive_many(self, most: int) -> list[Handoff]:
        """Take up to `most` queued connections without waiting (fewer when it runs dry)."""
        found = []
        for _ in range(most):
            handoff = receive_handoff(self.recv_end)
            if handoff is None:
                break
            found.append(handoff)
        return found


def now_us() -> int:
    """Microseconds since the epoch (the unit of groupserver.queue_start)."""
    return time.time_ns() // 1000


def send_handoff(
    end: socket.socket,
    conn: socket.socket,
    data: bytes | bytearray,
    queue_start_us: int | None = None,
    flags: int = 0,
    wait: float = 0.0,
    peer: tuple[str, int] | None = None,
    served: int = 0,
    local: tuple[str, int] | None = None,
) -> None:
    """Send one connection over a channel's send end (see HandoffChannel.send)."""
    if len(data) > MAX_DATA:
        raise ValueError("hand-off data too large")
    peer_bytes = f"{peer[0]} {peer[1]}".encode("ascii") if peer else b""
    local_bytes = f"{local[0]} {local[1]}".encode("ascii") if local else b""
    start = now_us() if queue_start_us is None else queue_start_us
    meta = (
        _META.pack(start, flags, min(served, 0xFFFFFFFF), len(peer_bytes), len(local_bytes))
        + peer_bytes
        + local_bytes
    )
    fds = struct.pack("i", conn.fileno())
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]
    deadline = None
    while True:
        try:
            end.sendmsg([meta, data], anc, socket.MSG_DONTWAIT)
            return
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOBUFS, errno.ENOMEM):
                raise
        if wait <= 0:
            raise ChannelFull
        if deadline is None:
            deadline = time.monotonic() + wait
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChannelFull
        poller = select.poll()
        poller.register(end, select.POLLOUT)
        poller.poll(min(left, 0.05) * 1000)


def receive_handoff(end: socket.socket) -> Handoff | None:
    """Receive one connection from a channel's receive end without waiting."""
    try:
        msg, anc, msg_flags, _ = end.recvmsg(MAX_MESSAGE, _ANCILLARY, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    fd = -1
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS and len(payload) >= 4:
            fd = struct.unpack("i", payload[:4])[0]
    if fd < 0:
        return None
    sock = socket.socket(fileno=fd)
    if msg_flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(msg) < _META.size:
        sock.close()
        return None
    queue_start_us, flags, served, peer_len, local_len = _META.unpack_from(msg)
    start = _META.size
    peer = _address(msg[start : start + peer_len])
    local = _address(msg[start + peer_len : start + peer_len + local_len])
    data = msg[start + peer_len + local_len :]
    return Handoff(sock, data, queue_start_us, flags, peer, served, local)


def _address(raw: bytes) -> tuple[str, int] | None:
    if not raw:
        return None
    host, _, port = raw.decode("ascii").partition(" ")
    return host, int(port)
