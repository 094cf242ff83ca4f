"""The folder layout, which is the state of every request, and the moves between folders.

inbox/ -> processing/<daemon id>/ -> done/ or failed/, with results in outbox/. Each daemon
claims into its own subfolder, so a daemon restarting after a crash recovers only its own
work while others on the same share keep theirs.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files
from .errors import FatalError
from .options import AudioFormat

if TYPE_CHECKING:
    from .config import Settings

FOLDER_NAMES = ("inbox", "processing", "outbox", "done", "failed")
STATUS_SUFFIX = ".status.json"


@dataclass(frozen=True)
class Layout:
    """Where everything lives; `claimed` is this daemon's own subfolder of processing/."""

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
    def heartbeat(self) -> Path:
        """Refreshed by the running daemon; `musicgen-watcher health` reads its age."""
        return self.claimed / ".heartbeat"

    @property
    def claimed(self) -> Path:
        return self.processing / self.daemon_id

    @property
    def folders(self) -> tuple[Path, ...]:
        return (self.inbox, self.processing, self.outbox, self.done, self.failed, self.claimed)

    def depths(self) -> dict[str, int]:
        """Requests in each folder (outbox: audio files), as `status` and the metrics show them."""
        return {name: _count(getattr(self, name), name) for name in FOLDER_NAMES}

    def lock(self) -> int:
        """Hold `processing/<id>/.lock` for the daemon's life: one daemon per id, even on a share."""
        fd = os.open(self.claimed / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FatalError(f"another daemon with id {self.daemon_id!r} is running on {self.processing}; "
                             "give each daemon its own daemon.id") from None
        return fd

    def create(self) -> None:
        """Create every folder, or raise FatalError naming the one that cannot be."""
        for folder in self.folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FatalError(f"folder {folder} cannot be created: {exc.strerror}") from None
            problem = unwritable(folder)
            if problem:
                raise FatalError(f"folder {folder} cannot be written: {problem}")

    # -- a claimed request and its bookkeeping, all hidden beside it ------------------------

    def claim(self, inbox_file: Path) -> Path | None:
        """Take a request by renaming it into our processing folder; None if another got it."""
        dest = self.claimed / inbox_file.name
        if dest.exists():
            return None
        try:
            os.rename(inbox_file, dest)
        except FileNotFoundError:
            return None
        files.fsync_dir(self.claimed)
        return dest

    def claimed_requests(self) -> list[Path]:
        """Requests this daemon holds (after a crash: the ones to recover)."""
        return sorted(p for p in self.claimed.glob("*.json") if not p.name.endswith(STATUS_SUFFIX))

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

    def forget(self, claimed: Path) -> None:
        """Remove a finished request's bookkeeping."""
        for path in (self.status_file(claimed), self.attempts_file(claimed), self.journal_file(claimed)):
            path.unlink(missing_ok=True)

    def remove_orphans(self) -> list[Path]:
        """Delete temporaries and bookkeeping left without a request by an interrupted run."""
        removed = [p for folder in (self.outbox, self.done, self.failed, self.claimed)
                   for p in files.remove_temps(folder)]
        held = {p.name for p in self.claimed_requests()}
        for path in self.claimed.iterdir():
            owner = _bookkeeping_owner(path.name)
            if owner is not None and owner not in held and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    # -- the end of a request ---------------------------------------------------------------

    def finish(self, claimed: Path, folder: Path, attachments: Iterable[str], still_needed: set[str]) -> Path:
        """Move a request, and the attachments nobody else waits for, into done/ or failed/."""
        for name in attachments:
            source = self.inbox / name
            if name not in still_needed and os.path.lexists(source):
                files.move_no_clobber(source, folder)  # a symlink moves as the link itself
        final = files.move_no_clobber(claimed, folder, suffix_from=".json")
        self.forget(claimed)
        return final

    def put_back(self, claimed: Path) -> Path:
        """Return a request, untouched, to the inbox (a stop, not a crash: attempts reset)."""
        final = files.move_no_clobber(claimed, self.inbox, suffix_from=".json")
        self.forget(claimed)
        return final


def _count(folder: Path, name: str) -> int:
    if not folder.is_dir():
        return 0
    if name == "processing":
        return sum(1 for p in folder.glob("*/*.json") if not p.name.endswith(STATUS_SUFFIX))
    if name == "outbox":
        return sum(1 for p in folder.iterdir() if p.suffix.lstrip(".") in AudioFormat.__members__)
    return sum(1 for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".")
               and not p.name.endswith(".error.json"))


def unwritable(folder: Path) -> str | None:
    """Why a file cannot be created in `folder`, or None when it can."""
    try:
        files.write_temp(folder, "probe", lambda p: p.write_bytes(b"")).unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _bookkeeping_owner(name: str) -> str | None:
    """The request a bookkeeping file belongs to: `.x.json.attempts` and `x.status.json` -> `x.json`."""
    if name.endswith(STATUS_SUFFIX):
        return name.removesuffix(STATUS_SUFFIX) + ".json"
    for suffix in (".attempts", ".journal"):
        if name.startswith(".") and name.endswith(suffix):
            return name[1:].removesuffix(suffix)
    return None


def write_json(folder: Path, name: str, value: dict[str, Any]) -> Path:
    """Publish a JSON file atomically under `name`, never replacing one that exists."""
    data = (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()
    tmp = files.write_temp(folder, name, lambda p: p.write_bytes(data))
    dest = folder / name
    if not files.link_no_clobber(tmp, dest):
        tmp.unlink(missing_ok=True)
        raise FileExistsError(dest)
    return dest
