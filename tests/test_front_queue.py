"""The front's own queue for a group whose channel is full, on real sockets in one process."""

from __future__ import annotations

import os
import socket

from groupserver.config import parse_config
from groupserver.front import FrontServer, _Pending
from groupserver.handoff import HandoffChannel
from groupserver.scoreboard import ROLE_FRONT, Scoreboard


def test_hand_offs_wait_in_order_while_the_channel_is_full_and_flush_when_it_drains():
    site = parse_config("groups: {main: {app: 'a:b'}}\nfront: {accept: front}\n")
    channel = HandoffChannel("main")
    channel.send_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # full after a few
    scoreboard = Scoreboard(4)
    slot = scoreboard.allocate(ROLE_FRONT, -1)
    ready_r, ready_w = os.pipe()
    front = FrontServer(
        site, [], {"main": channel}, ready_w, os.getpid(), scoreboard, slot, {"main": 0}
    )
    clients = []
    try:
        for n in range(40):
            ours, theirs = socket.socketpair()
            clients.append(theirs)
            pending = _Pending(ours, n, 0.0)
            pending.buf += b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % n
            front._hand_off(pending, "main")
        waiting = len(front.queued["main"])
        assert 0 < waiting < 40, "the channel filled up and the rest waits in the front"
        received = []
        while len(received) < 40:
            handoff = channel.receive()
            if handoff is None:
                front._flush("main")  # what the front does when the channel is writable again
                continue
            received.append(handoff.data.split(b" ")[1].decode())
            handoff.sock.close()
        assert received == [f"/{n}" for n in range(40)], "in arrival order, none lost"
        assert not front.queued["main"]
        assert scoreboard[slot].handed[0] == 40
    finally:
        for sock in clients:
            sock.close()
        channel.close()
        os.close(ready_r)
        os.close(ready_w)
