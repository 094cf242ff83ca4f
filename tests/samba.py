"""A real Samba server for tests: Debian's ``smbd`` on 127.0.0.1 with a private config, and an smbprotocol client.

``SambaShare.serve(folder=...)`` runs ``smbd`` in the foreground on a free port, serving ``folder`` as the read/write
share ``inbox`` (user ``root``), with every state, lock, cache and log path inside a temporary directory. Files the
client writes land as plain files in ``folder``, so tests can watch them as the daemon would. On exit the client's
connections are closed (no smbprotocol threads survive) and every smbd process is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import smbclient  # type: ignore[import-untyped]
from smbprotocol.exceptions import SMBException  # type: ignore[import-untyped]

SMBD = Path("/usr/sbin/smbd")
SHARE = "inbox"
USER = "root"
PASSWORD = "inbox-test-password"


def samba_available() -> bool:
    """Whether Debian's ``smbd`` is installed (package ``samba``; it pulls in ``samba-common-bin``'s smbpasswd)."""
    return SMBD.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(state: Path, folder: Path, port: int) -> str:
    """smb.conf for one share, with every path smbd writes to inside ``state``."""
    dirs = {f"{name} {kind}": state / name for name, kind in (("private", "dir"), ("lock", "directory"),
            ("state", "directory"), ("cache", "directory"), ("pid", "directory"), ("ncalrpc", "dir"))}
    for path in dirs.values():
        path.mkdir(mode=0o700)
    options = {**dirs, "server role": "standalone server", "smb ports": port, "interfaces": "127.0.0.1",
               "bind interfaces only": "yes", "disable netbios": "yes", "disable spoolss": "yes", "load printers": "no",
               "passdb backend": f"tdbsam:{dirs['private dir']}/passdb.tdb", "server min protocol": "SMB2_10"}
    share = {"path": folder, "read only": "no", "force user": USER, "create mask": "0644"}
    return "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in section.items())
                   for name, section in (("global", options), (SHARE, share)))


def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z" and int(pgrp) == pgid:
                return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM smbd's process group (smbd forks per connection), then SIGKILL it if anything lives on after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + 5
        while (alive := _group_alive(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not alive:
            break
    process.wait(timeout=5)


@dataclass
class SambaShare:
    """A running share ``\\\\127.0.0.1\\inbox`` on ``port``, backed by ``folder``; methods act as an SMB client."""

    folder: Path
    port: int
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    @contextlib.contextmanager
    def serve(cls, folder: Path, timeout: float = 20.0) -> Iterator[SambaShare]:
        """Start smbd serving ``folder`` as share ``inbox``; yield once its port accepts connections; stop it."""
        with tempfile.TemporaryDirectory(prefix="samba-") as tmp:
            state, port = Path(tmp), _free_port()
            conf = state / "smb.conf"
            conf.write_text(_config(state, Path(folder).resolve(), port))
            subprocess.run(["/usr/bin/smbpasswd", "-c", str(conf), "-s", "-a", USER], check=True, capture_output=True,
                           input=f"{PASSWORD}\n{PASSWORD}\n".encode(), timeout=30)
            with open(state / "smbd.out", "wb") as out:
                process = subprocess.Popen([str(SMBD), "--foreground", "--no-process-group", "-s", str(conf),
                                            f"--log-basename={state}"],
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)  # its own process group, for _stop's killpg
            share = cls(Path(folder), port)
            try:
                share._wait_until_up(process, state, timeout)
                yield share
            finally:
                smbclient.reset_connection_cache(fail_on_error=False, connection_cache=share._cache)
                _stop(process)

    def _wait_until_up(self, process: subprocess.Popen[bytes], state: Path, timeout: float) -> None:
        deadline, error = time.monotonic() + timeout, "none"
        while process.poll() is None and (left := deadline - time.monotonic()) > 0:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                smbclient.register_session("127.0.0.1", USER, PASSWORD, port=self.port, auth_protocol="ntlm",
                                           connection_timeout=max(1, int(left)), connection_cache=self._cache)
                return
            except (OSError, SMBException) as exc:
                error = repr(exc)
                time.sleep(0.05)
        logs = "\n".join(p.read_text(errors="replace") for p in sorted(state.glob("*smbd*")) if p.is_file())
        raise RuntimeError(f"smbd did not serve port {self.port} (exit {process.poll()}, last error {error}):\n{logs}")

    def _path(self, name: str) -> str:
        return rf"\\127.0.0.1\{SHARE}\{name}"

    def _open(self, name: str, mode: str) -> Any:
        return smbclient.open_file(self._path(name), mode=mode, buffering=0, port=self.port,
                                   connection_cache=self._cache)

    @contextlib.contextmanager
    def open_for_write(self, name: str, mode: str = "wb") -> Iterator[SmbWriter]:
        """Open (create or truncate, for ``"wb"``) ``name`` on the share; the SMB handle stays open inside the block."""
        raw = self._open(name, mode)
        try:
            yield SmbWriter(raw)
        finally:
            raw.close()

    def upload(self, name: str, data: bytes, chunk: int = 1 << 20, pause: float = 0.0,
               create_empty_first: bool = False) -> None:
        """Write ``data`` through one SMB open, ``chunk`` bytes at a time, sleeping ``pause`` s between chunks.

        With ``create_empty_first``, first create and close an empty file, then reopen it and fill it (as ``cp``
        onto a mounted share does)."""
        if create_empty_first:
            self._open(name, "wb").close()
        with self.open_for_write(name, "r+b" if create_empty_first else "wb") as handle:
            for start in range(0, len(data), chunk):
                if start and pause:
                    time.sleep(pause)
                handle.write(data[start:start + chunk])

    def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` on the server (one SMB SET_INFO); fails if ``dst`` exists."""
        smbclient.rename(self._path(src), self._path(dst), port=self.port, connection_cache=self._cache)


class SmbWriter:
    """An open SMB file handle; ``write`` sends all of ``data`` (one or more SMB WRITE requests)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def write(self, data: bytes) -> None:
        """Write all of ``data`` at the current offset."""
        view = memoryview(data)
        while view:
            view = view[self._raw.write(view):]
