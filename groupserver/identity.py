"""Dropping privileges: a group's workers run as its `user`/`group` when the master is root."""

from __future__ import annotations

import grp
import os
import pwd


class IdentityError(Exception):
    """The configured user or group does not exist."""


def resolve(user: str | None, group: str | None) -> tuple[int | None, int | None, str | None]:
    """(uid, gid, user name for initgroups) from names or numbers; None where not configured."""
    uid = gid = None
    name = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            if not user.isdigit():
                raise IdentityError(f"no such user {user!r}") from None
            uid = int(user)
        else:
            uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            if not group.isdigit():
                raise IdentityError(f"no such group {group!r}") from None
            gid = int(group)
    return uid, gid, name


def _is_switch(uid: int | None, gid: int | None) -> bool:
    """Whether becoming uid/gid changes this process's identity."""
    return (uid is not None and uid != os.geteuid()) or (gid is not None and gid != os.getegid())


def needs_root(user: str | None, group: str | None) -> bool:
    """Whether becoming user/group needs root, which this process is not (an identity it
    already has needs nothing). Raises IdentityError for a name that does not exist."""
    uid, gid, _ = resolve(user, group)
    return os.geteuid() != 0 and _is_switch(uid, gid)


def drop_privileges(user: str | None, group: str | None) -> None:
    """Become user/group (root only; the group first, while we still may)."""
    if user is None and group is None:
        return
    uid, gid, name = resolve(user, group)
    if os.geteuid() != 0:
        if not _is_switch(uid, gid):
            return
        raise IdentityError("user/group need the master to run as root")
    if gid is not None:
        if name is not None:
            os.initgroups(name, gid)
        else:
            os.setgroups([gid])
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def chown_path(path: str, owner: str | None, group: str | None) -> None:
    """chown a unix socket to owner/group."""
    uid, gid, _ = resolve(owner, group)
    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
