"""Errors with stable, machine-readable codes.

Three kinds, as a mail queue has them:

- `RequestError`: this request is bad. It is **final**: the request goes to `failed/` beside its
  error, and the daemon keeps serving.
- `TransientError`: this attempt failed for a reason outside the request. It is **retried**: the
  request stays claimed and is tried again later (`model_unavailable`; `output_failed` while
  finishing a publication; `out_of_memory` first halves the batch, and becomes final only after
  the retry alone also ran out).
- `FatalError`: the daemon cannot go on (bad config, its folders gone, a broken install). It
  stops with a non-zero exit code and its own `FatalCode`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The codes written to `failed/<name>.error.json` and the log."""

    #: the file is not UTF-8 JSON holding one object
    invalid_json = "invalid_json"
    #: a field is missing, mistyped, out of range or unknown
    invalid_request = "invalid_request"
    #: the model id is neither in the catalog nor a model folder
    unknown_model = "unknown_model"
    #: the model exists but `engine.allowed_models` / `engine.model_dirs` refuse it
    model_not_allowed = "model_not_allowed"
    #: a melody or continuation file never arrived, or was still being written, within `watch.attachment_wait`
    missing_attachment = "missing_attachment"
    #: an attachment is not audio soundfile can read
    unreadable_audio = "unreadable_audio"
    #: the model cannot do what was asked (a melody on a non-melody model)
    unsupported_mode = "unsupported_mode"
    #: a name is not a plain file name (path separators, `..`, control characters), or links outside the inbox
    unsafe_name = "unsafe_name"
    #: a `defaults.json` the request's folder (or one above it) holds is broken; the message names it
    invalid_preset = "invalid_preset"
    #: the request file is larger than `limits.request_bytes`
    request_too_large = "request_too_large"
    #: the prompt is longer than `limits.prompt_chars`
    prompt_too_long = "prompt_too_long"
    #: an attachment is larger than `limits.attachment_bytes` or `limits.attachment_seconds`
    attachment_too_large = "attachment_too_large"
    #: the JSON nests deeper than `limits.json_depth`
    json_too_deep = "json_too_deep"
    #: the model's checkpoint could not be loaded
    model_load_failed = "model_load_failed"
    #: the model could not be fetched (no network, hub error); retried, never final
    model_unavailable = "model_unavailable"
    #: the accelerator ran out of memory even after freeing its cache, halving the batch and retrying alone
    out_of_memory = "out_of_memory"
    #: AudioCraft raised while generating
    generation_failed = "generation_failed"
    #: the audio or sidecar could not be written (disk full, permissions, read-only)
    output_failed = "output_failed"
    #: the daemon died `engine.max_attempts` times while running this request
    crashed_repeatedly = "crashed_repeatedly"
    #: every line of a `.jsonl` batch failed (each line's own error is beside it)
    batch_failed = "batch_failed"


class WatcherError(Exception):
    """Base class: a code, a sentence for a person, and the request field it concerns."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, str]:
        """The `error` object of an error sidecar."""
        out = {"code": self.code.value, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class RequestError(WatcherError):
    """This request is bad: fail it at once, never retry, keep serving."""


class TransientError(WatcherError):
    """This attempt failed for a reason outside the request: keep it claimed and retry later."""


class OutOfMemory(TransientError):
    """The accelerator ran out of memory; the caller may retry with a smaller batch."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.out_of_memory, message)


class NotArrived(TransientError):
    """An attachment is still being written: read it again shortly (until `watch.attachment_wait` ends)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(ErrorCode.missing_attachment, message, field=field)


class FatalCode(StrEnum):
    """Why the daemon stopped; printed as `error: <code>: <message>`."""

    #: the config file or a MUSICGEN_WATCHER_* variable is invalid (exit 2)
    invalid_config = "invalid_config"
    #: a folder of the daemon's cannot be created, read or written, or has gone (exit 1)
    folder_unusable = "folder_unusable"
    #: another daemon with the same daemon.id runs, on this host or another (exit 1)
    already_running = "already_running"
    #: another daemon took this daemon's id over while it ran (exit 1)
    lost_ownership = "lost_ownership"
    #: the engine could not start: a broken install, driver or device (exit 1)
    engine_failed = "engine_failed"
    #: the metrics or web console port cannot be served (exit 1)
    port_unavailable = "port_unavailable"


class FatalError(Exception):
    """The daemon cannot go on: exit 2 for a configuration error, 1 for anything else."""

    def __init__(self, code: FatalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def exit_code(self) -> int:
        return 2 if self.code is FatalCode.invalid_config else 1
