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


def test_short_turn_of_two_sentences_is_also_judged_by_sentence():
    text = "That's not my department. You will have to call another number."
    windows = split_windows(text)
    texts = [w.text for w in windows]
    assert texts == [
        "That's not my department.",
        text,
        "You will have to call another number.",
    ]
    whole = (0, len(text) - 1)
    assert [w.context for w in windows] == [whole, None, whole]
    assert [w.sentence for w in windows] == [True, False, True]


def test_clauses_are_pieces_and_a_lone_word_stays_with_its_neighbour():
    text = "Вижу, ваш договор заблокировали по ошибке, это бухгалтерия напутала."
    texts = {w.text for w in split_windows(text)}
    assert texts == {text, "Вижу, ваш договор заблокировали по ошибке", "это бухгалтерия напутала."}
    # one short sentence or an aside in brackets is no piece of its own
    assert [w.text for w in split_windows("Ну. Я этим не занимаюсь (смеётся)")] == [
        "Ну. Я этим не занимаюсь (смеётся)"
    ]
    assert len(split_windows("Слушайте, я этим не занимаюсь.")) == 1


def test_unpunctuated_turn_gets_short_word_windows():
    text = "ваш счет заблокирован это бухгалтерия ошиблась а не я"
    windows = split_windows(text)
    assert any(w.text == text and w.context is None for w in windows)
    assert any(w.text == "это бухгалтерия ошиблась а не я" for w in windows)
    assert all(w.context == (0, len(text)) for w in windows if w.text != text)
    # a punctuated turn of one clause is judged whole only
    assert len(split_windows("Я сейчас проверю вашу заявку и перезвоню вам сегодня до пяти.")) == 1


def test_piece_offsets_point_into_the_turn():
    text = "  Добрый день, вижу вашу заявку.  Это не ко мне, звоните в отдел доставки!  "
    for w in split_windows(text):
        assert text[w.start : w.end] in w.text or w.text.startswith(text[w.start : w.end])
        assert text[w.start].isalnum() and text[w.end - 1].isalnum()


def test_long_turn_of_sentences_has_no_window_across_a_sentence_end():
    """A long turn of several sentences is judged sentence by sentence (a long sentence in its own word
    windows): a window that straddles two sentences («…you are not online. I will call you back…») is
    half of one thought and half of another, and only ever matched by accident."""
    text = (
        "I understand how annoying this is. I am removing the block right now and I will make sure "
        "you are back online. I will call you back today by 3 PM to confirm it is all working."
    )
    assert len(text.split()) > SHORT_TURN_WORDS
    sentence_ends = [text.index(end) + len(end) for end in ("this is.", "back online.")]
    for window in split_windows(text):
        assert not any(window.start < end < window.end for end in sentence_ends), window.text


def test_long_turn_of_one_sentence_still_gets_word_windows():
    text = " ".join(f"слово{i}" for i in range(30)) + " я этим не занимаюсь"
    windows = split_windows(text)
    assert len(windows) > 1
    assert all(len(w.text.split()) <= SHORT_TURN_WORDS for w in windows)
    assert any(w.text.endswith("я этим не занимаюсь") for w in windows)
