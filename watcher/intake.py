"""A request from its file to a job: the one check that every entry point makes.

`check` decodes and validates a request file's bytes, resolves its model against the allow-list and
refuses what the model cannot do. `prepare` adds the attachments: found beside the request, never
through a link leading out of that folder, complete by the rule in `completeness`, read once,
measured and hashed. The daemon, `validate`, `submit`, the one-shot CLI and the web console all call
these, so they never give different verdicts on one request.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .audio import Audio, decode_audio, read_bytes
from .config import OutputConfig, Settings
from .errors import ErrorCode, NotArrived, RequestError, WatcherError
from .jobs import Job, check_continuation
from .models import DEFAULT_ALLOWED, DEFAULT_MODEL, ResolvedModel, resolve_model
from .names import request_id
from .options import AudioFormat, Normalize, SampleFormat, compression_level
from .presets import Preset, merged
from .requests import Limits, Request, attachments_of, decode_file, validate_request


@dataclass(frozen=True)
class Policy:
    """What a request may ask for, and what it gets when it does not say."""

    limits: Limits = Limits()
    default_model: str = DEFAULT_MODEL
    allowed_models: tuple[str, ...] = DEFAULT_ALLOWED
    model_dirs: tuple[Path, ...] = ()
    attachment_bytes: int | None = None
    attachment_seconds: float | None = None
    output: OutputConfig = field(default_factory=OutputConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        engine, limits = settings.engine, settings.limits
        return cls(settings.request_limits, engine.default_model, engine.allowed_models, engine.model_dirs,
                   limits.attachment_bytes, limits.attachment_seconds, settings.output)

    def resolve(self, requested: str | None) -> ResolvedModel:
        """The model a request gets: its own or the default, if the allow-list lets it."""
        return resolve_model(requested or self.default_model, allowed=self.allowed_models,
                             model_dirs=self.model_dirs)


@dataclass(frozen=True)
class Checked:
    """A request file's fields as received, validated over its presets, with the model it will run on."""

    received: dict[str, Any]
    request: Request
    model: ResolvedModel
    #: the presets that gave it defaults, outermost first (names relative to the inbox)
    presets: tuple[str, ...] = ()


def check(data: bytes, name: str, policy: Policy, presets: tuple[Preset, ...] = ()) -> Checked:
    """Everything that can be said of a request from its own bytes and its presets: fields, model, mode.

    `name` is the request file's name (`*.json` or `*.txt`, relative to the inbox).
    """
    return check_fields(decode_file(data, name, policy.limits), policy, presets)


def check_fields(received: dict[str, Any], policy: Policy, presets: tuple[Preset, ...] = ()) -> Checked:
    """`check` for a request already decoded."""
    request = validate_request(merged(presets, received), policy.limits)
    model = policy.resolve(request.model)
    if request.melody is not None:
        model.check_melody()
    Output.of(request, "", policy.output)  # a bit rate the format takes
    return Checked(received, request, model, tuple(p.name for p in presets))


@dataclass(frozen=True)
class Output:
    """Where and how the audio is written: the request's choices, else the configured defaults."""

    stem: str
    format: AudioFormat
    sample_format: SampleFormat
    normalize: Normalize
    #: kbps for mp3 and opus; None for the others
    bitrate: int | None = None
    #: the outbox's subfolder, the request's own relative to the inbox ("" at the top)
    folder: str = ""

    @classmethod
    def of(cls, request: Request, name: str, defaults: OutputConfig) -> Output:
        """Raises RequestError for a bit rate the format does not take."""
        fmt = request.format or defaults.format
        bitrate = request.bitrate
        if fmt is AudioFormat.mp3:
            bitrate = bitrate or defaults.mp3_bitrate
        elif fmt is AudioFormat.opus:
            bitrate = bitrate or defaults.opus_bitrate
        if bitrate is not None:
            compression_level(fmt, bitrate)
        stem = posixpath.basename(request_id(name))
        return cls(request.output or stem, fmt, request.sample_format or defaults.sample_format,
                   request.normalize or defaults.normalize, bitrate, posixpath.dirname(name))

    @property
    def level(self) -> float | None:
        """libsndfile's compression level for the bit rate."""
        return None if self.bitrate is None else compression_level(self.format, self.bitrate)


@dataclass(frozen=True)
class Attachment:
    """An attachment as it was read: what the sidecar records, so a user can tell which file was used."""

    field: str
    name: str
    audio: Audio
    sha256: str
    bytes: int

    def record(self) -> dict[str, Any]:
        audio = self.audio
        return {"field": self.field, "name": self.name, "sha256": self.sha256, "bytes": self.bytes,
                "sample_rate": audio.sample_rate, "channels": audio.channels, "frames": audio.frames,
                "seconds": round(audio.seconds, 6)}


class Attachments(Protocol):
    """Where a request's attachments are found."""

    def locate(self, field: str, name: str) -> Path:
        """The file to read, or a RequestError (missing, unsafe) or NotArrived (still being written)."""
        ...


