"""The request contract: one pydantic model, and the parsing of a request file into it."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .errors import ErrorCode, RequestError
from .options import AudioFormat, Normalize, SampleFormat, Sampling, subtype_for

_SAMPLING = Sampling()
#: the most a request's `metadata` may hold, as JSON
METADATA_BYTES = 4096


@dataclass(frozen=True)
class Limits:
    """What a request may ask for; the daemon's config fills these in."""

    max_duration: float = 300.0
    request_bytes: int = 64 * 1024
    prompt_chars: int = 2000
    json_depth: int = 16
    name_chars: int = 200


def check_name(value: str, *, limit: int = 200) -> str:
    """A plain file name: no separators, no `..`, no control characters, not overlong."""
    problem = None
    if not value or value in (".", ".."):
        problem = "is empty or a dot name"
    elif "/" in value or "\\" in value:
        problem = "contains a path separator"
    elif ".." in value:
        problem = "contains '..'"
    elif any(unicodedata.category(ch) == "Cc" for ch in value):
        problem = "contains a control character"
    elif value.startswith("."):
        problem = "is hidden (starts with a dot)"
    elif len(value) > limit or len(value.encode()) > 240:
        problem = f"is longer than {limit} characters"
    if problem:
        # PydanticCustomError fills {name} with str.format's plain fields only: quote the name here.
        raise PydanticCustomError(ErrorCode.unsafe_name.value, "{name} is not a plain file name: it {problem}",
                                  {"name": repr(value[:80]), "problem": problem})
    return value


def require_plain_name(value: str, field: str, *, limit: int = 200) -> str:
    """`check_name` for names that do not come through the request model (`submit --name`, uploads)."""
    try:
        return check_name(value, limit=limit)
    except PydanticCustomError as exc:
        raise RequestError(ErrorCode.unsafe_name, f"Field {field!r}: {exc.message()}.", field=field) from None


def _limits(info: ValidationInfo) -> Limits:
    return info.context if isinstance(info.context, Limits) else Limits()


#: enums arrive as their string values from JSON; the rest of the model is strict
ByValue = Field(strict=False)


