"""The search index on both databases: written with the turns and reports, back-filled for an older
database, queried with filters, and giving the same hits on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.audits.store import AuditStore
from server.live.store import Store
from server.search.query import QueryError, parse_query
from server.search.store import SearchFilters, open_search

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))


def _report(turns: list[tuple[str, str, float]], detections: list[tuple[int, str, str]]) -> dict:
    """A report with `turns` (speaker, text, start) and `detections` (turn, category, kind)."""
    rows = [
        {"index": i, "speaker": s, "start": a, "end": a + 2.0, "text": t, "lang": "ru"}
        for i, (s, t, a) in enumerate(turns)
    ]
    found = [
        {"turn": i, "category": c, "kind": k, "speaker": rows[i]["speaker"], "start": rows[i]["start"],
         "end": rows[i]["end"], "text": rows[i]["text"], "span": [0, 3], "score": 0.9}
        for i, c, k in detections
    ]  # fmt: skip
    return {
        "duration": 30.0,
        "language": "ru",
        "turns": rows,
        "detections": found,
        "scorecard": {"score": 0.5},
    }


def _live_call(store: Store, call_id: str, agent: str | None, turns: list[tuple[str, str]]) -> list[int]:
    store.create_call(call_id, ["agent", "customer"], "ru", "pcm16", 8000, agent=agent)
    ids = [store.add_turn(call_id, s, t, 2.0 * i, 2.0 * i + 1.5) for i, (s, t) in enumerate(turns)]
    return ids


def _texts(page) -> list[str]:
    return [h.text for h in page.hits]


@pytest.fixture
def stored(store_location):
    """A live call and an audited call at `store_location`, and the search over them."""
    with Store(store_location) as live, AuditStore(store_location) as audits:
        ids = _live_call(
            live,
            "live-1",
            "anna",
            [
                ("agent", "Здравствуйте, слушаю вас."),
                ("customer", "Позовите вашего руководителя!"),
                ("agent", "Мы этим не занимаемся, это не ко мне."),
                ("customer", "Безобразие."),
            ],
        )
        live.add_alert("live-1", ids[2], "not_my_job", "forbidden", "agent", "x", 4.0, 5.5, 0.9, ["a"], 1)
        live.end_call("live-1", "completed")
        _, [audited] = audits.create_job({}, [("a.wav", "/nowhere/a.wav")], agent="oleg")
        audits.save_report(
            audited,
            _report(
                [
                    ("agent", "Добрый день, меня зовут Олег.", 0.5),
                    ("customer", "Мне нужен менеджер, с вами я говорить не буду.", 3.0),
                    ("agent", "Я этим не занимаюсь, звоните в другой отдел.", 6.0),
                ],
                [(1, "escalation_request", "trigger"), (2, "not_my_job", "forbidden")],
            ),
        )
    with open_search(store_location) as search:
        yield search, audited


def test_inflected_words_find_live_and_audited_turns_with_context(stored):
    search, audited = stored
    page = search.search(parse_query("занимаюсь"))
    assert page.total == 2
    assert sorted(_texts(page)) == [
        "Мы этим не занимаемся, это не ко мне.",
        "Я этим не занимаюсь, звоните в другой отдел.",
    ]
    live = next(h for h in page.hits if h.source == "live")
    assert (live.call_id, live.agent, live.speaker, live.start) == ("live-1", "anna", "agent", 4.0)
    assert live.before.text == "Позовите вашего руководителя!" and live.after.text == "Безобразие."
    assert [s.text for s in live.segments if s.match] == ["занимаемся"]
    assert live.categories == ("not_my_job",) and not live.has_recording
    heard = next(h for h in page.hits if h.source == "audited")
    assert (heard.call_id, heard.agent, heard.turn_ref, heard.after) == (audited, "oleg", 2, None)


def test_phrases_need_adjacent_words(stored):
    search, _ = stored
    assert _texts(search.search(parse_query('"не ко мне"'))) == ["Мы этим не занимаемся, это не ко мне."]
    assert search.search(parse_query('"ко не мне"')).total == 0
    assert search.search(parse_query("руководитель менеджер")).total == 0  # every word must match


def test_filters(stored):
    search, audited = stored
    q = parse_query("не")
    assert search.search(q).total == 3
    assert search.search(q, SearchFilters(speaker="customer")).total == 1
    assert search.search(q, SearchFilters(agent="anna")).total == 1
    assert search.search(q, SearchFilters(source="audited")).total == 2
    assert {h.call_id for h in search.search(q, SearchFilters(category="not_my_job")).hits} == {
        "live-1",
        audited,
    }
    assert search.search(q, SearchFilters(category="escalation_request")).total == 1
    today = datetime.now(UTC).date().isoformat()
    assert search.search(q, SearchFilters(since=f"{today}T00:00:00.000+00:00")).total == 3
    assert search.search(q, SearchFilters(until="2000-01-01T00:00:00.000+00:00")).total == 0
    assert (
        search.search(q, limit=1, offset=2).total == 3 and len(search.search(q, limit=1, offset=2).hits) == 1
    )


def test_wrong_filters_are_refused():
    with pytest.raises(QueryError, match="wrong way round"):
        SearchFilters(since="2025-02-01T00:00:00.000+00:00", until="2025-01-01T00:00:00.000+00:00")
    with pytest.raises(QueryError, match="speaker"):
        SearchFilters(speaker="robot")


@pytest.mark.parametrize("text", ['"', "*", "NEAR(a b)", 'a" OR "b', "-не", "не:ко", "(мне)", "^не", "не*"])
def test_special_characters_never_reach_the_engine_as_syntax(stored, text):
    """Typed operators of FTS5 or tsquery are read as words or separators, never raise."""
    search, _ = stored
    try:
        query = parse_query(text)
    except QueryError:
        return
    search.search(query)  # does not raise


def test_an_audit_saved_again_is_indexed_anew(store_location):
    with AuditStore(store_location) as audits, open_search(store_location) as search:
        _, [call] = audits.create_job({}, [("a.wav", "/a.wav")])
        audits.save_report(call, _report([("agent", "Первый вариант текста.", 1.0)], []))
        audits.save_report(call, _report([("agent", "Второй вариант текста.", 1.0)], []))
        assert search.search(parse_query("вариант")).total == 1
        assert search.search(parse_query("первый")).total == 0


def test_an_older_database_is_indexed_when_opened(store_location):
    """Turns and reports stored before the index existed (its tables dropped, as a database written by
    an older callbuffer has none) are found once the stores open it again."""
    with Store(store_location) as live, AuditStore(store_location) as audits:
        _live_call(live, "old-1", None, [("agent", "Это не ко мне, обращайтесь в бухгалтерию.")])
        _, [call] = audits.create_job({}, [("a.wav", "/a.wav")], agent="oleg")
        audits.save_report(call, _report([("customer", "Бухгалтерия опять ошиблась.", 1.0)], []))
        with live._db.write("test") as tx:
            for statement in (
                "DROP TABLE IF EXISTS search_fts",
                "DROP TABLE search_turns",
                "DROP TABLE search_backfill",
            ):
                tx.execute(statement)
    with Store(store_location), AuditStore(store_location), open_search(store_location) as search:
        page = search.search(parse_query("бухгалтерии"))
        assert sorted((h.source, h.agent) for h in page.hits) == [("audited", "oleg"), ("live", None)]
        live = Store(store_location)  # opening again does not index twice
        live.close()
        assert search.search(parse_query("бухгалтерии")).total == 2


def test_both_databases_give_the_same_hits(tmp_path, postgres_url):
    """The same synthetic calls on SQLite and PostgreSQL: every query gives the same turns."""
    from synthetic_calls import generate

    end = datetime(2025, 6, 1, tzinfo=UTC)
    sqlite_path = tmp_path / "calls.db"
    for location in (sqlite_path, postgres_url):
        generate(location, calls=150, seed=3, end=end)
    queries = [
        "занимаюсь",
        "руководителя",
        '"не ко мне"',
        "интернет не работает",
        "bill",
        "менеджер",
        "сроки",
    ]
    filters = [SearchFilters(), SearchFilters(speaker="customer"), SearchFilters(source="audited")]
    with open_search(sqlite_path) as lite, open_search(postgres_url) as pg:
        for text in queries:
            for f in filters:
                q = parse_query(text)
                a, b = lite.search(q, f, limit=100), pg.search(q, f, limit=100)
                assert a.total == b.total, (text, f)
                # in the same order (newest call first); audited call ids are new on each database
                assert [(h.source, h.call_date, h.start, h.text) for h in a.hits] == [
                    (h.source, h.call_date, h.start, h.text) for h in b.hits
                ], (text, f)
        assert lite.search(parse_query("занимаюсь")).total > 0
