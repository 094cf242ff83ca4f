"""What the files in the inbox are: requests, presets, attachments or junk, and what a request is called.

A file is named by its path relative to the inbox, with `/` between folders (`trailers/intro.json`).
Its request id is that path without the extension (`trailers/intro`): the same relative folder holds
its output in the outbox and its request in done/ or failed/.
"""

from __future__ import annotations

import posixpath

#: the request files: a JSON object of fields, a text file whose text is the prompt, a batch of one a line
REQUEST_SUFFIXES = (".json", ".txt", ".jsonl")
#: a folder's default request fields, for the requests in it and below it
PRESET_NAME = "defaults.json"
_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_JUNK_SUFFIXES = (".tmp", ".part", "~")


def is_tracked_part(part: str) -> bool:
    """Whether one folder or file name can hold work: not hidden, temporary or system junk (`@eaDir`)."""
    lowered = part.lower()
    return bool(part) and not part.startswith((".", "@")) and lowered not in _JUNK_NAMES \
        and not lowered.endswith(_JUNK_SUFFIXES)


def is_tracked_name(name: str) -> bool:
    """Whether a file in the inbox can be a request, a preset or an attachment."""
    return all(is_tracked_part(part) for part in name.split("/"))


#: names the daemon writes itself beside requests, never requests: status files and error files
_OURS = (".status.json", ".error.json")


def is_request_name(name: str) -> bool:
    """Whether a file in the inbox is a request: a tracked `*.json`, `*.txt` or `*.jsonl`, not a preset or ours."""
    base = posixpath.basename(name).lower()
    return base.endswith(REQUEST_SUFFIXES) and base != PRESET_NAME and not base.endswith(_OURS) \
        and is_tracked_name(name)


def request_id(name: str) -> str:
    """`trailers/intro.json` -> `trailers/intro`."""
    return posixpath.splitext(name)[0]


def beside(name: str, other: str) -> str:
    """The name of `other` (a plain file name) in the folder of `name`: an attachment beside its request."""
    return posixpath.join(posixpath.dirname(name), other)
