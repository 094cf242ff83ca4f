"""The model catalog, the old CLI's aliases, and the one place that decides what may be loaded."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ErrorCode, RequestError

#: allow-list entry that admits any hub id or model folder (checkpoints are pickles: this runs their code)
ANY_MODEL = "*"

#: the files AudioCraft's loader reads from a local model folder
MODEL_FOLDER_FILES = ("state_dict.bin", "compression_state_dict.bin")

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelInfo:
    """What an official MusicGen checkpoint can do."""

    id: str
    parameters: str
    channels: int
    melody: bool
    vram_gb: int

    def describe(self) -> str:
        """One catalog line."""
        mode = "text+melody" if self.melody else "text"
        layout = "stereo" if self.channels == 2 else "mono"
        return f"{self.id:40} {self.parameters:>5}  {layout:6}  {mode:11}  ~{self.vram_gb} GB VRAM"


def _entry(name: str, parameters: str, channels: int, melody: bool, vram_gb: int) -> ModelInfo:
    return ModelInfo(f"facebook/musicgen-{name}", parameters, channels, melody, vram_gb)


CATALOG: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        _entry("small", "300M", 1, False, 4),
        _entry("medium", "1.5B", 1, False, 8),
        _entry("large", "3.3B", 1, False, 16),
        _entry("melody", "1.5B", 1, True, 8),
        _entry("melody-large", "3.3B", 1, True, 16),
        _entry("stereo-small", "300M", 2, False, 4),
        _entry("stereo-medium", "1.5B", 2, False, 8),
        _entry("stereo-large", "3.3B", 2, False, 16),
        _entry("stereo-melody", "1.5B", 2, True, 8),
        _entry("stereo-melody-large", "3.3B", 2, True, 16),
    )
}

#: ids the original CLI's README listed, which do not exist on the hub, mapped to the real ones
ALIASES: dict[str, str] = {
    "facebook/musicgen-small-stereo": "facebook/musicgen-stereo-small",
    "facebook/musicgen-medium-stereo": "facebook/musicgen-stereo-medium",
    "facebook/musicgen-large-stereo": "facebook/musicgen-stereo-large",
    "facebook/musicgen-melody-stereo": "facebook/musicgen-stereo-melody",
}

DEFAULT_MODEL = "facebook/musicgen-small"
DEFAULT_ALLOWED: tuple[str, ...] = (*CATALOG, *ALIASES)


@dataclass(frozen=True)
class ResolvedModel:
    """A model request that passed the allow-list: `name` is what `MusicGen.get_pretrained` gets."""

    name: str
    requested: str
    info: ModelInfo | None
    local: bool = False

    @property
    def melody(self) -> bool | None:
        """Whether it takes a melody; None when only loading it can tell (folders, unlisted ids)."""
        return None if self.info is None else self.info.melody

    @property
    def aliased(self) -> bool:
        """Whether it was asked for by one of the old CLI's ids that do not exist on the hub."""
        return self.requested in ALIASES

    def check_melody(self) -> None:
        """Refuse a melody for a model the catalog says cannot take one (before anything loads)."""
        if self.melody is False:
            raise melody_refused(self.requested)


def melody_refused(requested: str) -> RequestError:
    """The error for a melody on a model without a melody conditioner (the catalog's, or the loaded one's)."""
    return RequestError(ErrorCode.unsupported_mode, f"{requested} does not take a melody; use a melody model "
                        "such as facebook/musicgen-melody.", field="melody")


def _valid_ids_sentence() -> str:
    return "Valid ids: " + ", ".join(CATALOG) + "."


def _is_path(requested: str) -> bool:
    return requested.startswith(("/", "./", "../", "~"))


def _resolve_folder(requested: str, model_dirs: Iterable[Path], allow_any: bool) -> ResolvedModel:
    folder = Path(requested).expanduser().resolve()
    roots = [Path(d).expanduser().resolve() for d in model_dirs]
    if not allow_any and not any(folder.is_relative_to(root) for root in roots):
        raise RequestError(
            ErrorCode.model_not_allowed,
            f"The model folder {requested} is outside the allowed model folders (engine.model_dirs).",
            field="model",
        )
    missing = [name for name in MODEL_FOLDER_FILES if not (folder / name).is_file()]
    if missing:
        raise RequestError(
            ErrorCode.unknown_model,
            f"{requested} is not a MusicGen model folder: it lacks {' and '.join(missing)}. "
            + _valid_ids_sentence(),
            field="model",
        )
    return ResolvedModel(str(folder), requested, None, local=True)


def resolve_model(
    requested: str,
    *,
    allowed: Iterable[str] = DEFAULT_ALLOWED,
    model_dirs: Iterable[Path] = (),
) -> ResolvedModel:
    """Map a requested id, alias or folder to what may be loaded, or raise a RequestError.

    Nothing is downloaded or read here beyond checking a folder's file names, so a refused
    model is refused before anything reaches the hub or unpickles a checkpoint.
    """
    allowed = frozenset(allowed)
    allow_any = ANY_MODEL in allowed
    if _is_path(requested):
        return _resolve_folder(requested, model_dirs, allow_any)
    canonical = ALIASES.get(requested, requested)
    if not allow_any and requested not in allowed and canonical not in allowed:
        # An official id left out by config, or someone else's model: it exists, but not for us.
        exists = canonical in CATALOG or (
            _HUB_ID.match(canonical) is not None and not canonical.startswith("facebook/")
        )
        code = ErrorCode.model_not_allowed if exists else ErrorCode.unknown_model
        listed = ", ".join(sorted(m for m in allowed if m not in ALIASES))
        problem = "is not a MusicGen model" if code is ErrorCode.unknown_model else "is not allowed here"
        raise RequestError(code, f"{requested} {problem}. Allowed ids: {listed}.", field="model")
    if canonical not in CATALOG and not _HUB_ID.match(canonical):
        raise RequestError(
            ErrorCode.unknown_model, f"{requested} is not a model id. " + _valid_ids_sentence(), field="model"
        )
    return ResolvedModel(canonical, requested, CATALOG.get(canonical))
