"""A daemon's presence on the share: one daemon per id, and a heartbeat that tells the truth.

One per id: `flock` on `processing/<id>/.lock` is the fast path on one host; an owner record
(`.owner`: host, pid, boot id, start time) beside the heartbeat covers daemons on other hosts, where
a share's locks may not reach. A daemon refuses to start while a fresh heartbeat belongs to another
owner, and takes over when it is stale.

The heartbeat is written on a thread of its own, so a model load or download that takes minutes does
not make a healthy daemon look dead; it stops when the main loop has not moved for half of
`daemon.heartbeat_timeout` outside a load, so a stuck daemon does look dead.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from . import files
from .about import now_iso
from .errors import FatalCode, FatalError
from .folders import Layout

log = structlog.get_logger("watcher.presence")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class Owner:
    """Who runs a daemon id: enough to tell another host, a restarted host, or a dead process."""

    host: str
    pid: int
    boot_id: str
    started_at: str

    @classmethod
    def me(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), _boot_id(), now_iso())

    def same_process(self, other: Owner) -> bool:
        return (self.host, self.boot_id, self.pid) == (other.host, other.boot_id, other.pid)

    def dead(self) -> bool:
        """Whether this owner is a process of this host's current boot that no longer runs."""
        me = Owner.me()
        if (self.host, self.boot_id) != (me.host, me.boot_id):
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host!r} (started {self.started_at})"


class Presence:
    """Holds a daemon id for this process, and writes its heartbeat."""

    def __init__(self, layout: Layout, heartbeat_timeout: float) -> None:
        self.layout = layout
        self.timeout = heartbeat_timeout
        self.owner = Owner.me()
        self._lock_fd: int | None = None

    @property
    def owner_file(self) -> Path:
        return self.layout.claim_dir / ".owner"

    def acquire(self) -> None:
        """Take the id, or raise FatalError(already_running) naming who holds it."""
        fd = os.open(self.layout.claim_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)  # the umask decides
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._refusal("another daemon on this host") from None
        self._lock_fd = fd
        try:
            self._take_record()
        except BaseException:
            self.release()
            raise

    def _take_record(self) -> None:
        current = self.read_owner()
        if current is not None:
            if self._fresh() and not current.dead():
                raise self._refusal(current.describe())
            log.warning("took_over", daemon=self.layout.daemon_id, previous=asdict(current))
            files.remove(self.owner_file)
        try:
            files.publish(self.owner_file.parent, self.owner_file.name, json.dumps(asdict(self.owner)).encode())
        except FileExistsError:  # another daemon took it over at the same moment
            other = self.read_owner()
            raise self._refusal(other.describe() if other else "another daemon") from None

    def _refusal(self, who: str) -> FatalError:
        return FatalError(FatalCode.already_running,
                          f"another daemon with id {self.layout.daemon_id!r} is running on {self.layout.processing}: "
                          f"{who}; give each daemon its own daemon.id")

    def _fresh(self) -> bool:
        try:
            return time.time() - self.layout.heartbeat.stat().st_mtime < self.timeout
        except FileNotFoundError:
            return False

    def read_owner(self) -> Owner | None:
        try:
            return Owner(**json.loads(self.owner_file.read_bytes()))
        except (OSError, ValueError, TypeError):
            return None

    def release(self) -> None:
        """Give the id up: remove our owner record, drop the lock."""
        current = self.read_owner()
        if current is not None and current.same_process(self.owner):
            files.remove(self.owner_file)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def beat(self, state: dict[str, Any]) -> None:
        """Write the heartbeat; raise FatalError(lost_ownership) if another daemon took the id over."""
        current = self.read_owner()
        if current is not None and not current.same_process(self.owner):
            raise FatalError(FatalCode.lost_ownership,
                             f"daemon id {self.layout.daemon_id!r} was taken over by {current.describe()}")
        beat = {"daemon": self.layout.daemon_id, **asdict(self.owner), "at": now_iso(), **state}
        files.replace_atomic(self.layout.heartbeat, json.dumps(beat).encode())


class Heartbeat:
    """Beats on its own thread while the daemon is alive: its loop moved lately, or a model loads."""

    def __init__(self, presence: Presence, interval: float, describe: Callable[[], dict[str, Any]],
                 wake: threading.Event, on_beat: Callable[[], None] = lambda: None) -> None:
        self.presence = presence
        self.interval = interval
        self.describe = describe
        self.wake = wake
        self.on_beat = on_beat
        #: what the main loop does: idle, loading (a model), generating
        self.state = "idle"
        #: set when the id was taken over: the main loop raises it
        self.failure: FatalError | None = None
        self._moved = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def touch(self) -> None:
        """The main loop moved."""
        self._moved = time.monotonic()

    @contextmanager
    def doing(self, state: str) -> Iterator[None]:
        """Report `state` while the block runs (`loading` keeps the daemon healthy however long it takes)."""
        before, self.state = self.state, state
        self.touch()
        try:
            yield
        finally:
            self.state = before
            self.touch()

    def alive(self) -> bool:
        return self.state == "loading" or time.monotonic() - self._moved < self.presence.timeout / 2

    def start(self) -> None:
        self.beat_now()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def beat_now(self) -> None:
        """Write one heartbeat now (when the daemon is alive)."""
        if not self.alive():
            return
        try:
            self.presence.beat({"state": self.state, **self.describe()})
            self.on_beat()
        except FatalError as exc:
            self.failure = exc
            self.wake.set()
        except OSError as exc:
            log.warning("heartbeat_failed", error=str(exc))

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.beat_now()
