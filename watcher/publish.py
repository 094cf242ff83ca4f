"""Delivering results exactly once: audio, journal, final names, sidecars, then done/.

Each step leaves a state a restart can finish. Every output's audio (one, or one per take) is
written under a temporary name and fsynced; then the journal beside the claimed request records,
for each, its temporary, the names it will get and its sidecar's content; only then do the
temporaries get their final names. After a crash, a journal means "finish": give the temporaries
still there their names, write the sidecars that are missing, move the request to done/. It is
never generated again. Temporaries a journal names are kept at start (`Layout.remove_orphans`).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from . import files
from .audio import Audio, write_temp_audio
from .faults import FaultPoint, Faults
from .folders import Layout
from .intake import Output

log = structlog.get_logger("watcher.publish")

#: builds the sidecar for the chosen base name
SidecarFor = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class Take:
    """One output of a request: its audio as written, how it is written, and the sidecar for a name."""

    audio: Audio
    output: Output
    sidecar_for: SidecarFor


def outputs(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """A journal's outputs (a journal of before takes held one output, unnamed)."""
    found: list[dict[str, Any]] = journal.get("outputs") or [journal]
    return found


class Publisher:
    """Puts results in the outbox without ever replacing a file or showing a partial one."""

    def __init__(self, layout: Layout, faults: Faults) -> None:
        self.layout = layout
        self.faults = faults

    def deliver(self, claimed: Path, takes: list[Take]) -> dict[str, Any]:
        """Publish each take under its `output.stem` (or `stem-1`...), journaled; returns the journal.

        Raises OSError (disk full, permissions) with nothing partial left behind.
        """
        temps: list[Path] = []
        try:
            for take in takes:
                out, fmt = take.output, take.output.format
                folder = self.layout.outbox / out.folder
                folder.mkdir(parents=True, exist_ok=True)
                temps.append(write_temp_audio(take.audio, folder, f"{out.stem}.{fmt.value}", fmt, out.sample_format,
                                              out.level))
            self.faults.reach(FaultPoint.after_audio_temp)
            entries: list[dict[str, Any]] = []
            chosen: set[str] = set()
            for take, temp in zip(takes, temps, strict=True):
                base = self._free(take.output.folder, take.output.stem, take.output.format.value, chosen)
                entries.append({**self._names(take.output.folder, base, take.output.format.value),
                                "temp": posixpath.join(take.output.folder, temp.name),
                                "content": take.sidecar_for(base)})
            journal = {"outputs": entries}
            self.layout.write_journal(claimed, journal)
        except OSError:
            for temp in temps:
                files.remove(temp)
            raise
        self._link(claimed, journal)
        self.faults.reach(FaultPoint.after_audio_publish)
        return journal

    def _free(self, folder: str, stem: str, suffix: str, chosen: set[str]) -> str:
        """A base name free in the outbox folder and not chosen for another take of this request."""
        for base in files.candidates(stem, ""):
            taken = any((self.layout.outbox / folder / f"{base}{s}").exists() for s in (f".{suffix}", ".json"))
            if not taken and base not in chosen:
                chosen.add(base)
                return base
        raise AssertionError("unreachable")

    @staticmethod
    def _names(folder: str, base: str, suffix: str) -> dict[str, str]:
        return {"audio": posixpath.join(folder, f"{base}.{suffix}"), "sidecar": posixpath.join(folder, f"{base}.json")}

    def _link(self, claimed: Path, journal: dict[str, Any]) -> None:
        """Give every temporary of the journal its final name: another free one if a daemon took it meanwhile."""
        renamed = False
        for entry in outputs(journal):
            temp = self.layout.outbox / entry.get("temp", "")
            while "temp" in entry and temp.is_file():
                if files.link_no_clobber(temp, self.layout.outbox / entry["audio"]):
                    break
                folder, name = posixpath.split(entry["audio"])
                stem, suffix = posixpath.splitext(name)
                base = self._free(folder, stem, suffix.lstrip("."), set())
                entry.update(self._names(folder, base, suffix.lstrip(".")))
                entry["content"].update({"audio": f"{base}{suffix}", "output": base, "output_renamed": True})
                renamed = True
        if renamed:
            self.layout.write_journal(claimed, journal)

    def pending(self, claimed: Path) -> dict[str, Any] | None:
        """The journal of a delivery not finished before a crash, its temporaries now named; or None.

        A journal whose output has neither its audio nor its temporary any more cannot be finished: dropped
        (the request is generated again).
        """
        journal = self.layout.read_journal(claimed)
        if journal is None:
            return None
        self._link(claimed, journal)
        if not all((self.layout.outbox / entry["audio"]).exists() for entry in outputs(journal)):
            log.warning("publication_lost", request=str(claimed))
            files.remove(self.layout.journal_file(claimed))
            return None
        return journal

    def complete(self, claimed: Path, name: str, journal: dict[str, Any], attachments: Iterable[str],
                 still_needed: set[str]) -> Path:
        """Write the sidecars that are not there yet, then move the request to done/; returns its new path."""
        for entry in outputs(journal):
            sidecar = self.layout.outbox / entry["sidecar"]
            if not sidecar.exists():
                data = (json.dumps(entry["content"], indent=2, ensure_ascii=False) + "\n").encode()
                files.publish(sidecar.parent, sidecar.name, data)
        self.faults.reach(FaultPoint.after_sidecar)
        self.faults.reach(FaultPoint.before_done_move)
        final = self.layout.finish(claimed, name, self.layout.done, attachments, still_needed)
        self.faults.reach(FaultPoint.after_done_move)
        return final
