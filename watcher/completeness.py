"""When a file in the inbox is complete: one rule, for requests and attachments, on every path.

A file is complete when

- its writer closed it, or it was moved in (an inotify event on a local file system), or the daemon
  itself saw it unchanged (size, mtime, inode) for `watch.stable_seconds`: two of its own
  observations, never the age of an mtime;
- and no process holds it open for writing, where the operating system can tell: Linux refuses a
  read lease (`F_SETLEASE`, `F_RDLCK`) while any process has the file open for writing, so taking
  one and releasing it at once asks the kernel. That covers smbd, nfsd, `cp`, `rsync` and other
  containers on the same host. Where the answer is "can't tell" (network file systems, a file of
  another user without CAP_LEASE) only the first part applies.

A zero-byte file is never complete while it is younger than `watch.attachment_wait`: writers create
empty files first. An event alone is enough when the kernel also says nobody writes the file: that is
a file linked into place (`submit`), which gets no close event.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from . import files

#: the capability that lets a process take leases on files it does not own
_CAP_LEASE = 28


class Rule(StrEnum):
    """Which evidence the daemon has, logged once at start as `completeness`."""

    #: inotify events, and read leases say whether anyone still writes
    lease_events = "lease+events"
    #: polling: observed stability, and read leases
    lease_stability = "lease+stability"
    #: inotify events, and observed stability where no event came; leases refused here
    events_stability = "events+stability"
    #: observed stability only (a network mount in polling mode)
    stability = "stability"

    @classmethod
    def of(cls, *, events: bool, leases: bool) -> Rule:
        if leases:
            return cls.lease_events if events else cls.lease_stability
        return cls.events_stability if events else cls.stability


def being_written(path: Path) -> bool | None:
    """Whether some process holds `path` open for writing; None where the kernel cannot tell us.

    Takes a read lease and releases it at once. A writer opening the file in between breaks the
    lease with a signal: SIGWINCH, ignored by default, instead of SIGIO, which would end the daemon.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except BlockingIOError:  # another process holds a lease (Samba's kernel oplocks): it may write
        return True
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGWINCH)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return True if exc.errno == errno.EAGAIN else None  # EACCES: not ours; EINVAL: no leases here
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def leases_work(folder: Path) -> bool:
    """Whether this process can take leases in `folder` (tried on a file of its own, removed at once)."""
    probe = files.write_temp(folder, "lease-probe", lambda p: p.write_bytes(b""))
    try:
        return being_written(probe) is False
    finally:
        files.remove(probe)


def lease_scope() -> str:
    """Whose files leases can tell about: every file with CAP_LEASE (root), else this user's own."""
    try:
        with open("/proc/self/status") as status:
            caps = next(line for line in status if line.startswith("CapEff:"))
    except (OSError, StopIteration):
        return "own files"
    return "all files" if int(caps.split()[1], 16) >> _CAP_LEASE & 1 else "own files"


@dataclass(slots=True)
class Sighting:
    """What the daemon has seen of one file."""

    size: int
    mtime_ns: int
    inode: int
    #: time.monotonic() of the first observation with this size, mtime and inode
    since: float
    #: its writer closed it, or it was moved in, since it last changed (inotify)
    closed: bool = False
    #: an inotify event named it since it last changed (created, linked, written)
    evented: bool = False
    #: inotify saw it written and no close since
    written: bool = False

    def same_file(self, stat: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (stat.st_size, stat.st_mtime_ns, stat.st_ino)


def is_complete(seen: Sighting, *, now: float, age: float, writers: bool | None, stable_seconds: float,
                empty_wait: float) -> bool:
    """The rule. `age`: seconds since the file's mtime; `writers`: what `being_written` said."""
    if writers:
        return False
    if seen.size == 0 and age < empty_wait:
        return False
    if seen.closed:
        return True
    if seen.evented and writers is False:
        return True  # nobody writes it: linked into place, or its close event is on its way
    if seen.written:
        return False  # seen written and not closed: only the close will do where leases cannot tell
    return now - seen.since >= stable_seconds
