"""`callbuffer evaluate-calls` as a trainer runs it: a real labelled call spoken by festival and espeak-ng,
heard by the real audit path and the real live engine (bundled Whisper, the default pack), in a process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = """\
# A short call: the agent refuses the issue, then takes it on.
split: heldout
voices:
  agent: {tts: festival, voice: msu_ru_nsh_clunits}
  customer: {tts: espeak-ng, voice: ru+f3, rate: 0.9, pitch: 60}
line: {encoding: mulaw, noise_dbfs: -50}
turns:
  - speaker: customer
    lang: ru
    text: Добрый день, у меня не приходят смс от банка.
  - speaker: agent
    lang: ru
    text: Я этим не занимаюсь, звоните в другой отдел.
    expect: [not_my_job]
  - speaker: agent
    lang: ru
    pause_before: 1.2
    text: Хотя подождите, назовите номер телефона, я проверю сама.
"""


@pytest.fixture(scope="module")
def env(cache_dir: Path) -> dict[str, str]:
    for tool in ("text2wave", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"Debian tool not installed: {tool}")
    return {**os.environ, "CALLBUFFER_CACHE_DIR": str(cache_dir)}


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "calls" / "ru-sms.yaml"
    path.parent.mkdir()
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["callbuffer", "evaluate-calls", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_an_audited_labelled_call_gives_the_turn_table_as_json(env, script: Path):
    proc = run(["--json", str(script.parent)], env)  # a folder of scripts
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["mode"] == "audit"
    assert report["totals"]["calls"] == 1 and report["totals"]["expected"] == 1
    assert set(report["by_split"]) == {"heldout"}
    call = report["calls"][0]
    assert call["name"] == "ru-sms" and call["split"] == "heldout"
    said = [t for t in call["turns"] if t["said"]]
    assert [t["speaker"] for t in said] == ["customer", "agent", "agent"]
    assert all(t["heard"] for t in said), "every said turn was heard as something"
    refusal = said[1]
    assert refusal["expect"] == ["not_my_job"]
    assert "занима" in " ".join(h["text"] for h in refusal["heard"]).lower()
    assert refusal["hits"] == ["not_my_job"] and refusal["misses"] == []
    assert report["totals"]["repeated_finals"] == 0
    assert "ru-sms: 1/1 alerts" in proc.stderr  # progress, call by call


def test_the_live_engine_hears_the_same_call_and_prints_the_table(env, script: Path):
    proc = run(["--live", "--speed", "0", str(script)], env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "== ru-sms [heldout]" in out and "mode: live" in out
    assert "said:  Я этим не занимаюсь, звоните в другой отдел." in out
    assert "+not_my_job" in out
    totals = next(line for line in out.splitlines() if line.startswith("all "))
    assert totals.split()[1:4] == ["1", "1", "1"]  # calls, alerts, hit


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("rate: 0.9", "rate: fast"), "voices: customer: rate: a speed factor"),
        (("expect: [not_my_job]", "expect: not_my_job"), "turns: item 1: expect: a list of category ids"),
        (
            ("lang: ru\n    text: Я этим", "lang: de\n    text: Я этим"),
            "turns: item 1: lang: unknown language",
        ),
        (("line: {encoding: mulaw", "line: {encoding: opus"), "line: encoding: 'opus'"),
        (("expect: [not_my_job]", "expect: [not_my_jobs]"), "expect: 'not_my_jobs' is no alert category"),
        (("expect: [not_my_job]", "expect: [asks_when]"), "expect: 'asks_when' is raised on customer turns"),
    ],
)
def test_a_malformed_script_stops_the_run_naming_the_file_and_field(env, script: Path, change, message):
    """A bad script among good ones (a rate that is no number, a category id that is no list, an unknown
    language, an unknown codec, a category the pack does not have, a customer's category on an agent's
    turn): nothing is spoken or loaded, the error names the file and field."""
    good = script.parent / "a-good.yaml"
    good.write_text(SCRIPT, encoding="utf-8")
    script.write_text(SCRIPT.replace(*change), encoding="utf-8")
    proc = run([str(script.parent)], env)
    assert proc.returncode == 1
    assert f"{script}: " in proc.stderr and message in proc.stderr
    assert "speaking" not in proc.stderr and proc.stdout == ""


def test_missing_paths_and_empty_folders_are_named(env, tmp_path: Path):
    proc = run([str(tmp_path / "nope.yaml")], env)
    assert proc.returncode == 1 and "nope.yaml: no such file or folder" in proc.stderr
    proc = run([str(tmp_path)], env)
    assert proc.returncode == 1 and "no call scripts" in proc.stderr
