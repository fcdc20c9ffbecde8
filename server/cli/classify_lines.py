"""The `callbuffer classify` line protocol: one JSON object (or plain text) in, one JSON object out.

Input: `{"text": …, "speaker": "agent"|"customer"|"unknown", "lang": …, "id": …}`; a line that is not
JSON at all is taken as an agent's turn. Output, in input order: `{"id": …, "labels": [{"category",
"score", "start", "end", "example"}]}`, or `{"id": …, "error": …}` for a line that cannot be read,
so one bad line never stops the rest. Blank lines are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from models.classifier import Detection, Speaker, Turn

MAX_TEXT_CHARS = 20_000


@dataclass(frozen=True)
class ParsedLine:
    """A readable turn with its id, or the reason it is not readable."""

    id: object
    turn: Turn | None = None
    error: str | None = None


def parse_raw(raw: bytes) -> ParsedLine | None:
    """Parse one input line as read from a file or pipe; bytes that are not UTF-8 are an error."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ParsedLine(None, error=f"line is not UTF-8 text: {exc.reason} at byte {exc.start}")
    return parse_line(line)


def parse_line(line: str) -> ParsedLine | None:
    """Parse one input line; None for a blank line."""
    stripped = line.strip().lstrip("\ufeff")
    if not stripped:
        return None
    if stripped[0] not in '{["':
        return _turn(None, stripped, Speaker.AGENT.value, None)
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        return ParsedLine(None, error=f"malformed JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(data, dict):
        return ParsedLine(None, error="expected a JSON object with a 'text' field")
    return _turn(
        data.get("id"), data.get("text"), data.get("speaker", Speaker.UNKNOWN.value), data.get("lang")
    )


def _turn(row_id: object, text: object, speaker: object, lang: object) -> ParsedLine:
    if not isinstance(text, str):
        return ParsedLine(row_id, error="'text' must be a string")
    if len(text) > MAX_TEXT_CHARS:
        return ParsedLine(row_id, error=f"'text' is longer than {MAX_TEXT_CHARS} characters")
    try:
        who = Speaker(speaker)
    except ValueError:
        return ParsedLine(row_id, error=f"'speaker' must be agent, customer or unknown, not {speaker!r}")
    if lang is not None and not isinstance(lang, str):
        return ParsedLine(row_id, error="'lang' must be a string such as 'ru' or 'en'")
    return ParsedLine(row_id, turn=Turn(text, who, lang))


def format_result(parsed: ParsedLine, detections: list[Detection] | None) -> str:
    """One output line (no newline)."""
    if parsed.error is not None:
        return json.dumps({"id": parsed.id, "error": parsed.error}, ensure_ascii=False)
    labels = [
        {"category": d.category, "score": d.score, "start": d.start, "end": d.end, "example": d.example}
        for d in detections or []
    ]
    return json.dumps({"id": parsed.id, "labels": labels}, ensure_ascii=False)


def read_line_batches(stream: BinaryIO, *, max_batch: int = 256) -> Iterator[list[bytes]]:
    """Lines in batches of whatever has already arrived, so a pipe fed one line at a time gets its
    answer at once and a file is still classified in efficient batches."""
    fd = stream.fileno()
    pending = b""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for i in range(0, len(complete), max_batch):
            yield complete[i : i + max_batch]
    if pending.strip():
        yield [pending]
