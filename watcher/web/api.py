"""The console's JSON API, for the page itself and for n8n, Home Assistant and scripts.

Writes go through the same code as the folders: `submission.submit` (checked by `intake`, as the
daemon checks), `housekeeping.retry_failed` and the deletes. Errors carry the daemon's codes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from .. import __version__, housekeeping
from ..errors import ErrorCode, RequestError
from ..intake import Policy
from ..models import ALIASES
from ..names import request_id as request_id_of
from ..options import AudioFormat
from ..requests import request_schema
from ..submission import Upload, submit
from .board import Board
from .feed import Feed

#: media types of the formats the daemon writes
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg", "opus": "audio/ogg"}
_ATTACHMENTS = ("melody", "continuation")


_SUBMIT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description": "The request's fields (see "
                                    "`musicgen-watcher schema`), and an optional `name`."}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "melody": {"type": "string", "format": "binary"}, "continuation": {"type": "string", "format": "binary"}},
        "description": "The request's fields as form fields, with a melody or continuation file."}}}}}


def error_response(error: RequestError, status: int = 422) -> JSONResponse:
    return JSONResponse({"error": error.as_dict()}, status_code=status)


@dataclass(frozen=True)
class Context:
    """What the API works with; the app keeps one in `app.state.context`."""

    board: Board
    feed: Feed
    policy: Policy
    inbox: Path
    max_upload: int


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


Ctx = Annotated[Context, Depends(_context)]
api = APIRouter(prefix="/api")


@api.get("/status")
def status(ctx: Ctx) -> dict[str, Any]:
    """The daemons on these folders, the count of requests in each state, what a request may ask for."""
    policy = ctx.policy
    return {"version": __version__, "daemons": ctx.board.daemons(), "counts": ctx.board.counts(),
            "models": [m for m in policy.allowed_models if m not in ALIASES], "default_model": policy.default_model,
            "formats": [f.value for f in AudioFormat], "max_duration": policy.limits.max_duration}


@api.get("/requests")
def requests(ctx: Ctx, state: str = Query("waiting", pattern="^(waiting|running|done|failed)$"),
             limit: int = Query(20, ge=1, le=200), cursor: str | None = None) -> dict[str, Any]:
    """Requests in one state: waiting and running in order, done and failed newest first, paged by cursor."""
    board = ctx.board
    if state in ("done", "failed"):
        items, following = (board.done if state == "done" else board.failed)(limit, cursor)
        return {"items": items, "next_cursor": following}
    listed = board.waiting() if state == "waiting" else board.running()
    start = int(cursor) if cursor and cursor.isdigit() else 0
    following = str(start + limit) if start + limit < len(listed) else None
    return {"items": listed[start:start + limit], "next_cursor": following}


@api.get("/requests/{request_id:path}/audio", response_class=FileResponse)
def audio(ctx: Ctx, request_id: str) -> FileResponse:
    """The result's audio file, seekable (Range requests)."""
    path = ctx.board.audio(request_id)
    if path is None:
        raise HTTPException(404, f"No audio for {request_id!r}.")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream"),
                        filename=path.name, content_disposition_type="inline")


@api.post("/requests/{request_id:path}/retry")
def retry(ctx: Ctx, request_id: str) -> dict[str, Any]:
    """Move a failed request (and its attachments) back into the inbox, under its name or the next free one."""
    if ctx.board.failed_entry(request_id) is None:
        raise HTTPException(404, f"No failed request {request_id!r}.")
    final = housekeeping.retry_failed(ctx.board.layout, request_id, ctx.policy.limits)
    return {"id": request_id_of(final.relative_to(ctx.inbox).as_posix())}


@api.get("/requests/{request_id:path}")
def one(ctx: Ctx, request_id: str) -> dict[str, Any]:
    """One request: its state, its fields, and its progress, sidecar or error."""
    found = ctx.board.find(request_id)
    if found is None:
        raise HTTPException(404, f"No request {request_id!r}.")
    return found


@api.post("/requests", status_code=201, openapi_extra=_SUBMIT_BODY)
async def create(ctx: Ctx, request: Request) -> Response:
    """Submit a request: a JSON object of its fields (and an optional `name`), or a multipart form with the
    fields and a `melody` or `continuation` file. Checked as the daemon checks it; 422 with its error if not."""
    if int(request.headers.get("content-length") or 0) > ctx.max_upload:
        return error_response(RequestError(ErrorCode.request_too_large,
                                           f"The upload is larger than web.max_upload_bytes ({ctx.max_upload})."), 413)
    try:
        fields, uploads = await _submitted(request, ctx.policy)
        name = fields.pop("name", None)
        if name is not None and not isinstance(name, str):
            raise RequestError(ErrorCode.invalid_request, "Field 'name': it must be a string.", field="name")
        path = submit(ctx.inbox, fields, ctx.policy, name=name, uploads=uploads)
    except RequestError as exc:
        return error_response(exc)
    return JSONResponse({"id": path.stem}, status_code=201)


@api.delete("/requests/{request_id:path}", status_code=204)
def delete(ctx: Ctx, request_id: str) -> Response:
    """Delete a failed request, or a done one's result (audio and sidecar); waiting and running ones stay."""
    board = ctx.board
    failed, done = board.failed_entry(request_id), board.done_entry(request_id)
    if failed is not None:
        housekeeping.delete_failed(board.layout, request_id)
    elif done is not None:
        housekeeping.delete_done(board.layout, done.name)
    elif board.find(request_id) is not None:
        raise HTTPException(409, f"{request_id!r} is waiting or running; only done and failed requests go.")
    else:
        raise HTTPException(404, f"No request {request_id!r}.")
    return Response(status_code=204)


@api.get("/events", response_class=StreamingResponse)
def events(ctx: Ctx) -> StreamingResponse:
    """Server-Sent Events: discovered, claimed, progress, done, failed (each with the request's id)."""
    return StreamingResponse(ctx.feed.stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _submitted(request: Request, policy: Policy) -> tuple[dict[str, Any], dict[str, Upload]]:
    """The fields (and uploads) of a submission, JSON or multipart."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_part_size=policy.attachment_bytes or 1 << 30)
        fields: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key in _ATTACHMENTS and value.filename:
                    uploads[key] = Upload(Path(value.filename).name, await value.read())
            elif value != "":
                fields[key] = _typed(key, value)
        return fields, uploads
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise RequestError(ErrorCode.invalid_json, "The body is not a JSON object of request fields.") from None
    if not isinstance(body, dict):
        raise RequestError(ErrorCode.invalid_json, "The body is not a JSON object of request fields.")
    return body, {}


#: the JSON types of each request field, from the contract's schema
_FIELD_TYPES = {name: {kind.get("type") for kind in spec.get("anyOf", [spec])}
                for name, spec in request_schema()["properties"].items()}


def _typed(key: str, value: str) -> Any:
    """A form field as the request contract types it (forms send every value as text)."""
    kinds = _FIELD_TYPES.get(key, set())
    try:
        if "boolean" in kinds:
            return value.lower() in ("1", "true", "on", "yes")
        if "integer" in kinds:
            return int(value)
        if "number" in kinds:
            return float(value)
    except ValueError:
        return value  # the contract then names the field and what it wants
    return value
