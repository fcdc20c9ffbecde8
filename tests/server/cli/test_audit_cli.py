"""`callbuffer audit` on a folder of real (synthesized) calls, and the report writers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.audits.reports import SummaryRow, render_csv, render_html, write_summary
from server.cli.audit import audit

SCRIPT = """
- speaker: agent
  lang: en
  text: Good morning, customer support, how can I help?
- speaker: customer
  lang: en
  text: My internet is down again.
- speaker: agent
  lang: en
  text: That's not my department, call billing.
"""


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder: a wav, an mp3 in a subfolder, a corrupt file and an empty one."""
    from audio.synth import MissingToolError, build_call, load_script

    folder = tmp_path_factory.mktemp("calls")
    (folder / "script.yaml").write_text(SCRIPT, encoding="utf-8")
    try:
        call = build_call(load_script(folder / "script.yaml"))
    except MissingToolError as exc:
        pytest.skip(str(exc))
    (folder / "script.yaml").unlink()
    wav = call.write_wav(folder / "good.wav", "mulaw")
    (folder / "sub").mkdir()
    if shutil.which("ffmpeg"):
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-i", str(wav), str(folder / "sub" / "good2.mp3")], check=True
        )
    (folder / "corrupt.ogg").write_bytes(b"OggS" + bytes(range(256)) * 8)
    (folder / "empty.flac").write_bytes(b"")
    (folder / "notes.txt").write_text("not audio")
    return folder


@pytest.fixture(scope="module")
def run(cache_dir: Path):
    runner = CliRunner()

    def _run(*args: str):
        return runner.invoke(audit, list(args), env={"CALLBUFFER_CACHE_DIR": str(cache_dir)})

    return _run


