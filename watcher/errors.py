"""Errors with stable, machine-readable codes.

Three kinds, as a mail queue has them: the request is bad (fail it, keep serving), this attempt
failed (put the request back and try later), or the daemon cannot go on (exit non-zero).
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
    #: a melody or continuation file never arrived in the inbox
    missing_attachment = "missing_attachment"
    #: an attachment is not audio soundfile can read
    unreadable_audio = "unreadable_audio"
    #: the model cannot do what was asked (a melody on a non-melody model)
    unsupported_mode = "unsupported_mode"
    #: a name is not a plain file name (path separators, `..`, control characters)
    unsafe_name = "unsafe_name"
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
    #: the accelerator ran out of memory even after freeing its cache and retrying
    out_of_memory = "out_of_memory"
    #: AudioCraft raised while generating
    generation_failed = "generation_failed"
    #: the audio or sidecar could not be written (disk full, permissions, read-only)
    output_failed = "output_failed"
    #: the daemon died `engine.max_attempts` times while running this request
    crashed_repeatedly = "crashed_repeatedly"


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
    """This attempt failed for a reason outside the request: put it back and retry later."""


class OutOfMemory(TransientError):
    """The accelerator ran out of memory; the caller may retry with a smaller batch."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.out_of_memory, message)


class FatalError(Exception):
    """The daemon cannot go on (bad config, folders it cannot create, a broken install)."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
