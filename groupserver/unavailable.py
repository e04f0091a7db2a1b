"""503 for a group that cannot serve: its workers keep dying at start-up (master).

While a group is failing (FAILING_AFTER deaths at start-up in a row, supervision.py) and none of
its workers is ready, the connections that wait for it would hang until their clients give up:
nobody takes them from the group's queue, and when the group accepts for the site, nobody takes
them from the listeners either. The master answers them instead: 503 Service Unavailable with
Retry-After, and closes them. It looks about four times a second (its loop's tick), and it
never blocks: every socket call here is non-blocking.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable

from groupserver.handoff import HandoffChannel
from groupserver.http.response import error_response

MOST = 64  # connections answered per look, per source (the rest wait for the next look)


def refuse(sock: socket.socket, retry_after: int) -> None:
    """Answer one connection 503 + Retry-After (seconds) and close it."""
    try:
        sock.setblocking(False)
        # Take what the client has sent (an accepted connection's head is unread): closing a
        # socket with unread bytes resets the connection, and the client may lose the answer.
        with contextlib.suppress(BlockingIOError):  # nothing (a handed-off head was read)
            sock.recv(65536)
        sock.send(error_response(503, extra_headers=(("Retry-After", str(retry_after)),)))
    except OSError:
        pass  # the client is gone
    finally:
        sock.close()


def refuse_queued(channel: HandoffChannel, retry_after: int, most: int = MOST) -> int:
    """Answer up to `most` connections waiting in the group's queue; returns how many."""
    try:
        found = channel.receive_many(most)
    except OSError:  # the master must not die of it; the rest wait for the next look
        return 0
    for handoff in found:
        refuse(handoff.sock, retry_after)
    return len(found)


def refuse_accepted(listeners: Iterable[socket.socket], retry_after: int, most: int = MOST) -> int:
    """Accept and answer up to `most` connections from each listener; returns how many."""
    answered = 0
    for lsock in listeners:
        try:
            lsock.setblocking(False)  # as every process that accepts from it has it
        except OSError:
            continue  # closed
        for _ in range(most):
            try:
                sock, _addr = lsock.accept()
            except OSError:  # nothing waiting (BlockingIOError), or out of descriptors
                break
            refuse(sock, retry_after)
            answered += 1
    return answered


__all__ = ["MOST", "refuse", "refuse_accepted", "refuse_queued"]