def _present(path: Path) -> bool:
    return True


@dataclass(frozen=True)
class Beside:
    """Attachments named in the request, in the request's own folder (the inbox, for the daemon).

    `complete` is the daemon's rule; an incomplete attachment is waited for until `deadline`
    (time.monotonic()), then fails the request.
    """

    folder: Path
    complete: Callable[[Path], bool] = _present
    deadline: float = 0.0
    wait: float = 0.0

    def locate(self, field: str, name: str) -> Path:
        path = self.folder / name
        if not os.path.lexists(path):
            raise RequestError(ErrorCode.missing_attachment,
                               f"The {field} file {name} is not beside the request; put it in the same folder.",
                               field=field)
        if path.is_symlink() and not path.resolve().is_relative_to(self.folder.resolve()):
            raise RequestError(ErrorCode.unsafe_name,
                               f"The {field} file {name} is a link leading outside the request's folder; "
                               "it was refused.", field=field)
        if not self.complete(path):
            if time.monotonic() < self.deadline:
                raise NotArrived(f"The {field} file {name} is still being written.", field=field)
            raise RequestError(ErrorCode.missing_attachment,
                               f"The {field} file {name} was still being written {self.wait:g} s after the "
                               "request arrived (watch.attachment_wait).", field=field)
        return path


@dataclass(frozen=True)
class Given:
    """Attachments given as paths on the command line (the one-shot CLI's `--melody FILE`); others beside."""

    paths: dict[str, Path]
    beside: Beside

    def locate(self, field: str, name: str) -> Path:
        path = self.paths.get(field)
        if path is None:
            return self.beside.locate(field, name)
        if not path.exists():
            raise RequestError(ErrorCode.missing_attachment, f"The {field} file {path} does not exist.", field=field)
        return path


@dataclass(frozen=True)
class Prepared:
    """A request ready for the engine: checked, its attachments read, its output decided."""

    checked: Checked
    job: Job
    attachments: tuple[Attachment, ...]
    output: Output

    @property
    def request(self) -> Request:
        return self.checked.request

    @property
    def model(self) -> ResolvedModel:
        return self.checked.model


def prepare(data: bytes, name: str, policy: Policy, attachments: Attachments,
            presets: tuple[Preset, ...] = ()) -> Prepared:
    """`check`, then find, wait for and read the attachments, and decide the output."""
    checked = check(data, name, policy, presets)
    request = checked.request
    read: dict[str, Attachment] = {}
    for field_name, value in (("melody", request.melody), ("continuation", request.continuation)):
        if value is not None:
            read[field_name] = _read(field_name, value, attachments.locate(field_name, value), policy)
    job = Job(prompt=request.prompt, melody=read["melody"].audio if "melody" in read else None,
              continuation=read["continuation"].audio if "continuation" in read else None)
    if job.continuation is not None:
        check_continuation(job.continuation, request.duration)  # the model's window is checked once loaded
    return Prepared(checked, job, tuple(read.values()), Output.of(request, name, policy.output))


def _read(field: str, name: str, path: Path, policy: Policy) -> Attachment:
    try:
        data = read_bytes(path, field=field, max_bytes=policy.attachment_bytes)
    except FileNotFoundError:
        raise RequestError(ErrorCode.missing_attachment, f"The {field} file {name} went away before it was read.",
                           field=field) from None
    except OSError as exc:
        raise RequestError(ErrorCode.unreadable_audio, f"{name} cannot be read: {exc.strerror or exc}.",
                           field=field) from None
    audio = decode_audio(data, name, field=field, max_seconds=policy.attachment_seconds)
    return Attachment(field, name, audio, hashlib.sha256(data).hexdigest(), len(data))


@dataclass
class Claimed:
    """A request this daemon holds in processing/<id>/, on its way to done/ or failed/."""

    path: Path
    #: its name relative to the inbox (and to processing/<id>/): `trailers/intro.json`
    name: str
    #: the request file's mtime while it waited (time.time())
    queued_at: float
    attempt: int
    #: time.monotonic() when it was complete in the inbox; attachments may arrive until then + attachment_wait
    ready_at: float = field(default_factory=time.monotonic)
    prepared: Prepared | None = None

    @property
    def request_id(self) -> str:
        return request_id(self.name)

    def received(self, limits: Limits) -> dict[str, Any]:
        """The request's fields as far as they can be decoded, even when it is otherwise invalid."""
        if self.prepared is not None:
            return self.prepared.checked.received
        try:
            return decode_file(self.path.read_bytes(), self.name, limits)
        except (WatcherError, OSError):
            return {}

    def attachment_names(self, limits: Limits) -> tuple[str, ...]:
        """The files beside it this request refers to (its presets' too, once prepared), even when it is invalid."""
        if self.prepared is not None:
            return self.prepared.request.attachments
        return attachments_of(self.received(limits))
