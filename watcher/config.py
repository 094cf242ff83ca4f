"""One typed, frozen settings object.

Precedence, highest first: the command line (`--config`, `--once`...), MUSICGEN_WATCHER_<SECTION>__<KEY>
variables, the config file, a base file beneath it (the Docker image keeps its own defaults there, so a
user's file overrides them), then the defaults below.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import socket
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from . import files
from .errors import FatalCode, FatalError
from .models import DEFAULT_ALLOWED, DEFAULT_MODEL
from .options import MP3_LEVELS, OPUS_KBPS, AudioFormat, Normalize, SampleFormat
from .requests import Limits

CONFIG_ENV = "MUSICGEN_WATCHER_CONFIG"
#: a config file used only if it exists (the Docker image points it at /config/config.toml)
OPTIONAL_CONFIG_ENV = "MUSICGEN_WATCHER_CONFIG_OPTIONAL"
#: a config file beneath the user's, for a packager's defaults (the Docker image's folders.root = "/data")
BASE_CONFIG_ENV = "MUSICGEN_WATCHER_BASE_CONFIG"
ENV_PREFIX = "MUSICGEN_WATCHER_"
FOLDER_NAMES = ("inbox", "processing", "outbox", "done", "failed")

_Section = ConfigDict(extra="forbid", frozen=True)
Seconds = Annotated[float, Field(ge=0)]


class WatchMode(StrEnum):
    """How new files are noticed."""

    #: inotify where it works, else polling
    auto = "auto"
    #: kernel events (local disks)
    inotify = "inotify"
    #: look every `poll_interval` (SMB/NFS shares, Docker Desktop bind mounts)
    polling = "polling"


class FoldersConfig(BaseModel):
    model_config = _Section
    root: Path = Path("data")
    inbox: Path | None = None
    processing: Path | None = None
    outbox: Path | None = None
    done: Path | None = None
    failed: Path | None = None


class WatchConfig(BaseModel):
    model_config = _Section
    mode: WatchMode = WatchMode.auto
    poll_interval: Annotated[float, Field(gt=0)] = 1.0
    stable_seconds: Seconds = 2.0
    rescan_interval: Annotated[float, Field(gt=0)] = 30.0
    attachment_wait: Seconds = 60.0
    recursive: bool = True
    max_depth: Annotated[int, Field(ge=0, le=32)] = 4

    @property
    def depth(self) -> int:
        """How many folders deep requests are looked for: 0 when not recursive."""
        return self.max_depth if self.recursive else 0


class EngineConfig(BaseModel):
    model_config = _Section
    device: str = "auto"
    threads: Annotated[int, Field(ge=0)] = 0
    default_model: str = DEFAULT_MODEL
    allowed_models: tuple[str, ...] = DEFAULT_ALLOWED
    model_dirs: tuple[Path, ...] = ()
    max_duration: Annotated[float, Field(gt=0)] = 300.0
    max_attempts: Annotated[int, Field(ge=1)] = 3
    max_batch: Annotated[int, Field(ge=1)] = 4
    preload: bool = True
    max_skips: Annotated[int, Field(ge=0)] = 8
    idle_unload: Seconds = 0.0
    load_retry_max: Annotated[float, Field(gt=0)] = 300.0


def _mp3_bitrate(kbps: int) -> int:
    if kbps not in MP3_LEVELS:
        raise ValueError(f"MP3 bit rates are {', '.join(map(str, MP3_LEVELS))} kbps")
    return kbps


class OutputConfig(BaseModel):
    model_config = _Section
    format: AudioFormat = AudioFormat.wav
    sample_format: SampleFormat = SampleFormat.pcm16
    normalize: Normalize = Normalize.peak
    mp3_bitrate: Annotated[int, AfterValidator(_mp3_bitrate)] = 320
    opus_bitrate: Annotated[int, Field(ge=OPUS_KBPS[0], le=OPUS_KBPS[1])] = 128


class DaemonConfig(BaseModel):
    model_config = _Section
    id: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    shutdown_grace: Seconds = 20.0
    umask: Annotated[str, Field(pattern=r"^0?[0-7]{3}$")] = "022"
    heartbeat_interval: Annotated[float, Field(gt=0)] = 5.0
    heartbeat_timeout: Annotated[float, Field(gt=0)] = 120.0


class LimitsConfig(BaseModel):
    model_config = _Section
    request_bytes: Annotated[int, Field(gt=0)] = 64 * 1024
    prompt_chars: Annotated[int, Field(gt=0)] = 2000
    json_depth: Annotated[int, Field(ge=2)] = 16
    attachment_bytes: Annotated[int, Field(gt=0)] = 200 * 1024 * 1024
    attachment_seconds: Annotated[float, Field(gt=0)] = 600.0


class MetricsConfig(BaseModel):
    model_config = _Section
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    address: str = "0.0.0.0"
    textfile: Path | None = None


class HooksConfig(BaseModel):
    model_config = _Section
    on_done: str | None = None
    on_failed: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 60.0
    concurrency: Annotated[int, Field(ge=1)] = 2


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url


class NotifyConfig(BaseModel):
    model_config = _Section
    urls: tuple[Annotated[str, AfterValidator(_http_url)], ...] = ()
    secret: str | None = None
    apprise: tuple[str, ...] = ()
    timeout: Annotated[float, Field(gt=0)] = 10.0
    retries: Annotated[int, Field(ge=0)] = 8
    backoff: Annotated[float, Field(gt=0)] = 5.0


class RetentionConfig(BaseModel):
    model_config = _Section
    done_days: Seconds = 0.0
    failed_days: Seconds = 0.0
    outbox_days: Seconds = 0.0
    interval: Annotated[float, Field(gt=0)] = 3600.0

    @property
    def enabled(self) -> bool:
        return bool(self.done_days or self.failed_days or self.outbox_days)


class WebConfig(BaseModel):
    model_config = _Section
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    token: Annotated[str, Field(min_length=16)] | None = None
    max_upload_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the console."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


class Settings(BaseSettings):
    """Every key, with its default; `config.example.toml` documents each."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid", frozen=True)

    folders: FoldersConfig = FoldersConfig()
    watch: WatchConfig = WatchConfig()
    engine: EngineConfig = EngineConfig()
    output: OutputConfig = OutputConfig()
    daemon: DaemonConfig = DaemonConfig()
    limits: LimitsConfig = LimitsConfig()
    metrics: MetricsConfig = MetricsConfig()
    hooks: HooksConfig = HooksConfig()
    web: WebConfig = WebConfig()
    notify: NotifyConfig = NotifyConfig()
    retention: RetentionConfig = RetentionConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, deep_merge=True))

    def folder(self, name: str) -> Path:
        """The path of `inbox`, `processing`, `outbox`, `done` or `failed`."""
        own: Path | None = getattr(self.folders, name)
        return own if own is not None else self.folders.root / name

    @property
    def request_limits(self) -> Limits:
        return Limits(max_duration=self.engine.max_duration, request_bytes=self.limits.request_bytes,
                      prompt_chars=self.limits.prompt_chars, json_depth=self.limits.json_depth)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write a config file from {section: {key: value}}; values are strings, numbers, booleans or lists.

    tomllib only reads, so this writes the small subset a config needs: JSON's scalars and arrays are
    valid TOML values.
    """
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    files.replace_atomic(path, ("\n".join(lines) + "\n").encode())
    return path


def load_settings(path: Path | None = None) -> Settings:
    """Read the TOML files (`--config`, else $MUSICGEN_WATCHER_CONFIG, else none) and the environment.

    The NAS-style `UMASK` variable is honoured as `daemon.umask` unless that is set explicitly.

    Raises FatalError (invalid_config, exit code 2) naming every key that is wrong, not only the first.
    """
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    if path is None and os.environ.get(OPTIONAL_CONFIG_ENV):
        optional = Path(os.environ[OPTIONAL_CONFIG_ENV])
        path = optional if optional.is_file() else None
    if path is not None and not path.is_file():
        raise FatalError(FatalCode.invalid_config, f"config file {path} does not exist")
    base = os.environ.get(BASE_CONFIG_ENV)
    toml_files = [Path(p) for p in (base, path) if p and Path(p).is_file()]

    class FromFiles(Settings):
        model_config = SettingsConfigDict(toml_file=toml_files)

    overrides: dict[str, object] = {}
    if os.environ.get("UMASK") and not os.environ.get(f"{ENV_PREFIX}DAEMON__UMASK"):
        overrides["daemon"] = {"umask": os.environ["UMASK"]}
    try:
        settings = FromFiles.model_validate(overrides)
    except tomllib.TOMLDecodeError as exc:
        raise FatalError(FatalCode.invalid_config, f"config file {path} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise FatalError(FatalCode.invalid_config, "invalid config: " + "; ".join(
            _describe(err) for err in exc.errors(include_url=False))) from None
    problems = overlapping_folders(settings)
    if settings.web.enabled and not settings.web.loopback and not settings.web.token:
        problems.append(f"web.host {settings.web.host} reaches beyond this machine: set web.token "
                        f"(or {ENV_PREFIX}WEB__TOKEN), at least 16 characters")
    if problems:
        raise FatalError(FatalCode.invalid_config, "invalid config: " + "; ".join(problems))
    return settings


def _describe(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key {key}"
    return f"{key}: {err['msg']} (got {err.get('input')!r})"


def overlapping_folders(settings: Settings) -> list[str]:
    """Folders that are the same as, or inside, another: an outbox equal to the inbox would feed sidecars back in."""
    paths = {name: settings.folder(name).expanduser().absolute() for name in FOLDER_NAMES}
    problems = []
    for first, second in itertools.permutations(FOLDER_NAMES, 2):
        a, b = paths[first], paths[second]
        if a == b and first < second:
            problems.append(f"folders.{first} and folders.{second} are the same folder ({a})")
        elif a != b and a.is_relative_to(b):
            problems.append(f"folders.{first} ({a}) is inside folders.{second} ({b})")
    return problems
