"""A `.jsonl` file: a batch of requests, one a line, each succeeding or failing on its own.

Claimed like any request, the file is expanded: each non-empty line becomes a request file beside it
in the inbox, named by its `output` or `<file>-<line number>`, under a name no request of that folder
has had, so where it ends tells how it went. The names are recorded beside the claimed file first,
so expanding again after a crash writes only the lines still missing. The file stays claimed until
every line has ended, then moves to done/ with a summary in the outbox (`<file>.batch.json`), or to
failed/ with the summary as its error when every line failed. Lines run by another daemon on the
share count as well: only the folders are asked.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from . import files
from .about import now_iso, versions
from .errors import ErrorCode, RequestError
from .folders import Layout
from .intake import Claimed
from .names import is_request_name, request_id
from .requests import is_plain

log = structlog.get_logger("watcher.jsonl")

#: a batch file holds at most this many lines
MAX_LINES = 10_000
#: how often the held batches are checked (seconds)
_CHECK_EVERY = 1.0


def is_batch_name(name: str) -> bool:
    return name.lower().endswith(".jsonl")


@dataclass
class _Held:
    claimed: Claimed
    lines: list[dict[str, Any]]


class BatchFiles:
    """The `.jsonl` files this daemon holds, expanded, until their lines have ended."""

    def __init__(self, layout: Layout, request_bytes: int) -> None:
        self.layout = layout
        self.request_bytes = request_bytes
        self._held: dict[str, _Held] = {}
        self._checked = 0.0

    def __bool__(self) -> bool:
        return bool(self._held)

    def expand(self, claimed: Claimed) -> None:
        """Write the batch's lines into the inbox as requests (those not written yet), and hold it.

        Raises RequestError when the file is not a batch that can be expanded (too large, not UTF-8).
        """
        record = self._record(claimed)
        lines = self._read_record(record)
        if lines is None:
            lines = self._plan(claimed)
            files.replace_atomic(record, json.dumps({"lines": lines}).encode())
        folder = posixpath.dirname(claimed.name)
        for line in lines:
            if not line.get("ended") and self._state(folder, line["name"]) is None:
                with contextlib.suppress(FileExistsError):  # another writer took the name meanwhile: it is there
                    files.publish(self.layout.inbox / folder, line["name"], line["data"].encode())
            line.pop("data", None)
        self._held[claimed.name] = _Held(claimed, lines)
        log.info("batch_expanded", request_id=claimed.request_id, lines=len(lines))

    def finished(self) -> list[tuple[Claimed, dict[str, Any]]]:
        """The held batches whose every line has ended, with their summaries (checked at most once a second)."""
        now = time.monotonic()
        if not self._held or now - self._checked < _CHECK_EVERY:
            return []
        self._checked = now
        out = []
        for name, held in self._held.items():
            folder = posixpath.dirname(name)
            seen = False
            for line in held.lines:  # an outcome, once seen, is kept: retention or a delete may take its file
                state = line.get("ended") or self._state(folder, line["name"])
                if state in ("done", "failed") and not line.get("ended"):
                    line["ended"], seen = state, True
            if seen:
                files.replace_atomic(self._record(held.claimed), json.dumps({"lines": held.lines}).encode())
            states = [line.get("ended") for line in held.lines]
            if all(states):
                out.append((held.claimed, self._summary(held, states)))
        return out

    def forget(self, claimed: Claimed) -> None:
        """Stop holding a batch that has been moved out of processing/."""
        self._held.pop(claimed.name, None)

    def _record(self, claimed: Claimed) -> Path:
        return claimed.path.with_name(f".{claimed.path.name}.lines")

    @staticmethod
    def _read_record(record: Path) -> list[dict[str, Any]] | None:
        try:
            lines: list[dict[str, Any]] = json.loads(record.read_bytes())["lines"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return lines

    def _plan(self, claimed: Claimed) -> list[dict[str, Any]]:
        """Each non-empty line's number, its request's file name, and its text."""
        numbered = lines_of(claimed.path.read_bytes(), self.request_bytes)
        folder, stem = posixpath.split(request_id(claimed.name))
        taken: set[str] = set()
        return [{"line": n, "name": self._free_name(folder, line_stem(line, f"{stem}-{n}"), taken), "data": line}
                for n, line in numbered]

    def _free_name(self, folder: str, stem: str, taken: set[str]) -> str:
        """A request file name no request of `folder` has had: not in the inbox, processing/, done/ or failed/."""
        for candidate in files.candidates(stem, ".json"):
            if candidate not in taken and self._state(folder, candidate) is None:
                taken.add(candidate)
                return candidate
        raise AssertionError("unreachable")

    def _state(self, folder: str, name: str) -> str | None:
        """Where a line's request is: done, failed, waiting or running; None when it is nowhere."""
        layout = self.layout
        if (layout.done / folder / name).exists():
            return "done"
        if (layout.failed / folder / name).exists():
            return "failed"
        if (layout.inbox / folder / name).exists():
            return "waiting"
        if any((d / folder / name).exists() for d in layout.processing.iterdir() if d.is_dir()):
            return "running"
        return None

    def _summary(self, held: _Held, states: list[str | None]) -> dict[str, Any]:
        failed = sum(state == "failed" for state in states)
        lines = [{"line": line["line"], "request_id": request_id(posixpath.join(
            posixpath.dirname(held.claimed.name), line["name"])), "status": state}
            for line, state in zip(held.lines, states, strict=True)]
        summary: dict[str, Any] = {"status": "failed" if failed == len(states) else "done",
                                   "request_id": held.claimed.request_id, "lines": lines,
                                   "done": len(states) - failed, "failed": failed, "finished_at": now_iso(),
                                   "versions": versions()}
        if failed == len(states):
            summary["error"] = RequestError(ErrorCode.batch_failed, f"Every one of its {failed} lines failed; "
                                            "each line's error is beside it in failed/.").as_dict()
        return summary


def lines_of(data: bytes, request_bytes: int) -> list[tuple[int, str]]:
    """A batch file's non-empty lines with their numbers; a RequestError when it is no batch that can be run."""
    if len(data) > request_bytes * MAX_LINES:
        raise RequestError(ErrorCode.request_too_large, f"The batch file is {len(data)} bytes; at most "
                           f"{request_bytes * MAX_LINES} are allowed.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(ErrorCode.invalid_json, f"The batch file is not valid UTF-8 (byte {exc.start}); "
                           "save it as UTF-8.") from None
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(numbered) > MAX_LINES:
        raise RequestError(ErrorCode.request_too_large, f"The batch file has {len(numbered)} lines; at most "
                           f"{MAX_LINES} are allowed.")
    if not numbered:
        raise RequestError(ErrorCode.invalid_json, "The batch file has no lines; each line is one request.")
    return numbered


def line_stem(line: str, fallback: str) -> str:
    """A line's request is named by its `output`, when that is a plain name a request file can have."""
    try:
        value = json.loads(line)
    except ValueError:  # a broken line: it fails on its own, under its number
        return fallback
    output = value.get("output") if isinstance(value, dict) else None
    if isinstance(output, str) and is_plain(output) and is_request_name(f"{output}.json"):
        return output
    return fallback
