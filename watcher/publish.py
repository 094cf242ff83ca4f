"""Delivering a result exactly once: audio, journal, final names, sidecar, then done/.

Each step leaves a state a restart can finish: the audio is written under a temporary name and
fsynced; the names it will get, and the sidecar's content, are journaled beside the claimed
request; only then does the audio get its final name. After a crash, a journal whose audio is out
means "finish": write the sidecar if missing and move the request to done/, never generate again.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import files
from .audio import Audio, write_temp_audio
from .faults import FaultPoint, Faults
from .folders import Layout
from .intake import Output

#: builds the sidecar for the chosen base name
SidecarFor = Callable[[str], dict[str, Any]]


class Publisher:
    """Puts results in the outbox without ever replacing a file or showing a partial one."""

    def __init__(self, layout: Layout, faults: Faults) -> None:
        self.layout = layout
        self.faults = faults

    def deliver(self, claimed: Path, audio: Audio, output: Output, sidecar_for: SidecarFor) -> dict[str, Any]:
        """Publish the audio under `output.stem` (or `stem-1`...), journaled; returns the journal.

        Raises OSError (disk full, permissions) with nothing partial left behind.
        """
        stem, fmt = output.stem, output.format
        outbox = self.layout.outbox / output.folder
        outbox.mkdir(parents=True, exist_ok=True)
        tmp = write_temp_audio(audio, outbox, f"{stem}.{fmt.value}", fmt, output.sample_format, output.level)
        self.faults.reach(FaultPoint.after_audio_temp)
        try:
            while True:  # another daemon may take the name between choosing and linking it
                base = files.free_stem(outbox, stem, (f".{fmt.value}", ".json"))
                audio_name = f"{base}.{fmt.value}"
                journal = {"audio": posixpath.join(output.folder, audio_name),
                           "sidecar": posixpath.join(output.folder, f"{base}.json"), "content": sidecar_for(base)}
                self.layout.write_journal(claimed, journal)
                if files.link_no_clobber(tmp, outbox / audio_name):
                    break
        except OSError:
            files.remove(tmp)
            files.remove(self.layout.journal_file(claimed))
            raise
        self.faults.reach(FaultPoint.after_audio_publish)
        return journal

    def pending(self, claimed: Path) -> dict[str, Any] | None:
        """The journal of a delivery whose audio is out but whose request is not in done/ yet.

        A journal without its audio is stale (the crash came before the final name): dropped.
        """
        journal = self.layout.read_journal(claimed)
        if journal is not None and not (self.layout.outbox / journal["audio"]).exists():
            files.remove(self.layout.journal_file(claimed))
            return None
        return journal

    def complete(self, claimed: Path, name: str, journal: dict[str, Any], attachments: Iterable[str],
                 still_needed: set[str]) -> Path:
        """Write the sidecar unless it is there, then move the request to done/; returns its new path."""
        sidecar = self.layout.outbox / journal["sidecar"]
        if not sidecar.exists():
            data = (json.dumps(journal["content"], indent=2, ensure_ascii=False) + "\n").encode()
            files.publish(sidecar.parent, sidecar.name, data)
        self.faults.reach(FaultPoint.after_sidecar)
        self.faults.reach(FaultPoint.before_done_move)
        final = self.layout.finish(claimed, name, self.layout.done, attachments, still_needed)
        self.faults.reach(FaultPoint.after_done_move)
        return final