class Request(BaseModel):
    """A request file's fields. Unknown fields are errors, so a typo is never ignored."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prompt: str | None = Field(None, description="What to generate. Required unless `continuation` is given.")
    model: str | None = Field(None, description="A model id or alias; default `engine.default_model`.")
    duration: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        8.0, description="Seconds of audio, at most `engine.max_duration`. A continuation counts inside it.")
    output: str | None = Field(
        None, description="Base name of the output file, without extension; default the request's name.")
    format: Annotated[AudioFormat | None, ByValue] = Field(
        None, description="wav, flac, ogg (Vorbis), mp3 or opus (Ogg Opus, 48 kHz); default `output.format`.")
    sample_format: Annotated[SampleFormat | None, ByValue] = Field(
        None, description="pcm16, pcm24 or float (wav), pcm16 or pcm24 (flac); default `output.sample_format`.")
    melody: str | None = Field(None, description="File name of an audio file in the inbox (melody models only).")
    continuation: str | None = Field(None, description="File name of an audio file in the inbox to continue.")
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = Field(None, description="Same seed, same audio.")
    top_k: Annotated[int, Field(ge=0)] = _SAMPLING.top_k
    top_p: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = _SAMPLING.top_p
    temperature: Annotated[float, Field(gt=0, allow_inf_nan=False)] = _SAMPLING.temperature
    cfg_coef: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _SAMPLING.cfg_coef
    two_step_cfg: bool = _SAMPLING.two_step_cfg
    extend_stride: Annotated[float, Field(gt=0, allow_inf_nan=False)] = _SAMPLING.extend_stride
    bitrate: Annotated[int, Field(gt=0)] | None = Field(
        None, description="kbps, for mp3 (32 to 320, default `output.mp3_bitrate`) and opus (6 to 256, default "
        "`output.opus_bitrate`).")
    normalize: Annotated[Normalize | None, ByValue] = Field(
        None, description="peak, loudness, rms, clip or none; default `output.normalize` (peak).")
    priority: int = Field(0, description="Higher goes first.")
    takes: Annotated[int, Field(ge=1, le=16)] = Field(
        1, description="How many versions to make, in one batch: outputs <output>-1 ... <output>-N, a sidecar each.")
    metadata: dict[str, Any] | None = Field(
        None, description="Anything of yours (at most 4 KiB as JSON), passed unchanged to the sidecar, the error "
        "file and the notifications: a pipeline's own ids, say.")

    @field_validator("output", "melody", "continuation")
    @classmethod
    def _plain_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_name(value, limit=_limits(info).name_chars)

    @field_validator("prompt")
    @classmethod
    def _prompt_length(cls, value: str | None, info: ValidationInfo) -> str | None:
        limit = _limits(info).prompt_chars
        if value is not None and len(value) > limit:
            raise PydanticCustomError(ErrorCode.prompt_too_long.value,
                                      "The prompt has {n} characters; at most {limit} are allowed",
                                      {"n": len(value), "limit": limit})
        return value

    @field_validator("duration")
    @classmethod
    def _duration_limit(cls, value: float, info: ValidationInfo) -> float:
        limit = _limits(info).max_duration
        if value > limit:
            raise PydanticCustomError("less_than_equal", "Input should be less than or equal to {le}",
                                      {"le": limit})
        return value

    @property
    def sampling(self) -> Sampling:
        """The sampling parameters for the engine."""
        return Sampling(top_k=self.top_k, top_p=self.top_p, temperature=self.temperature,
                        cfg_coef=self.cfg_coef, two_step_cfg=self.two_step_cfg,
                        extend_stride=self.extend_stride)

    @property
    def attachments(self) -> tuple[str, ...]:
        """Names of the inbox files this request reads."""
        return tuple(name for name in (self.melody, self.continuation) if name is not None)


def _error_from_validation(exc: ValidationError) -> RequestError:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in err["loc"]) or None
    if err["type"] == "extra_forbidden":
        return RequestError(ErrorCode.invalid_request,
                            f"Unknown field {field!r}; see `musicgen-watcher schema` for the valid ones.",
                            field=field)
    code = ErrorCode(err["type"]) if err["type"] in ErrorCode.__members__ else ErrorCode.invalid_request
    value = err.get("input")
    shown = "" if code is not ErrorCode.invalid_request or isinstance(value, dict) else f" (got {value!r:.60})"
    return RequestError(code, f"Field {field!r}: {err['msg']}{shown}.", field=field)


def validate_fields(fields: dict[str, Any], limits: Limits = Limits()) -> Request:
    """Validate already-decoded fields one by one (known, typed, in range), not the rules across fields."""
    try:
        return Request.model_validate(fields, context=limits)
    except ValidationError as exc:
        raise _error_from_validation(exc) from None


def validate_request(fields: dict[str, Any], limits: Limits = Limits()) -> Request:
    """Validate already-decoded fields (and the rules across fields) into a Request."""
    request = validate_fields(fields, limits)
    if request.prompt is None and request.continuation is None:
        raise RequestError(ErrorCode.invalid_request,
                           "The request needs a 'prompt' (\"\" for none), or a 'continuation' to continue.",
                           field="prompt")
    if request.format is not None and request.sample_format is not None:
        if request.format.lossy:
            raise RequestError(ErrorCode.invalid_request, f"{request.format.value} files are compressed; leave "
                               "sample_format out.", field="sample_format")
        subtype_for(request.format, request.sample_format)
    if request.metadata is not None and len(json.dumps(request.metadata)) > METADATA_BYTES:
        raise RequestError(ErrorCode.invalid_request, f"Field 'metadata': it is {len(json.dumps(request.metadata))} "
                           f"bytes as JSON; at most {METADATA_BYTES} are allowed.", field="metadata")
    if request.melody is not None and request.continuation is not None:
        raise RequestError(ErrorCode.unsupported_mode,
                           "A request can have a melody or a continuation, not both.", field="continuation")
    return request


def attachments_of(fields: dict[str, Any]) -> tuple[str, ...]:
    """The attachment names a decoded request refers to, even when it is otherwise invalid: only plain names.

    A name that is not plain (`../outbox/x.wav`) fails the request with `unsafe_name`; it is never a file
    the daemon waits for, moves or reads.
    """
    return tuple(v for k in ("melody", "continuation") if isinstance(v := fields.get(k), str) and is_plain(v))


def is_plain(name: str) -> bool:
    """Whether `name` passes `check_name`."""
    try:
        check_name(name)
    except PydanticCustomError:
        return False
    return True


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [c for v in level if isinstance(v, (dict, list))
                 for c in (v.values() if isinstance(v, dict) else v)]
    return depth


def decode_request(data: bytes, limits: Limits = Limits()) -> dict[str, Any]:
    """Bytes of a request file -> its JSON object, or a RequestError saying what is wrong."""
    if len(data) > limits.request_bytes:
        raise RequestError(ErrorCode.request_too_large,
                           f"The request file is {len(data)} bytes; at most {limits.request_bytes} are allowed.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RequestError(ErrorCode.invalid_json, "The file is UTF-16; save it as UTF-8.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(ErrorCode.invalid_json,
                           f"The file is not valid UTF-8 (byte {exc.start}); save it as UTF-8.") from None
    if not text.strip():
        raise RequestError(ErrorCode.invalid_json, "The file is empty; it should hold a JSON object.")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(ErrorCode.invalid_json,
                           f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except RecursionError:
        raise RequestError(ErrorCode.json_too_deep,
                           f"The JSON nests deeper than {limits.json_depth} levels.") from None
    if _depth(value) > limits.json_depth:
        raise RequestError(ErrorCode.json_too_deep, f"The JSON nests deeper than {limits.json_depth} levels.")
    if not isinstance(value, dict):
        raise RequestError(ErrorCode.invalid_json,
                           f"The file holds a JSON {type(value).__name__}; it should hold an object {{...}}.")
    return value


def decode_file(data: bytes, name: str, limits: Limits = Limits()) -> dict[str, Any]:
    """A request file's own fields: its JSON object, or, for a `*.txt` file, its text as the prompt."""
    if not name.lower().endswith(".txt"):
        return decode_request(data, limits)
    if len(data) > limits.request_bytes:
        raise RequestError(ErrorCode.request_too_large,
                           f"The request file is {len(data)} bytes; at most {limits.request_bytes} are allowed.")
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        raise RequestError(ErrorCode.invalid_request, f"The text file is not valid UTF-8 (byte {exc.start}); save "
                           "it as UTF-8.", field="prompt") from None
    if not text:
        raise RequestError(ErrorCode.invalid_request, "The text file is empty; its text is the prompt.",
                           field="prompt")
    return {"prompt": text}


def parse_request(data: bytes, limits: Limits = Limits()) -> tuple[dict[str, Any], Request]:
    """Bytes of a request file -> (the object as received, the validated Request)."""
    fields = decode_request(data, limits)
    return fields, validate_request(fields, limits)


def request_schema() -> dict[str, Any]:
    """The JSON Schema of a request file, from the pydantic model."""
    schema = Request.model_json_schema()
    schema["title"] = "musicgen-watcher request"
    return schema



def preset_schema() -> dict[str, Any]:
    """The JSON Schema of a folder's `defaults.json`: the request's fields, each optional."""
    schema = Request.model_json_schema()
    schema["title"] = "musicgen-watcher preset (defaults.json)"
    schema["description"] = ("Default fields for the requests in this folder and below it; the nearest preset "
                             "wins, and a request's own fields win over every preset.")
    return schema
