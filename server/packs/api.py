"""Phrase-pack routes for trainers: versions, edit, clone, diff, import/export, try a phrase, evaluate,
publish (and roll back by publishing an earlier version)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from models.classifier import Detection, Speaker, Turn
from models.evaluation import EvalDataError, EvalRow, evaluate, read_eval_rows
from models.pack_diff import diff_packs
from models.packs import PackError, PhrasePack, parse_pack
from server.access.auth import require
from server.access.store import Role
from server.packs.service import PackService
from server.packs.store import PackExistsError, PackStoreError, UnknownPackError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/packs", tags=["packs"], dependencies=[require(Role.TRAINER)])

MAX_IMPORT_BYTES = 2 << 20  # the default pack is ~150 KB
MAX_EVAL_ROWS = 5000
MAX_SCRIPT_BYTES = 256 << 10  # a call script is a few KB


def _service(request: Request) -> PackService:
    return request.app.state.packs


def _http(exc: Exception) -> HTTPException:
    """Store errors as HTTP: 404 unknown, 409 name taken, 422 anything else a client got wrong."""
    if isinstance(exc, UnknownPackError):
        return HTTPException(404, str(exc))
    if isinstance(exc, PackExistsError):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


async def _run(fn, *args):  # noqa: ANN001, ANN202 - a blocking store/model call off the event loop
    try:
        return await asyncio.to_thread(fn, *args)
    except (PackStoreError, PackError, EvalDataError) as exc:
        raise _http(exc) from None


@router.get("")
async def list_packs(request: Request) -> dict[str, Any]:
    """Every pack's versions, newest first, and which one is active."""
    service = _service(request)
    versions = await _run(service.store.versions)
    active = await _run(service.store.active)
    return {
        "active": {"name": active[0], "version": active[1]} if active else None,
        "versions": [asdict(v) for v in versions],
    }


@router.post("", status_code=201)
async def create_pack(request: Request, pack: PhrasePack, note: str = "") -> dict[str, Any]:
    """A new pack (version 1) from JSON; 409 if the name is taken."""
    stored = await _run(lambda: _service(request).store.save(pack, note=note, new=True))
    return {"name": stored.name, "version": stored.version}


