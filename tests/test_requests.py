"""The request contract: decoding, validation, and the error codes a person sees."""

from __future__ import annotations

import json

import pytest

from watcher.errors import ErrorCode, RequestError
from watcher.requests import Limits, Request, parse_request, request_schema


def parse(data: bytes | str | dict[str, object], limits: Limits = Limits()) -> Request:
    if isinstance(data, dict):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    return parse_request(data, limits)[1]


def error_of(data: bytes | str | dict[str, object], limits: Limits = Limits()) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse(data, limits)
    return caught.value


def test_defaults_are_audiocrafts() -> None:
    request = parse({"prompt": "lofi"})
    assert request.duration == 8.0
    assert request.top_k == 250 and request.cfg_coef == 3.0 and request.extend_stride == 18
    assert request.format is None and request.priority == 0


def test_utf8_bom_is_accepted() -> None:
    assert parse(b"\xef\xbb\xbf" + json.dumps({"prompt": "x"}).encode()).prompt == "x"


def test_utf16_says_save_as_utf8() -> None:
    error = error_of(json.dumps({"prompt": "x"}).encode("utf-16"))
    assert error.code is ErrorCode.invalid_json
    assert "UTF-8" in error.message


def test_unknown_field_is_named() -> None:
    error = error_of({"prompt": "x", "durration": 10})
    assert error.code is ErrorCode.invalid_request
    assert error.field == "durration"
    assert "durration" in error.message


@pytest.mark.parametrize(("fields", "field"), [
    ({"prompt": "x", "duration": 0}, "duration"),
    ({"prompt": "x", "duration": -3}, "duration"),
    ({"prompt": "x", "duration": 301}, "duration"),
    ({"prompt": "x", "duration": "8"}, "duration"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": "x", "seed": 1.5}, "seed"),
    ({"prompt": "x", "seed": True}, "seed"),
    ({"prompt": "x", "format": "aiff"}, "format"),
    ({"prompt": "x", "top_p": 2}, "top_p"),
    ({"duration": 5}, "prompt"),
])
def test_bad_fields_are_invalid_request(fields: dict[str, object], field: str) -> None:
    error = error_of(fields)
    assert (error.code, error.field) == (ErrorCode.invalid_request, field)


def test_nan_duration_is_rejected() -> None:
    assert error_of('{"prompt": "x", "duration": NaN}').code is ErrorCode.invalid_request


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a\\b", "a\x00b", "a\nb", ".hidden", "x" * 300])
def test_unsafe_names_are_refused(name: str) -> None:
    error = error_of({"prompt": "x", "output": name})
    assert (error.code, error.field) == (ErrorCode.unsafe_name, "output")


def test_limits_have_their_own_codes() -> None:
    assert error_of({"prompt": "x" * 50}, Limits(prompt_chars=10)).code is ErrorCode.prompt_too_long
    assert error_of({"prompt": "x"}, Limits(request_bytes=5)).code is ErrorCode.request_too_large
    assert error_of("[" * 40 + "]" * 40).code is ErrorCode.json_too_deep
    assert error_of({"prompt": "x", "duration": 20}, Limits(max_duration=10)).field == "duration"


@pytest.mark.parametrize("data", [b"", b"  \n", b"[1]", b"42", b'{"prompt": ', b"\xff\xfe\x00"])
def test_not_an_object_is_invalid_json(data: bytes) -> None:
    assert error_of(data).code is ErrorCode.invalid_json


def test_melody_with_continuation_is_unsupported() -> None:
    error = error_of({"prompt": "x", "melody": "a.wav", "continuation": "b.wav"})
    assert error.code is ErrorCode.unsupported_mode


def test_schema_lists_every_field_and_forbids_others() -> None:
    schema = request_schema()
    assert schema["additionalProperties"] is False
    assert {"prompt", "model", "duration", "output", "format", "melody", "continuation", "seed", "top_k", "top_p",
            "temperature", "cfg_coef", "two_step_cfg", "extend_stride", "normalize", "priority"} <= set(
        schema["properties"])
