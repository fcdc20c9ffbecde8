"""What changed between two versions of a phrase pack, in the terms a trainer edits: categories added or
removed, fields changed, phrases added or removed per list and language."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.packs import ByLanguage, Category, PhrasePack

PHRASE_LISTS = ("examples", "counter_examples", "responses")
FIELDS = ("kind", "speaker", "severity", "title", "description", "cues")


@dataclass(frozen=True)
class PhraseChange:
    """Phrases added to and removed from one list (``examples``…) in one language."""

    list: str
    lang: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class CategoryChange:
    """One category's difference: ``status`` is added, removed or changed."""

    id: str
    status: str
    fields: dict[str, tuple[object, object]] = field(default_factory=dict)  # name -> (old, new)
    phrases: tuple[PhraseChange, ...] = ()


@dataclass(frozen=True)
class PackDiff:
    old_version: int
    new_version: int
    categories: tuple[CategoryChange, ...]
    neutral: tuple[PhraseChange, ...]

    @property
    def empty(self) -> bool:
        return not self.categories and not self.neutral


def diff_packs(old: PhrasePack, new: PhrasePack) -> PackDiff:
    """The changes that turn `old` into `new`, categories in `new`'s order (removed ones last)."""
    before = {c.id: c for c in old.categories}
    after = {c.id: c for c in new.categories}
    changes = []
    for cat in new.categories:
        if cat.id not in before:
            changes.append(CategoryChange(cat.id, "added", phrases=_lists(Category.model_construct(), cat)))
            continue
        change = _category(before[cat.id], cat)
        if change is not None:
            changes.append(change)
    changes += [CategoryChange(cid, "removed") for cid in before if cid not in after]
    neutral = _phrases("neutral", old.neutral, new.neutral)
    return PackDiff(old.version, new.version, tuple(changes), tuple(neutral))


def _category(old: Category, new: Category) -> CategoryChange | None:
    fields = {
        name: (_plain(getattr(old, name)), _plain(getattr(new, name)))
        for name in FIELDS
        if getattr(old, name) != getattr(new, name)
    }
    phrases = _lists(old, new)
    if not fields and not phrases:
        return None
    return CategoryChange(new.id, "changed", fields, phrases)


def _lists(old: Category, new: Category) -> tuple[PhraseChange, ...]:
    out: list[PhraseChange] = []
    for name in PHRASE_LISTS:
        out += _phrases(name, getattr(old, name, None) or ByLanguage(), getattr(new, name))
    return tuple(out)


def _phrases(name: str, old: ByLanguage, new: ByLanguage) -> list[PhraseChange]:
    out = []
    for lang in ("ru", "en"):
        before, after = old.get(lang), new.get(lang)
        added = tuple(p for p in after if p not in set(before))
        removed = tuple(p for p in before if p not in set(after))
        if added or removed:
            out.append(PhraseChange(name, lang, added, removed))
    return out


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return value.model_dump() if hasattr(value, "model_dump") else str(value)
