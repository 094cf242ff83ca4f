"""Crash-safe file operations: every file the package creates, renames or removes goes through here.

Publication follows Maildir: write a hidden temporary name in the destination folder, fsync,
then give it its final name in one step, never replacing a file that is already there.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: every temporary file this package writes ends so, and starts with a dot
TEMP_SUFFIX = ".tmp"

#: what a share answers about one file another client holds, or a file that went away meanwhile:
#: leave it where it is and try again later, never stop the daemon for it
_REFUSALS = frozenset({errno.EBUSY, errno.ETXTBSY, errno.EAGAIN, errno.EACCES, errno.EPERM, errno.ESTALE,
                       errno.ENOENT})


def refused(exc: OSError) -> bool:
    """Whether `exc` is a share refusing one file for now (EBUSY, EACCES, ESTALE...) or the file vanishing."""
    return exc.errno in _REFUSALS


#: marks the temporaries this process writes (`remove_temps` knows its own); random unless `writing_as` says
_WRITER = secrets.token_hex(4)


@contextmanager
def writing_as(identity: str) -> Iterator[None]:
    """Mark the temporaries written in the block as `identity`'s (a daemon id, held by one process at a time),
    so the next start under that identity removes those a crash left, however young."""
    global _WRITER
    previous, _WRITER = _WRITER, hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()[:8]
    try:
        yield
    finally:
        _WRITER = previous


def temp_path(folder: Path, name: str) -> Path:
    """A hidden, unique temporary name in `folder`, which pickup and users' tools skip."""
    return folder / f".{name}.{_WRITER}-{secrets.token_hex(4)}{TEMP_SUFFIX}"


def is_temp(path: Path) -> bool:
    """Whether `path` is one of our temporary files."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def fsync_dir(folder: Path) -> None:
    """Make a rename or link in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some network filesystems refuse to fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_temp(folder: Path, name: str, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a fresh temporary path in `folder`, fsync it, return it.

    On any error the temporary file is removed, so a full disk leaves nothing behind.
    """
    tmp = temp_path(folder, name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def rename(src: Path, dest: Path) -> None:
    """Rename `src` to `dest` (same file system) and make it durable."""
    os.rename(src, dest)
    fsync_dir(dest.parent)


def touch(path: Path) -> Path:
    """Set `path`'s mtime to now (a link's own, not its target's)."""
    os.utime(path, follow_symlinks=False)
    return path


def remove(path: Path) -> None:
    """Delete `path` if it is there."""
    path.unlink(missing_ok=True)


def replace_atomic(dest: Path, data: bytes) -> None:
    """Write `data` to `dest`, replacing it in one step (status and heartbeat files only)."""
    tmp = write_temp(dest.parent, dest.name, lambda p: p.write_bytes(data))
    os.replace(tmp, dest)


def link_no_clobber(src: Path, dest: Path) -> bool:
    """Give `src` the name `dest` unless `dest` exists; `src` is gone on success."""
    try:
        os.link(src, dest)
    except FileExistsError:
        return False
    except OSError as exc:
        # Shares without hard links: check, then rename (a narrow race, only between daemons).
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if dest.exists():
            return False
        os.rename(src, dest)
    else:
        src.unlink()
    fsync_dir(dest.parent)
    return True


def publish(folder: Path, name: str, data: bytes) -> Path:
    """Publish `data` atomically as `folder/name`, never replacing a file there (FileExistsError)."""
    tmp = write_temp(folder, name, lambda p: p.write_bytes(data))
    dest = folder / name
    if not link_no_clobber(tmp, dest):
        remove(tmp)
        raise FileExistsError(dest)
    return dest


def candidates(stem: str, suffix: str) -> Iterator[str]:
    """`stem.suffix`, then `stem-1.suffix`, `stem-2.suffix`, ..."""
    yield f"{stem}{suffix}"
    n = 1
    while True:
        yield f"{stem}-{n}{suffix}"
        n += 1


def free_stem(folder: Path, stem: str, suffixes: tuple[str, ...]) -> str:
    """The first of `stem`, `stem-1`, ... for which no `stem<suffix>` exists in `folder`."""
    for name in candidates(stem, ""):
        if not any((folder / f"{name}{s}").exists() for s in suffixes):
            return name
    raise AssertionError("unreachable")


def move_no_clobber(src: Path, folder: Path, *, suffix_from: str | None = None) -> Path:
    """Move `src` into `folder` under its own name, or `-1`, `-2`... if taken; returns the new path.

    Across filesystems (EXDEV: separate bind mounts) it copies to a temporary name, fsyncs,
    publishes, then deletes the source: a crash leaves a duplicate, never a loss.
    """
    suffix = suffix_from if suffix_from is not None else "".join(src.suffixes[-1:])
    stem = src.name[: len(src.name) - len(suffix)] if suffix else src.name
    for name in candidates(stem, suffix):
        dest = folder / name
        if dest.exists():
            continue
        try:
            os.rename(src, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            tmp = write_temp(folder, name, lambda p: shutil.copyfile(src, p))
            if not link_no_clobber(tmp, dest):
                tmp.unlink(missing_ok=True)
                continue
            src.unlink()
        fsync_dir(folder)
        return dest
    raise AssertionError("unreachable")


def move_exact(src: Path, dest: Path) -> None:
    """Move `src` to exactly `dest`, never replacing it (FileExistsError); across file systems too."""
    try:
        if link_no_clobber(src, dest):
            return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = write_temp(dest.parent, dest.name, lambda p: shutil.copyfile(src, p))
        if link_no_clobber(tmp, dest):
            src.unlink()
            return
        remove(tmp)
    raise FileExistsError(dest)


def remove_temps(folder: Path, *, keep: set[Path] | frozenset[Path] = frozenset(),
                 older_than: float = 0.0) -> list[Path]:
    """Delete our temporary files left in `folder` by an interrupted run; returns them.

    Not those in `keep`, nor those younger than `older_than` seconds, which another process sharing the
    folder may still be writing (unless they are marked as written by this one, see `writing_as`).
    """
    removed = []
    if folder.is_dir():
        now = time.time()
        for path in folder.iterdir():
            if not is_temp(path) or not path.is_file() or path in keep:
                continue
            try:
                young = now - path.stat().st_mtime < older_than
            except OSError:
                continue
            if young and f".{_WRITER}-" not in path.name:
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
