"""The folder layout, which is the state of every request, and the moves between folders.

inbox/ -> processing/<daemon id>/ -> done/ or failed/, with results in outbox/. Each daemon
claims into its own subfolder, so a daemon restarting after a crash recovers only its own
work while others on the same share keep theirs.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files
from .errors import FatalCode, FatalError
from .names import REQUEST_SUFFIXES, is_request_name, is_tracked_name
from .options import AudioFormat

if TYPE_CHECKING:
    from .config import Settings

FOLDER_NAMES = ("inbox", "processing", "outbox", "done", "failed")
#: a temporary in a shared folder younger than this may be another daemon's, still being written
_TEMP_AGE = 3600.0
STATUS_SUFFIX = ".status.json"


@dataclass(frozen=True)
class Layout:
    """Where everything lives; `claim_dir` is this daemon's own subfolder of processing/."""

    inbox: Path
    processing: Path
    outbox: Path
    done: Path
    failed: Path
    daemon_id: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(settings.folder("inbox"), settings.folder("processing"), settings.folder("outbox"),
                   settings.folder("done"), settings.folder("failed"), settings.daemon.id)

    @property
    def claim_dir(self) -> Path:
        """processing/<daemon id>/: the requests this daemon holds, their bookkeeping, its heartbeat."""
        return self.processing / self.daemon_id

    @property
    def heartbeat(self) -> Path:
        """Refreshed by the running daemon; `musicgen-watcher health` reads its age."""
        return self.claim_dir / ".heartbeat"

    @property
    def notify_dir(self) -> Path:
        """processing/<daemon id>/.notify/: the notifications not delivered yet."""
        return self.claim_dir / ".notify"

    @property
    def folders(self) -> tuple[Path, ...]:
        return (self.inbox, self.processing, self.outbox, self.done, self.failed, self.claim_dir)

    def depths(self, names: tuple[str, ...] = FOLDER_NAMES) -> dict[str, int]:
        """Requests in each folder (outbox: audio files), as `status` shows them."""
        return {name: _count(getattr(self, name), name) for name in names}

    def create(self) -> None:
        """Create every folder, or raise FatalError naming the one that cannot be created or written."""
        for folder in self.folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FatalError(FatalCode.folder_unusable, f"folder {folder} cannot be created: {exc.strerror}") \
                    from None
            problem = writable_problem(folder)
            if problem:
                raise FatalError(FatalCode.folder_unusable, f"folder {folder} cannot be written: {problem}")

    def check_present(self) -> None:
        """Raise FatalError when one of the daemon's folders as a whole is gone (a share unmounted)."""
        for folder in self.folders:
            if not folder.is_dir():
                raise FatalError(FatalCode.folder_unusable, f"folder {folder} is gone")

    # -- a claimed request and its bookkeeping, all hidden beside it ------------------------

    def claim(self, name: str) -> Path | None:
        """Take the request `name` (relative to the inbox) by renaming it into our processing folder, in the
        same subfolder; None if another daemon got it.

        A share may refuse the rename for now (EBUSY while another client has the file open...):
        that OSError goes to the caller, which tries again later.
        """
        dest = self.claim_dir / name
        if dest.exists():  # this daemon already holds one of that name: the other waits in the inbox
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            files.rename(self.inbox / name, dest)
        except FileNotFoundError:
            return None
        return dest

    def claimed_requests(self) -> list[str]:
        """The names of the requests this daemon holds (after a crash: the ones to recover)."""
        return self.requests_in(self.claim_dir)

    @staticmethod
    def requests_in(claim_dir: Path) -> list[str]:
        """The names of the requests a daemon's processing folder holds, relative to it."""
        return sorted(name for name in _files(claim_dir) if is_request_name(name))

    @staticmethod
    def attempts_file(claimed: Path) -> Path:
        return claimed.with_name(f".{claimed.name}.attempts")

    @staticmethod
    def journal_file(claimed: Path) -> Path:
        return claimed.with_name(f".{claimed.name}.journal")

    @staticmethod
    def status_file(claimed: Path) -> Path:
        return claimed.with_name(f"{claimed.stem}{STATUS_SUFFIX}")

    def attempts(self, claimed: Path) -> int:
        try:
            return int(self.attempts_file(claimed).read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def count_attempt(self, claimed: Path) -> int:
        """Durably count one more start of this request; returns the new count."""
        count = self.attempts(claimed) + 1
        files.replace_atomic(self.attempts_file(claimed), str(count).encode())
        return count

    def uncount_attempt(self, claimed: Path) -> None:
        """Take back the start just counted: the attempt ended in a retry, not a crash."""
        count = self.attempts(claimed)
        if count:
            files.replace_atomic(self.attempts_file(claimed), str(count - 1).encode())

    def write_journal(self, claimed: Path, entry: dict[str, Any]) -> None:
        files.replace_atomic(self.journal_file(claimed), json.dumps(entry).encode())

    def read_journal(self, claimed: Path) -> dict[str, Any] | None:
        try:
            value = json.loads(self.journal_file(claimed).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def clear_bookkeeping(self, claimed: Path) -> None:
        """Remove a finished request's status, attempts and journal files (and a batch's record of its lines)."""
        for path in (self.status_file(claimed), self.attempts_file(claimed), self.journal_file(claimed),
                     claimed.with_name(f".{claimed.name}.lines")):
            files.remove(path)

    def remove_orphans(self) -> list[Path]:
        """Delete temporaries and bookkeeping left without a request by an interrupted run.

        A temporary a journal names is a publication to finish, and one younger than an hour may be another
        daemon's on the same share, still being written: both stay.
        """
        folders = [self.outbox, self.done, self.failed, self.claim_dir, self.notify_dir, self.inbox]
        folders += [p for folder in folders[:4] if folder.is_dir() for p in folder.rglob("*") if p.is_dir()]
        keep = self._journaled_temps()
        removed = [p for folder in folders for p in files.remove_temps(folder, keep=keep, older_than=_TEMP_AGE)]
        held = set(self.claimed_requests())
        for path in self.claim_dir.rglob("*"):
            name = path.relative_to(self.claim_dir).as_posix()
            owner = _bookkeeping_owner(name)
            if owner is not None and not held & {f"{owner}{suffix}" for suffix in REQUEST_SUFFIXES} and path.is_file():
                files.remove(path)
                removed.append(path)
        return removed

    def _journaled_temps(self) -> set[Path]:
        """The temporaries in the outbox that a journal of any daemon names."""
        return {self.outbox / o["temp"] for o in self.journaled_outputs() if "temp" in o}

    def journaled_outputs(self) -> list[dict[str, Any]]:
        """Every output a journal of any daemon names: publications that a restart or a retry will finish."""
        found = []
        for path in self.processing.rglob(".*.journal"):
            try:
                found += journal_outputs(json.loads(path.read_bytes()))
            except (OSError, ValueError, TypeError, AttributeError, KeyError):
                continue
        return found

    # -- the end of a request ---------------------------------------------------------------

    def finish(self, claimed: Path, name: str, folder: Path, attachments: Iterable[str],
               still_needed: set[str], *, base: str | None = None) -> Path:
        """Move a request, and the attachments nobody else waits for, into done/ or failed/ (in the request's
        own subfolder there). Attachments are named relative to the inbox. With `base`, the request is
        named exactly so (beside its error file), or FileExistsError; else its own name or the next free one.

        Each moved file's mtime becomes now: the time it got there, as retention counts it.
        """
        dest = folder / posixpath.dirname(name)
        dest.mkdir(parents=True, exist_ok=True)
        if base is not None:
            final = dest / f"{base}{claimed.suffix}"
            files.move_exact(claimed, final)
        for attachment in attachments:
            source = self.inbox / attachment
            if attachment not in still_needed and os.path.lexists(source):
                files.touch(files.move_no_clobber(source, dest))  # a symlink moves as the link itself
        if base is None:
            final = files.move_no_clobber(claimed, dest, suffix_from=claimed.suffix)
        files.touch(final)
        self.clear_bookkeeping(claimed)
        return final

    def put_back(self, claimed: Path, name: str) -> Path:
        """Return a request, untouched, to its folder in the inbox (a stop, not a crash: attempts reset)."""
        dest = self.inbox / posixpath.dirname(name)
        dest.mkdir(parents=True, exist_ok=True)
        final = files.move_no_clobber(claimed, dest, suffix_from=claimed.suffix)
        self.clear_bookkeeping(claimed)
        return final


def journal_outputs(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """A publication journal's outputs: each with its `audio`, `sidecar`, `temp` and sidecar `content`.

    A journal written before takes held one output itself, without a temporary.
    """
    found: list[dict[str, Any]] = journal.get("outputs") or [journal]
    return found


def _files(folder: Path) -> list[str]:
    """Every file under `folder` whose path has no hidden part, relative to it."""
    if not folder.is_dir():
        return []
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and is_tracked_name(p.relative_to(folder).as_posix())]


def _count(folder: Path, name: str) -> int:
    found = _files(folder)
    if name == "outbox":
        return sum(1 for f in found if posixpath.splitext(f)[1].lstrip(".") in AudioFormat.__members__)
    return sum(1 for f in found if is_request_name(f) and not f.endswith((".error.json", STATUS_SUFFIX)))


def writable_problem(folder: Path) -> str | None:
    """Why files cannot be created in `folder`, or None; asks the kernel, writes nothing.

    Writing a probe file every health check would keep a NAS's disks awake and wake the watchers
    downstream, so this reads the mount flags and the permissions instead.
    """
    try:
        stat = folder.stat()
        fs = os.statvfs(folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not folder.is_dir():
        return "not a folder"
    if fs.f_flag & os.ST_RDONLY:
        return "read-only file system"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (f"permission denied for uid {os.geteuid()} (the folder belongs to uid {stat.st_uid}, "
                f"gid {stat.st_gid}, mode {stat.st_mode & 0o7777:04o})")
    return None


def space_left(folder: Path) -> int | None:
    """Bytes this user may still write on `folder`'s file system, or None when it cannot be asked."""
    try:
        fs = os.statvfs(folder)
    except OSError:
        return None
    return (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize


def _bookkeeping_owner(name: str) -> str | None:
    """The request (without its suffix) a bookkeeping file belongs to: `sub/.x.json.attempts` and
    `sub/x.status.json` -> `sub/x`."""
    folder, base = posixpath.split(name)
    owner = None
    if base.endswith(STATUS_SUFFIX):
        owner = base.removesuffix(STATUS_SUFFIX)
    for suffix in (".attempts", ".journal", ".lines"):
        if base.startswith(".") and base.endswith(suffix):
            owner = posixpath.splitext(base[1:].removesuffix(suffix))[0]
    return None if owner is None else posixpath.join(folder, owner)
