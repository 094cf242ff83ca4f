"""Delivering results exactly once: audio, journal, final names, sidecars, then done/.

Each step leaves a state a restart can finish. Every output's audio (one, or one per take) is
written under a temporary name and fsynced; then the journal beside the claimed request records,
for each, its temporary, the names it will get and its sidecar's content. From then on the request
is never generated again: `complete` gives the temporaries their final names, writes the sidecars
that are missing and moves the request to done/, and after a crash, or a share refusing a step, it
is simply called again. Temporaries a journal names are kept at start (`Layout.remove_orphans`).
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
from .folders import Layout, journal_outputs
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


class Publisher:
    """Puts results in the outbox without ever replacing a file or showing a partial one."""

    def __init__(self, layout: Layout, faults: Faults) -> None:
        self.layout = layout
        self.faults = faults

    def deliver(self, claimed: Path, takes: list[Take]) -> dict[str, Any]:
        """Write each take under a temporary name and journal the names it gets (`output.stem`, or `stem-1`...).

        Raises OSError (disk full, permissions) with nothing left behind; once it returns, `complete` finishes.
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

    def name_outputs(self, claimed: Path, journal: dict[str, Any]) -> None:
        """Give every temporary of the journal its final name: another free one if a daemon took it meanwhile.

        A name that already is the temporary (a crash came between the link and the unlink) is kept as it is.
        """
        for entry in journal_outputs(journal):
            temp = self.layout.outbox / entry.get("temp", "")
            while "temp" in entry and temp.is_file():
                final = self.layout.outbox / entry["audio"]
                if final.exists() and final.samefile(temp):
                    files.remove(temp)
                    break
                if files.link_no_clobber(temp, final):
                    break
                folder, name = posixpath.split(entry["audio"])
                stem, suffix = posixpath.splitext(name)
                base = self._free(folder, stem, suffix.lstrip("."), set())
                entry.update(self._names(folder, base, suffix.lstrip(".")))
                entry["content"].update({"audio": f"{base}{suffix}", "output": base, "output_renamed": True})
                self.layout.write_journal(claimed, journal)  # the new name before the link that gives it

    def pending(self, claimed: Path) -> dict[str, Any] | None:
        """The journal of a delivery not finished before a crash, or None.

        A journal with an output that has neither its audio nor its temporary any more cannot be finished:
        dropped (the request is generated again).
        """
        journal = self.layout.read_journal(claimed)
        if journal is None:
            return None
        outbox = self.layout.outbox
        if not all((outbox / e["audio"]).exists() or (outbox / e.get("temp", "-")).is_file()
                   for e in journal_outputs(journal)):
            log.warning("publication_lost", request=str(claimed))
            files.remove(self.layout.journal_file(claimed))
            return None
        return journal

    def complete(self, claimed: Path, name: str, journal: dict[str, Any], attachments: Iterable[str],
                 still_needed: set[str]) -> Path:
        """Write the sidecars that are not there yet (once `name_outputs` named the audio), then move the request
        to done/; returns its new path. An OSError (a share refusing a step) leaves a state that calling
        `name_outputs` and this again finishes.
        """
        for entry in journal_outputs(journal):
            sidecar = self.layout.outbox / entry["sidecar"]
            if not sidecar.exists():
                data = (json.dumps(entry["content"], indent=2, ensure_ascii=False) + "\n").encode()
                files.publish(sidecar.parent, sidecar.name, data)
        self.faults.reach(FaultPoint.after_sidecar)
        self.faults.reach(FaultPoint.before_done_move)
        final = self.layout.finish(claimed, name, self.layout.done, attachments, still_needed)
        self.faults.reach(FaultPoint.after_done_move)
        return final
