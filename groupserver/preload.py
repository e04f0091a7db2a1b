"""The per-group preloading parent: ``groupserver: preload [GROUP]`` in ps (``preload: true``).

It imports the group's application once, freezes the heap (``gc.freeze()``: objects made at
import stay out of the collector's reach, so collections don't touch, and un-share, their pages;
the master's objects are frozen before the import, for the same reason),
and then forks the group's workers whenever the master asks. A worker is forked through a
short-lived intermediate process, so it is re-parented to the master (a child subreaper) and
supervised like any other worker; the master still imports no application code.

It stays single-threaded: forking a process with threads copies only the calling thread.
"""

from __future__ import annotations

import array
import gc
import logging
import os
import signal
import socket
import traceback
from collections.abc import Callable
from typing import Any

from groupserver.accesslog import flush_standard_streams
from groupserver.proctitle import set_process_title

_SPAWN = b"spawn"

log = logging.getLogger("groupserver.preload")


def request_spawn(control: socket.socket, slot: int, status_w: int) -> None:
    """Master side: ask a preloader for one worker using scoreboard slot and this status pipe."""
    fds = array.array("i", [status_w])
    control.sendmsg(
        [b"%s %d" % (_SPAWN, slot)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())]
    )


def run_preloader(
    group: str,
    status_w: int,
    control: socket.socket,
    import_app: Callable[[], Callable[..., Any]],
    start_worker: Callable[[int, int, Callable[..., Any]], None],
) -> None:
    """Body of the preloading parent; never returns.

    ``start_worker(slot, status_fd, app)`` runs in the forked worker and never returns.
    """
    set_process_title(f"groupserver: preload [{group}]", f"preload:{group}")
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    signal.signal(signal.SIGQUIT, lambda *_: os._exit(0))
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    # Freeze what we inherited from the master first: a collection walks, and so writes to,
    # every object it scans, and each page written becomes a private copy in both processes
    # (a collection here cost the master ~6 MiB of USS). Then collect only what the import
    # left behind, and freeze the rest for the workers.
    gc.freeze()
    app = import_app()
    gc.collect()
    gc.freeze()
    os.write(status_w, b"ready\n")
    while True:
        try:
            msg, anc, _flags, _addr = control.recvmsg(64, socket.CMSG_SPACE(4))
        except InterruptedError:
            continue
        if not msg:
            os._exit(0)  # the master is gone
        fds = array.array("i")
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        words = msg.split()
        if len(words) != 2 or words[0] != _SPAWN or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        _fork_worker(int(words[1]), fds[0], app, (control.fileno(), status_w), start_worker)


def _fork_worker(
    slot: int,
    status_fd: int,
    app: Callable[..., Any],
    parent_fds: tuple[int, ...],
    start_worker: Callable[[int, int, Callable[..., Any]], None],
) -> None:
    flush_standard_streams()  # else every worker inherits, and prints again, what was pending
    try:
        middle = os.fork()
    except OSError as exc:  # EAGAIN, ENOMEM: the master sees this worker die at start-up
        log.error("preloader %d: cannot fork a worker: %s", os.getpid(), exc)
        os.close(status_fd)
        return
    if middle == 0:
        try:
            if os.fork() == 0:
                for fd in parent_fds:
                    os.close(fd)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR2):
                    signal.signal(sig, signal.SIG_DFL)
                # A log reopen before the worker sets its own handler must not kill it.
                for sig in (signal.SIGUSR1, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_IGN)
                start_worker(slot, status_fd, app)
        except BaseException:
            traceback.print_exc()
            flush_standard_streams()
        os._exit(0)
    os.close(status_fd)
    os.waitpid(middle, 0)
