"""QA audit routes: upload recordings, follow the job, browse audited calls, play them, review flags.

Uploads are written to ``CALLBUFFER_DATA_DIR/recordings`` (the audio is kept for playback from a flagged
moment) with a per-file size limit; the audit itself runs on the background :class:`AuditRunner`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, Field

from server.access.auth import require
from server.access.store import USER_NAME_PATTERN, Role
from server.audits.store import AuditedCall, AuditStore, Flag, UnknownAuditError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["audits"])
REVIEWERS = require(Role.REVIEWER)
FLAG_READERS = require(Role.REVIEWER, Role.TRAINER)  # trainers turn dismissed flags into counter-examples

UPLOAD_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
AUDIO_SUFFIXES = {".wav", ".mp3", ".ogg", ".opus", ".flac"}


def _store(request: Request) -> AuditStore:
    return request.app.state.audits


def _call_json(call: AuditedCall, pending_flags: int | None = None) -> dict[str, Any]:
    data = {
        "id": call.id,
        "job_id": call.job_id,
        "file": call.file_name,
        "status": call.status,
        "error": call.error,
        "duration": call.duration,
        "score": call.score,
        "categories": list(call.categories),
        "audited_at": call.finished_at,
        "uploaded_at": call.created_at,
        "agent": call.agent,
    }
    if pending_flags is not None:
        data["pending_flags"] = pending_flags
    return data


def _flag_json(flag: Flag) -> dict[str, Any]:
    return {
        "id": flag.id,
        "detection": flag.detection,
        "category": flag.category,
        "kind": flag.kind,
        "speaker": flag.speaker,
        "start": flag.start,
        "end": flag.end,
        "text": flag.text,
        "score": flag.score,
        "status": flag.status,
        "note": flag.note,
        "reviewed_at": flag.reviewed_at,
    }


@router.post("/audits", status_code=202, dependencies=[REVIEWERS])
async def upload(
    request: Request,
    files: Annotated[list[UploadFile], File(description="one or more recordings")],
    channels: Annotated[str, Form(description="role of each channel of stereo files")] = "agent,customer",
    language: Annotated[Literal["ru", "en"] | None, Form()] = None,
    keep_pii: Annotated[bool, Form(description="keep personal data unmasked in the report")] = False,
    agent: Annotated[str | None, Form(description="the agent user on the calls (a user name)")] = None,
) -> dict[str, Any]:
    """Upload recordings for audit; returns the job with one audited call per file."""
    agent = (agent or "").strip() or None
    if agent is not None and not re.match(USER_NAME_PATTERN, agent):
        raise HTTPException(
            422, f"agent must be a user name (letters, digits and . _ @ -, up to 64); got {agent!r}"
        )
    roles = [r.strip() for r in channels.split(",") if r.strip()]
    if not roles or len(roles) > 2 or not set(roles) <= {"agent", "customer", "unknown"}:
        raise HTTPException(
            422, f"channels must name 1 or 2 roles of agent, customer, unknown; got {channels!r}"
        )
    settings = request.app.state.calls.engine.settings
    folder = settings.data_dir / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    limit = settings.max_upload_mb * (1 << 20)
    saved: list[tuple[str, str]] = []
    try:
        for upload_file in files:
            saved.append(await _save(upload_file, folder, limit))
    except HTTPException:
        for _, path in saved:
            Path(path).unlink(missing_ok=True)
        raise
    options = {"channels": roles, "language": language, "keep_pii": keep_pii}
    store = _store(request)
    job_id, call_ids = await asyncio.to_thread(store.create_job, options, saved, agent)
    request.app.state.audit_runner.wake()
    return {
        "id": job_id,
        "status": "queued",
        "calls": [
            {"id": c, "file": name, "status": "queued", "agent": agent}
            for c, (name, _) in zip(call_ids, saved, strict=True)
        ],
    }


async def _save(upload_file: UploadFile, folder: Path, limit: int) -> tuple[str, str]:
    """Stream one upload to disk; 413 past `limit` bytes (the partial file is removed)."""
    name = Path(upload_file.filename or "recording").name or "recording"
    suffix = Path(name).suffix.lower()
    target = folder / f"{_SAFE_NAME.sub('_', Path(name).stem)[:60]}-{id(upload_file):x}{suffix}"
    written = 0
    with target.open("wb") as out:
        while chunk := await upload_file.read(UPLOAD_CHUNK):
            written += len(chunk)
            if written > limit:
                out.close()
                target.unlink(missing_ok=True)
                raise HTTPException(413, f"{name} is larger than the {limit >> 20} MB upload limit")
            out.write(chunk)
    logger.info("stored upload %s (%d bytes) as %s", name, written, target.name)
    return name, str(target)


@router.get("/audits/{job_id}", dependencies=[REVIEWERS])
async def job(request: Request, job_id: str) -> dict[str, Any]:
    """The job's status (queued, running, done, failed: worst of its calls) and each call's report."""
    store = _store(request)
    try:
        calls = await asyncio.to_thread(store.job_calls, job_id)
    except UnknownAuditError as exc:
        raise HTTPException(404, str(exc)) from None
    reports = [await asyncio.to_thread(store.get_call, c.id) for c in calls]
    statuses = {c.status for c in calls}
    status = next((s for s in ("running", "queued") if s in statuses), "done")
    if statuses == {"failed"}:
        status = "failed"
    return {"id": job_id, "status": status, "calls": [{**_call_json(c), "report": r} for c, r in reports]}


@router.get("/audited-calls", dependencies=[REVIEWERS])
async def audited_calls(
    request: Request,
    category: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{1,63}$")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    since: Annotated[str | None, Query(description="ISO date: audited on or after")] = None,
    until: Annotated[str | None, Query(description="ISO date: audited before")] = None,
    agent: Annotated[str | None, Query(pattern=USER_NAME_PATTERN, description="the agent named")] = None,
) -> dict[str, list[dict[str, Any]]]:
    """Audited recordings for the review page, worst score first."""
    store = _store(request)
    calls = await asyncio.to_thread(
        store.list_calls,
        category=category,
        agent=agent,
        min_score=min_score,
        max_score=max_score,
        since=since,
        until=until,
    )
    rows = []
    for call in calls:
        flags = await asyncio.to_thread(store.flags, call.id)
        rows.append(_call_json(call, sum(f.status == "pending" for f in flags)))
    return {"calls": rows}


@router.get("/audited-calls/{call_id}", dependencies=[REVIEWERS])
async def audited_call(request: Request, call_id: str) -> dict[str, Any]:
    """One audited recording: its report and its flags with their review status."""
    store = _store(request)
    try:
        call, report = await asyncio.to_thread(store.get_call, call_id)
    except UnknownAuditError as exc:
        raise HTTPException(404, str(exc)) from None
    flags = await asyncio.to_thread(store.flags, call_id)
    return {**_call_json(call), "report": report, "flags": [_flag_json(f) for f in flags]}


@router.get("/audited-calls/{call_id}/audio", dependencies=[REVIEWERS])
async def audio(request: Request, call_id: str) -> FileResponse:
    """The recording as uploaded (byte ranges supported, so the player can seek to a flagged moment)."""
    try:
        call, _ = await asyncio.to_thread(_store(request).get_call, call_id)
    except UnknownAuditError as exc:
        raise HTTPException(404, str(exc)) from None
    path = Path(call.audio_path)
    if not path.is_file():
        raise HTTPException(410, f"the recording of {call_id} is no longer stored")
    return FileResponse(path, filename=call.file_name)


class FlagReview(BaseModel):
    status: Literal["pending", "confirmed", "dismissed"]
    note: str = Field(default="", max_length=2000)


@router.put("/flags/{flag_id}", dependencies=[REVIEWERS])
async def review_flag(request: Request, flag_id: int, review: FlagReview) -> dict[str, Any]:
    """Confirm or dismiss a flag (or put it back to pending)."""
    try:
        flag = await asyncio.to_thread(_store(request).review_flag, flag_id, review.status, review.note)
    except UnknownAuditError as exc:
        raise HTTPException(404, str(exc)) from None
    return _flag_json(flag)


@router.get("/flags/export", response_class=PlainTextResponse, dependencies=[FLAG_READERS])
async def export_flags(
    request: Request, status: Literal["confirmed", "dismissed"] | None = None
) -> PlainTextResponse:
    """Reviewed flags as JSON lines in the evaluation format (``text, lang, speaker, labels``): a confirmed
    flag is a labelled example of its category, a dismissed one a turn that must not raise it (labels
    empty, ``dismissed`` names the category): what trainers turn into counter-examples."""
    lines = await asyncio.to_thread(_store(request).flag_rows, status)
    return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""), media_type="application/x-ndjson")