@router.post("/import", status_code=201)
async def import_pack(
    request: Request, file: UploadFile, as_new_version: Annotated[bool, Query()] = True
) -> dict[str, Any]:
    """A pack from a YAML file: a new version of the pack it names (or version 1 of a new pack). A file
    that is not a valid pack is refused with its name, line and field."""
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise HTTPException(413, f"{file.filename}: larger than {MAX_IMPORT_BYTES >> 20} MB; a pack is text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, f"{file.filename}: not UTF-8 text") from None
    pack = await _run(lambda: parse_pack(text, source=file.filename or "upload"))
    store = _service(request).store
    exists = any(v.name == pack.name for v in await _run(store.versions))
    stored = await _run(lambda: store.save(pack, note=f"imported from {file.filename}", new=not exists))
    return {"name": stored.name, "version": stored.version}


@router.get("/{name}/versions")
async def versions(request: Request, name: str) -> list[dict[str, Any]]:
    return [asdict(v) for v in await _run(_service(request).store.versions, name)]


@router.get("/{name}/versions/{version}")
async def get_version(request: Request, name: str, version: int) -> PhrasePack:
    """One version as JSON (the same shape a new version is saved from)."""
    return await _run(_service(request).store.get, name, version)


@router.get("/{name}/versions/{version}/export", response_class=PlainTextResponse)
async def export_version(request: Request, name: str, version: int) -> PlainTextResponse:
    """One version as YAML; importing it back gives the identical pack."""
    text = await _run(_service(request).store.yaml, name, version)
    headers = {"Content-Disposition": f'attachment; filename="{name}-v{version}.yaml"'}
    return PlainTextResponse(text, media_type="application/yaml", headers=headers)


@router.put("/{name}")
async def save_version(request: Request, name: str, pack: PhrasePack, note: str = "") -> dict[str, Any]:
    """Save an edited pack as the next version of `name` (not yet active)."""
    if pack.name != name:
        raise HTTPException(422, f"the pack is named {pack.name!r}, not {name!r}; clone it to rename")
    stored = await _run(lambda: _service(request).store.save(pack, note=note))
    return {"name": stored.name, "version": stored.version}


class CloneRequest(BaseModel):
    new_name: str = Field(min_length=1, max_length=100)
    version: int | None = None


@router.post("/{name}/clone", status_code=201)
async def clone(request: Request, name: str, body: CloneRequest) -> dict[str, Any]:
    stored = await _run(_service(request).store.clone, name, body.version, body.new_name)
    return {"name": stored.name, "version": stored.version}


@router.get("/{name}/diff")
async def diff(
    request: Request,
    name: str,
    old: Annotated[int, Query(alias="from")],
    new: Annotated[int, Query(alias="to")],
) -> dict[str, Any]:
    """What changed from version `from` to version `to`."""
    store = _service(request).store
    return asdict(diff_packs(await _run(store.get, name, old), await _run(store.get, name, new)))


@router.post("/{name}/versions/{version}/publish")
async def publish(request: Request, name: str, version: int) -> dict[str, Any]:
    """Make this version the active pack for live calls and audits (no restart; calls go on). Publishing
    an earlier version is a roll-back."""
    pack = await _run(_service(request).publish, name, version)
    return {"active": {"name": pack.name, "version": pack.version}}


class TryRequest(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    speaker: Literal["agent", "customer", "unknown"] = "unknown"
    lang: Literal["ru", "en"] | None = None


def _label(
    detection: Detection, service: PackService, name: str, version: int, lang: str | None
) -> dict[str, Any]:
    category = service.classifier(name, version).category(detection.category)
    return {
        "category": detection.category,
        "kind": detection.kind.value,
        "title": category.title_in(lang or "ru"),
        "score": round(detection.score, 3),
        "start": detection.start,
        "end": detection.end,
        "example": detection.example,
    }


@router.post("/{name}/versions/{version}/try")
async def try_phrase(request: Request, name: str, version: int, body: TryRequest) -> dict[str, Any]:
    """Which categories a phrase raises in this version, with scores, spans and the nearest example."""
    service = _service(request)

    def judge() -> list[dict[str, Any]]:
        classifier = service.classifier(name, version)
        found = classifier.classify_batch([Turn(body.text, Speaker(body.speaker), body.lang)])[0]
        return [_label(d, service, name, version, body.lang) for d in found]

    return {"labels": await _run(judge)}


@router.post("/{name}/versions/{version}/evaluate")
async def evaluate_version(
    request: Request,
    name: str,
    version: int,
    rows: Annotated[str | None, Body(media_type="application/x-ndjson")] = None,
    source: Annotated[Literal["upload", "flags"], Query()] = "upload",
) -> dict[str, Any]:
    """Run labelled turns (JSON lines in the shared eval format, or the reviewers' confirmed and dismissed
    flags) against this version and the active one: per-category scores of both and the rows whose
    labels differ."""
    service = _service(request)
    if source == "flags":
        rows = "\n".join(request.app.state.audits.flag_rows())
    if not rows or not rows.strip():
        raise HTTPException(422, "no labelled rows: send JSON lines, or use source=flags")
    parsed = await _run(lambda: read_eval_rows(rows.splitlines(), source=source))
    if len(parsed) > MAX_EVAL_ROWS:
        raise HTTPException(413, f"at most {MAX_EVAL_ROWS} rows per evaluation, got {len(parsed)}")
    active = await _run(service.store.active)
    return await _run(_compare, service, (name, version), active, parsed)


@router.post("/{name}/versions/{version}/evaluate-call")
async def evaluate_call(request: Request, name: str, version: int, script: UploadFile) -> dict[str, Any]:
    """A labelled call script (the format of ``callbuffer evaluate-calls``) spoken by the server's TTS into
    an 8 kHz telephone call, heard by the audit's Whisper and judged by this version: the call's turn
    table (said / heard / alerted, hits, misses, false alarms) and its totals. 422 names the file and
    field of a bad script, 503 says which speech tool this server lacks."""
    from server.audits.jobs import report_function
    from server.packs.call_eval import (
        CallEvalError,
        SpeechUnavailableError,
        audit_calls,
        check_labels,
        load_uploaded_script,
        speak_call,
    )

    data = await script.read(MAX_SCRIPT_BYTES + 1)
    if len(data) > MAX_SCRIPT_BYTES:
        raise HTTPException(413, f"a call script is at most {MAX_SCRIPT_BYTES >> 10} KB")
    service = _service(request)

    def run() -> dict[str, Any]:
        classifier = service.classifier(name, version)
        uploaded = load_uploaded_script(script.filename or "call.yaml", data)
        check_labels(uploaded, classifier.pack)
        audit, done = report_function(service.engine.settings, classifier)
        try:
            report = audit_calls([speak_call(uploaded)], audit)
        finally:
            done()
        return {"name": name, "version": version, **report.to_dict()}

    try:
        return await _run(run)
    except SpeechUnavailableError as exc:
        raise HTTPException(503, str(exc)) from None
    except CallEvalError as exc:
        raise HTTPException(422, str(exc)) from None


def _compare(
    service: PackService, draft: tuple[str, int], active: tuple[str, int], rows: list[EvalRow]
) -> dict[str, Any]:
    reports, predictions = {}, {}
    for label, key in (("draft", draft), ("active", active)):
        classifier = service.classifier(*key)
        reports[label] = evaluate(classifier, rows).as_dict()
        found = classifier.classify_batch([Turn(r.text, r.speaker, r.lang) for r in rows])
        predictions[label] = [sorted(d.category for d in f) for f in found]
    changed = [
        {
            "id": r.id,
            "text": r.text,
            "speaker": r.speaker.value,
            "labels": sorted(r.labels),
            "active": a,
            "draft": d,
        }
        for r, a, d in zip(rows, predictions["active"], predictions["draft"], strict=True)
        if a != d
    ]
    return {
        "draft": {"name": draft[0], "version": draft[1], **reports["draft"]},
        "active": {"name": active[0], "version": active[1], **reports["active"]},
        "changed": changed,
    }
