"""The per-group parent that forks a group's workers whenever the master asks.

``groupserver: spawner [GROUP]`` in ps. Workers are not forked by the master itself: every
page of the master's heap (its config, stats and governor: ~12 MiB) that either process writes
after a fork becomes a private copy, and the master keeps writing, so a worker forked from it
started ~700 KiB bigger than one forked from a parent that sleeps between forks. The spawner
is forked from the master once per group and generation, drops to the group's user, and then
only waits; each worker it forks imports the app itself, so a recycled worker runs the code on
disk.

With ``preload: true`` it is the group's preloader (``groupserver: preload [GROUP]``): it
imports the application once and freezes the heap (``gc.freeze()``: objects made at import stay
out of the collector's reach, so collections don't touch, and un-share, their pages; the
master's objects are frozen before the import, for the same reason), and its workers share the
imported app copy-on-write.

A worker is forked through a short-lived intermediate process, so it is re-parented to the
master (a child subreaper) and supervised like any other worker; the master imports no
application code. The parent stays single-threaded: forking a process with threads copies only
the calling thread.
"""

from __future__ import annotations

import array
import gc
import os
import signal
import socket
import traceback
from collections.abc import Callable
from typing import Any

from groupserver.accesslog import flush_standard_streams
from groupserver.proctitle import set_process_title

_SPAWN = b"spawn"

# The roles of a group's fork parent, as the master knows it.
FORK_PARENTS = ("spawner", "preloader")


def fork_parent_role(preload: bool) -> str:
    """The role (and process title word) of a group's fork parent."""
    return "preloader" if preload else "spawner"


def request_spawn(control: socket.socket, slot: int, status_w: int) -> None:
    """Master side: ask a fork parent for one worker using scoreboard slot and this status pipe."""
    fds = array.array("i", [status_w])
    control.sendmsg(
        [b"%s %d" % (_SPAWN, slot)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())]
    )


def run_fork_parent(
    group: str,
    status_w: int,
    control: socket.socket,
    import_app: Callable[[], Callable[..., Any]] | None,
    start_worker: Callable[[int, int, Callable[..., Any] | None], None],
) -> None:
    """Body of a group's fork parent; never returns. import_app is given with preload: true.

    ``start_worker(slot, status_fd, app)`` runs in the forked worker and never returns; app is
    None when the worker imports it itself.
    """
    word = "preload" if import_app is not None else "spawner"
    set_process_title(f"groupserver: {word} [{group}]", f"{word}:{group}")
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
    app = None
    if import_app is not None:
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
        parent_fds = (control.fileno(), status_w)
        _fork_worker(int(words[1]), fds[0], app, parent_fds, start_worker)


def _fork_worker(
    slot: int,
    status_fd: int,
    app: Callable[..., Any] | None,
    parent_fds: tuple[int, ...],
    start_worker: Callable[[int, int, Callable[..., Any] | None], None],
) -> None:
    flush_standard_streams()  # else every worker inherits, and prints again, what was pending
    try:
        middle = os.fork()
    except OSError as exc:  # EAGAIN, ENOMEM: the master logs it and backs off
        try:
            os.write(status_fd, f"cannot-fork {exc}\n".encode("ascii", "replace"))
        except OSError:
            pass
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