@pytest.fixture(scope="module")
def first_run(run, calls: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out")
    return out, run(str(calls), "--out", str(out), "--language", "en")


def test_batch_goes_on_past_bad_files(first_run) -> None:
    out, result = first_run
    assert result.exit_code == 0, result.output
    assert "corrupt.ogg" in result.stderr and "cannot decode" in result.stderr
    assert "empty.flac: file is empty" in result.stderr
    reports = sorted(p.name for p in out.glob("good*.json"))
    assert len(reports) == (2 if shutil.which("ffmpeg") else 1)
    report = json.loads(next(out.glob("good-*.json")).read_text())
    assert report["roles"] == ["agent", "customer"] and report["masked"] is True
    assert "not_my_job" in {d["category"] for d in report["detections"]}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calls"] == len(reports)
    assert {"category": "not_my_job", "calls": len(reports), "detections": len(reports)} in summary[
        "categories"
    ]


def test_rerun_skips_and_force_audits_again(first_run, run, calls: Path) -> None:
    out, first = first_run
    again = run(str(calls), "--out", str(out), "--language", "en", "--format", "html")
    assert again.exit_code == 0
    assert "audited 0, already audited" in again.stderr
    assert list(out.glob("good-*.html")) and (out / "summary.html").is_file()  # rendered from the JSON
    forced = run(str(calls / "good.wav"), "--out", str(out), "--language", "en", "--force")
    assert forced.exit_code == 0 and "audited 1, already audited 0" in forced.stderr


def test_agent_is_named_in_the_report(run, calls: Path, tmp_path: Path) -> None:
    """Tried: one call audited without an agent, then again with ``--agent anna``: the second is audited
    afresh (the agent is part of the index key, so an unnamed report is not reused) and its report names
    her; ``--agent`` that is no user name is refused (test_audit_agent)."""
    good = str(calls / "good.wav")
    assert run(good, "--out", str(tmp_path), "--language", "en").exit_code == 0
    named = run(good, "--out", str(tmp_path), "--language", "en", "--agent", "anna")
    assert named.exit_code == 0 and "audited 1, already audited 0" in named.stderr, named.output
    reports = [json.loads(p.read_text()) for p in tmp_path.glob("good-*.json")]
    assert sorted(str(r.get("agent")) for r in reports) == ["None", "anna"]
    assert all("not_my_job" in {d["category"] for d in r["detections"]} for r in reports)


def test_all_failed_exits_1(run, calls: Path, tmp_path: Path) -> None:
    result = run(str(calls / "corrupt.ogg"), str(calls / "empty.flac"), "--out", str(tmp_path))
    assert result.exit_code == 1
    nothing = run(str(tmp_path / "empty-folder-does-not-exist"), "--out", str(tmp_path))
    assert nothing.exit_code == 1 and "no such file or folder" in nothing.stderr


def test_unreadable_folder(run, tmp_path: Path) -> None:
    """chmod 000 as a user; as root (who reads anything) a folder that does not exist stands in."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        folder = tmp_path / "missing"
        expected = "no such file or folder"
    else:
        folder.chmod(0)
        expected = "cannot read folder"
    try:
        result = run(str(folder), "--out", str(tmp_path / "out"))
    finally:
        if folder.exists():
            folder.chmod(0o755)
    assert result.exit_code == 1 and expected in result.stderr


def test_bad_channels_option(run, calls: Path, tmp_path: Path) -> None:
    result = run(str(calls), "--out", str(tmp_path), "--channels", "agent,boss")
    assert result.exit_code == 2 and "roles" in result.output


def test_keep_pii_is_part_of_the_settings(first_run, run, calls: Path) -> None:
    out, _ = first_run
    kept = run(
        str(calls / "good.wav"), "--out", str(out), "--language", "en", "--keep-pii", "--format", "csv"
    )
    assert kept.exit_code == 0 and "audited 1" in kept.stderr  # different settings: not skipped
    assert any(json.loads(p.read_text())["masked"] is False for p in out.glob("good-*.json"))
    assert (out / "summary.csv").read_text().startswith("file,report,duration,score")


# --------------------------------------------------------------------------------- report writers


def _report(text: str) -> dict:
    return {
        "source": "/calls/<a>.wav",
        "sha256": "0" * 64,
        "duration": 10.0,
        "channels": 2,
        "roles": ["agent", "customer"],
        "language": "en",
        "diarization": "channels",
        "notes": [],
        "masked": True,
        "turns": [{"index": 0, "speaker": "agent", "start": 0.0, "end": 2.0, "text": text, "lang": "en"}],
        "detections": [
            {
                "turn": 0,
                "category": "not_my_job",
                "kind": "forbidden",
                "speaker": "agent",
                "start": 0.0,
                "end": 2.0,
                "text": text,
                "span": [0, 8],
                "score": 0.9,
                "example": "x",
                "title": "Refusing <ownership>",
                "suggestions": ["I'll <b>handle</b> it"],
            }
        ],
        "talk_time": {"agent": 2.0, "customer": 0.0, "unknown": 0.0},
        "silences": [],
        "overtalk": [],
        "scorecard": {"score": 0.0, "passed": 0, "failed": 1, "items": []},
        "audited_at": "2025-01-01T00:00:00+00:00",
        "model": {"whisper": "bundled"},
    }


def test_html_escapes_everything() -> None:
    page = render_html(_report("<script>alert('x')</script> not mine"))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;handle&lt;/b&gt;" in page and "Refusing &lt;ownership&gt;" in page
    assert "<mark>" in page and "http" not in page  # flagged, and no external assets


def test_csv_one_row_per_detection() -> None:
    rows = render_csv(_report('a "quoted", text')).splitlines()
    assert rows[0] == "file,turn,start,end,speaker,category,kind,score,text"
    assert len(rows) == 2 and '"a ""quoted"", text"' in rows[1]


def test_summary_ranks_worst_first(tmp_path: Path) -> None:
    rows = [
        SummaryRow("good.wav", "good.json", 60.0, 1.0, 3, 0, 0, 1, {"asks_when": 1}),
        SummaryRow("bad.wav", "bad.json", 30.0, 0.25, 1, 3, 2, 1, {"not_my_job": 2, "asks_when": 1}),
    ]
    write_summary(rows, tmp_path, "html")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["file"] for r in summary["ranking"]] == ["bad.wav", "good.wav"]
    assert summary["categories"][0] == {"category": "asks_when", "calls": 2, "detections": 2}
    assert "bad.html" in (tmp_path / "summary.html").read_text()
