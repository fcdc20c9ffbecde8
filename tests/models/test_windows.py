"""Long turns are judged in windows so one sentence inside a paragraph is not averaged away."""

from models.windows import SHORT_TURN_WORDS, split_windows


def test_short_turn_is_one_window_trimmed():
    [window] = split_windows("  Я этим не занимаюсь!  ")
    assert window.text == "Я этим не занимаюсь!" and (window.start, window.end) == (2, 21)


def test_empty_turn_has_no_windows():
    assert split_windows("   ...  ") == []


def test_long_turn_windows_cover_every_word_and_keep_offsets():
    filler = " ".join(f"слово{i}" for i in range(40))
    text = f"Добрый день. {filler} я этим не занимаюсь"
    windows = split_windows(text)
    assert all(text[w.start : w.end] in w.text for w in windows)
    assert all(len(w.text.split()) <= SHORT_TURN_WORDS for w in windows)
    covered = set()
    for w in windows:
        covered.update(range(w.start, w.end))
    assert all(i in covered for i, ch in enumerate(text) if ch.isalnum())
    assert any(w.text.endswith("я этим не занимаюсь") for w in windows)
    assert any(w.text == "Добрый день." for w in windows)
