"""Phrase packs: the trainer-owned YAML file that says what to listen for and what to suggest.

A pack lists categories (ids from the shared taxonomy). Each category has a kind (forbidden agent
phrase, customer trigger, or good agent practice), the speaker side it applies to, a severity, example
phrases and counter-examples in Russian and English, and the buffer responses to suggest. A pack that
does not validate is refused with a message naming the file, the category and the field, because a
trainer must be able to find and fix the line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

logger = logging.getLogger(__name__)

LANGUAGES = ("ru", "en")
DEFAULT_PACK_NAME = "default_pack.yaml"

Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Kind(StrEnum):
    """What a category is for: an alert on the agent, a prompt on the customer, or a scorecard item."""

    FORBIDDEN = "forbidden"
    TRIGGER = "trigger"
    PRACTICE = "practice"

    @property
    def is_alert(self) -> bool:
        return self is not Kind.PRACTICE


class Side(StrEnum):
    """Which speaker a category listens to."""

    AGENT = "agent"
    CUSTOMER = "customer"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Cue(StrEnum):
    """A surface signal the classifier finds by rule rather than by example (:mod:`models.time_cues`)."""

    PROMISED_TIME = "promised_time"  # a clock time, day, date or duration in a sentence about the future
    WHEN_QUESTION = "when_question"  # «когда же…», «сколько ещё ждать», "how long will…": asks about time


class CueEffect(StrEnum):
    """Whether a cue in a turn is evidence for the category or against it."""

    FOR = "for"
    AGAINST = "against"


class PackError(ValueError):
    """A phrase pack that cannot be used; the message names file, category and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ByLanguage(_Strict):
    """Phrases per language; a language may be absent but every phrase is non-empty."""

    ru: list[Phrase] = Field(default_factory=list)
    en: list[Phrase] = Field(default_factory=list)

    def items(self) -> Iterator[tuple[str, str]]:
        """(language, phrase) pairs, Russian first."""
        for lang in LANGUAGES:
            for phrase in getattr(self, lang):
                yield lang, phrase

    def get(self, lang: str) -> list[str]:
        return list(getattr(self, lang, []) or [])

    def __len__(self) -> int:
        return len(self.ru) + len(self.en)


class Title(_Strict):
    ru: str = ""
    en: str = ""

    def get(self, lang: str) -> str:
        return getattr(self, lang, "") or ""

    @model_validator(mode="after")
    def _one(self) -> Title:
        if not (self.ru.strip() or self.en.strip()):
            raise ValueError("a title in ru or en is required")
        return self


class Category(_Strict):
    """One thing to listen for, with what to say about it."""

    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
    kind: Kind
    speaker: Side
    severity: Severity = Severity.MEDIUM
    title: Title
    description: str = ""
    examples: ByLanguage
    counter_examples: ByLanguage = Field(default_factory=ByLanguage)
    responses: ByLanguage = Field(default_factory=ByLanguage)
    # e.g. {promised_time: for} on a "gave a concrete time" practice, {promised_time: against} on "vague
    # timeline": the cue is weighed with the examples, never decides alone
    cues: dict[Cue, CueEffect] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Category:
        if len(self.examples) == 0:
            raise ValueError("examples: at least one example phrase is required")
        expected = Side.CUSTOMER if self.kind is Kind.TRIGGER else Side.AGENT
        if self.speaker is not expected:
            raise ValueError(f"speaker: a {self.kind.value} category listens to the {expected.value}")
        if self.kind.is_alert:
            if len(self.responses) == 0:
                raise ValueError("responses: an alert category needs responses in ru or en")
            for lang in LANGUAGES:
                if len(self.responses.get(lang)) > 4:
                    raise ValueError(f"responses.{lang}: at most 4 responses per language")
        return self

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title.get("en") or self.title.get("ru") or self.id

    def suggestions(self, lang: str | None, limit: int = 3) -> list[str]:
        """Up to `limit` buffer responses in `lang`, or in the other language when it has none."""
        preferred = [lang] if lang in LANGUAGES else []
        for candidate in [*preferred, *LANGUAGES]:
            if responses := self.responses.get(candidate):
                return responses[:limit]
        return []


class PhrasePack(_Strict):
    """A whole pack: named, versioned, with its categories and shared neutral phrases."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    version: Annotated[int, Field(ge=1)] = 1
    description: str = ""
    categories: list[Category]
    neutral: ByLanguage = Field(default_factory=ByLanguage)

    @model_validator(mode="after")
    def _unique(self) -> PhrasePack:
        seen: set[str] = set()
        for cat in self.categories:
            if cat.id in seen:
                raise ValueError(f"categories: duplicate category id {cat.id!r}")
            seen.add(cat.id)
        if not self.categories:
            raise ValueError("categories: a pack needs at least one category")
        return self

    def category(self, category_id: str) -> Category:
        for cat in self.categories:
            if cat.id == category_id:
                return cat
        raise KeyError(f"unknown category {category_id!r} in pack {self.name!r}")

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.categories]

    @property
    def alert_ids(self) -> list[str]:
        return [c.id for c in self.categories if c.kind.is_alert]

    def ids_of(self, kind: Kind) -> list[str]:
        """The ids of the categories of `kind` (the forbidden ones fail a scorecard; practices are scored)."""
        return [c.id for c in self.categories if c.kind is kind]


def default_pack_path() -> Path:
    """The pack that ships with callbuffer, written from the seed articles."""
    return Path(str(resources.files("models") / "data" / DEFAULT_PACK_NAME))


def load_pack(path: str | Path | None = None) -> PhrasePack:
    """Read and validate a pack file; `None` means the default pack."""
    path = Path(path) if path is not None else default_pack_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PackError(f"{path}: pack file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PackError(f"{path}: cannot read pack: {exc}") from exc
    return parse_pack(text, source=str(path))


def parse_pack(text: str, *, source: str = "<pack>") -> PhrasePack:
    """Validate YAML text as a pack, with errors that name source, category and field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise PackError(f"{source}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise PackError(f"{source}: a pack is a YAML mapping with 'name' and 'categories'")
    try:
        return PhrasePack.model_validate(data)
    except ValidationError as exc:
        raise PackError(_describe(exc, data, source, yaml.compose(text))) from exc


def _line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The YAML line (1-based) of the value at pydantic location `loc`, or of its nearest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _describe(exc: ValidationError, data: dict[str, Any], source: str, root: yaml.Node | None) -> str:
    """Turn pydantic's locations into 'file: line N: category X: field: message' lines."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        line = _line_of(root, loc)
        where = ""
        if len(loc) >= 2 and loc[0] == "categories" and isinstance(loc[1], int):
            cats = data.get("categories") or []
            cat = cats[loc[1]] if loc[1] < len(cats) else None
            cat_id = cat.get("id") if isinstance(cat, dict) else None
            where = f"category {cat_id or '#' + str(loc[1] + 1)!s}: "
            loc = loc[2:]
        field = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        at = f"line {line}: " if line is not None else ""
        lines.append(f"{source}: {at}{where}{field + ': ' if field else ''}{msg}")
    return "\n".join(lines)


def dump_pack(pack: PhrasePack) -> str:
    """Serialise a pack back to YAML (unicode kept readable)."""
    data = pack.model_dump(mode="json", exclude_defaults=False)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120)
