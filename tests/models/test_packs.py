"""Phrase packs: the default pack's coverage and content, and validation errors a trainer can act on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from models.packs import Kind, PackError, dump_pack, load_pack, parse_pack

SHARED = Path(__file__).resolve().parents[3] / "shared"
TAXONOMY_ALERTS = [
    "not_my_job",
    "blame_shifting",
    "excuses",
    "blaming_customer",
    "lecturing_customer",
    "dismissing_complaint",
    "internal_jargon",
    "giving_up",
    "vague_timeline",
    "customer_complaint",
    "escalation_request",
    "asks_when",
]
TAXONOMY_PRACTICE = [
    "apology",
    "empathy",
    "next_steps",
    "timeline",
    "prevention",
    "gratitude",
    "escalation_offer",
    "compensation",
]

MINIMAL = {
    "name": "mini",
    "version": 3,
    "categories": [
        {
            "id": "not_my_job",
            "kind": "forbidden",
            "speaker": "agent",
            "title": {"ru": "Отказ"},
            "examples": {"ru": ["Я этим не занимаюсь"]},
            "responses": {"ru": ["Я разберусь сама."]},
        }
    ],
}


def _pack_text(**changes) -> str:
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["categories"][0].update(changes)
    return yaml.safe_dump(data, allow_unicode=True)


def test_default_pack_covers_the_taxonomy(default_pack):
    assert sorted(default_pack.ids) == sorted(TAXONOMY_ALERTS + TAXONOMY_PRACTICE)
    taxonomy = SHARED / "taxonomy.md"
    if taxonomy.is_file():
        named = set(re.findall(r"`([a-z_]+)`", taxonomy.read_text(encoding="utf-8")))
        assert set(default_pack.ids) <= named


def test_default_pack_kinds_and_sides(default_pack):
    for cat in default_pack.categories:
        expected = "customer" if cat.kind is Kind.TRIGGER else "agent"
        assert cat.speaker.value == expected, cat.id
    assert {default_pack.category(c).kind for c in TAXONOMY_PRACTICE} == {Kind.PRACTICE}


def test_default_pack_alerts_have_short_bilingual_responses(default_pack):
    for cat in default_pack.categories:
        if not cat.kind.is_alert:
            continue
        for lang in ("ru", "en"):
            responses = cat.responses.get(lang)
            assert 2 <= len(responses) <= 4, (cat.id, lang)
            for text in responses:
                assert len(text.split()) <= 30, (cat.id, text)  # short enough to say aloud


def test_default_pack_has_examples_and_hard_negatives(default_pack):
    for cat in default_pack.categories:
        assert len(cat.examples.get("ru")) >= 10 and len(cat.examples.get("en")) >= 5, cat.id
        if cat.kind.is_alert:
            assert len(cat.counter_examples) >= 5, cat.id
    assert len(default_pack.neutral) >= 40


def test_default_pack_is_not_the_dev_set(default_pack):
    """The dev rows measure the pack; none of them may be pasted into it."""
    dev = SHARED / "eval" / "classify-dev.jsonl"
    if not dev.is_file():
        pytest.skip("shared/eval is not beside this checkout")
    import json

    def norm(s: str) -> str:
        return re.sub(r"[^\w]+", " ", s.lower().replace("ё", "е")).strip()

    dev_texts = {
        norm(json.loads(line)["text"]) for line in dev.read_text(encoding="utf-8").splitlines() if line
    }
    pack_texts = set()
    for cat in default_pack.categories:
        for group in (cat.examples, cat.counter_examples):
            pack_texts.update(norm(t) for _, t in group.items())
    pack_texts.update(norm(t) for _, t in default_pack.neutral.items())
    seeds = " ".join(norm(f.read_text(encoding="utf-8")) for f in (SHARED / "seeds").glob("*.txt"))
    seeds += " " + norm((SHARED / "taxonomy.md").read_text(encoding="utf-8"))
    pasted = {t for t in dev_texts & pack_texts if t not in seeds}  # a seed's own quote may be in both
    assert not pasted


def test_round_trip(default_pack):
    assert parse_pack(dump_pack(default_pack)) == default_pack


def test_minimal_pack_loads_from_file(tmp_path: Path):
    path = tmp_path / "mini.yaml"
    path.write_text(_pack_text(), encoding="utf-8")
    pack = load_pack(path)
    assert pack.version == 3 and pack.ids == ["not_my_job"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "rude"}, "category not_my_job: kind: Input should be 'forbidden', 'trigger' or 'practice'"),
        ({"examples": {"ru": []}}, "category not_my_job: examples: at least one example phrase is required"),
        ({"examples": {"ru": ["  "]}}, "category not_my_job: examples.ru.0: String should have at least 1"),
        (
            {"responses": {"de": ["Hallo"]}},
            "category not_my_job: responses.de: Extra inputs are not permitted",
        ),
        ({"responses": {}}, "category not_my_job: responses: an alert category needs responses in ru or en"),
        ({"speaker": "customer"}, "category not_my_job: speaker: a forbidden category listens to the agent"),
        ({"severity": "extreme"}, "category not_my_job: severity: Input should be 'low', 'medium' or 'high'"),
        ({"id": "Not My Job"}, "category Not My Job: id: String should match pattern"),
    ],
)
def test_validation_names_file_category_and_field(tmp_path: Path, changes: dict, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(_pack_text(**changes), encoding="utf-8")
    with pytest.raises(PackError) as err:
        load_pack(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_duplicate_category_ids_refused():
    data = yaml.safe_load(_pack_text())
    data["categories"].append(data["categories"][0])
    with pytest.raises(PackError, match="duplicate category id 'not_my_job'"):
        parse_pack(yaml.safe_dump(data, allow_unicode=True), source="dup.yaml")


def test_broken_yaml_names_the_line():
    with pytest.raises(PackError, match=r"^broken.yaml: line 3 not valid YAML"):
        parse_pack("name: x\ncategories:\n\t- id: tab_indented\n", source="broken.yaml")


def test_missing_file_and_wrong_shape(tmp_path: Path):
    with pytest.raises(PackError, match="pack file not found"):
        load_pack(tmp_path / "nope.yaml")
    with pytest.raises(PackError, match="a pack is a YAML mapping"):
        parse_pack("- just\n- a list\n", source="list.yaml")


def test_suggestions_prefer_the_turn_language(tmp_path: Path):
    pack = parse_pack(_pack_text(responses={"en": ["Let me sort this out.", "I'll own it.", "One", "Two"]}))
    cat = pack.category("not_my_job")
    assert cat.suggestions("ru") == ["Let me sort this out.", "I'll own it.", "One"]  # no ru: fall back
    assert cat.suggestions("en", limit=2) == ["Let me sort this out.", "I'll own it."]
    assert cat.title_in("en") == "Отказ"


def test_validation_errors_name_the_line_of_the_field():
    from models.packs import PackError, parse_pack

    text = (
        "name: x\n"
        "categories:\n"
        "- id: a_b\n"
        "  kind: forbidden\n"
        "  speaker: agent\n"
        "  title: {en: A}\n"
        "  examples: {en: [hi]}\n"
        "- id: c_d\n"
        "  kind: rude\n"
        "  speaker: agent\n"
        "  title: {en: C}\n"
        "  examples: {en: [yo]}\n"
    )
    with pytest.raises(PackError) as caught:
        parse_pack(text, source="team.yaml")
    message = str(caught.value)
    assert "team.yaml: line 3: category a_b: responses" in message or "line 3" in message
    assert "team.yaml: line 9: category c_d: kind:" in message
