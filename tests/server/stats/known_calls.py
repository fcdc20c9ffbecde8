"""A small known set of live and audited calls, written through the real stores, whose trends are worked
out by hand in EXPECTED (and in the comments): the stats tests, the API tests and the browser tests all
read it.

The stores stamp a call with the time it is written; the calls are then moved to their dates (in March
2025) with one UPDATE each, as a centre's history would have them.

    live L1 anna  2025-03-03  alerts not_my_job x2, customer_complaint  score 1.0  apology, timeline
    live L2 oleg  2025-03-03  alert blame_shifting                      score 0.5  apology
    live L3 anna  2025-03-04  no alert                                  score 1.0  (no practice)
    live L4 -     2025-03-04  alert not_my_job; ended failed            not scored
    live L5 boris 2025-03-10  alert escalation_request                  score 0.0  escalation_offer
    live L6 anna  2025-03-10  alert not_my_job; still active            (not counted: active)
    audit A1 anna 2025-03-04  flags not_my_job (pending), blame_shifting (dismissed: not counted)
                              score 0.75, practice timeline
    audit A2 oleg 2025-03-10  flag vague_timeline (confirmed)           score 1.0  apology, empathy
    audit A3 anna 2025-03-05  failed audit                              (not counted)

Teams: anna north, oleg south, boris none.
"""

from __future__ import annotations

from pathlib import Path

from server.access.store import AuthStore
from server.audits.store import AuditStore
from server.live.store import Store
from server.storage.database import open_database

LIVE = [  # id, agent, date, alerts, end status, (score, practices) or None
    ("L1", "anna", "2025-03-03", ["not_my_job", "not_my_job", "customer_complaint"], "completed",
     (1.0, ["apology", "timeline"])),
    ("L2", "oleg", "2025-03-03", ["blame_shifting"], "completed", (0.5, ["apology"])),
    ("L3", "anna", "2025-03-04", [], "completed", (1.0, [])),
    ("L4", None, "2025-03-04", ["not_my_job"], "failed", None),
    ("L5", "boris", "2025-03-10", ["escalation_request"], "completed", (0.0, ["escalation_offer"])),
    ("L6", "anna", "2025-03-10", ["not_my_job"], None, None),
]  # fmt: skip
AUDITED = [  # agent, date, flags [(category, review)], score, practices
    ("anna", "2025-03-04", [("not_my_job", "pending"), ("blame_shifting", "dismissed")], 0.75, ["timeline"]),
    ("oleg", "2025-03-10", [("vague_timeline", "confirmed")], 1.0, ["apology", "empathy"]),
]
TEAMS = {"anna": "north", "oleg": "south", "boris": None}
KINDS = {
    "not_my_job": "forbidden",
    "blame_shifting": "forbidden",
    "vague_timeline": "forbidden",
    "customer_complaint": "trigger",
    "escalation_request": "trigger",
}

# metric/group -> {key (or (key, practice)): (calls, count, value)}, over every counted call
EXPECTED = {
    ("alerts", "category"): {
        "not_my_job": (7, 4, 57.14),
        "customer_complaint": (7, 1, 14.29),
        "blame_shifting": (7, 1, 14.29),
        "escalation_request": (7, 1, 14.29),
        "vague_timeline": (7, 1, 14.29),
        "excuses": (7, 0, 0.0),
    },
    ("alerts", "agent"): {
        "anna": (3, 4, 133.33),
        "boris": (1, 1, 100.0),
        "oleg": (2, 2, 100.0),
        "no agent": (1, 1, 100.0),
    },
    ("alerts", "team"): {"north": (3, 4, 133.33), "south": (2, 2, 100.0), "no team": (2, 2, 100.0)},
    ("alerts", "day"): {
        "2025-03-03": (2, 4, 200.0),
        "2025-03-04": (3, 2, 66.67),
        "2025-03-05": (0, 0, None),
        "2025-03-09": (0, 0, None),
        "2025-03-10": (2, 2, 100.0),
    },
    ("alerts", "week"): {"2025-03-03": (5, 6, 120.0), "2025-03-10": (2, 2, 100.0)},
    ("pass", "agent"): {
        "anna": (3, 2, 66.67),
        "boris": (1, 0, 0.0),
        "oleg": (2, 1, 50.0),
        "no agent": (0, 0, None),
    },
    ("pass", "week"): {"2025-03-03": (4, 2, 50.0), "2025-03-10": (2, 1, 50.0)},
    ("practices", "category"): {
        "apology": (6, 3, 50.0),
        "timeline": (6, 2, 33.33),
        "escalation_offer": (6, 1, 16.67),
        "empathy": (6, 1, 16.67),
        "next_steps": (6, 0, 0.0),
    },
    ("practices", "agent"): {
        ("anna", "apology"): (3, 1, 33.33),
        ("anna", "timeline"): (3, 2, 66.67),
        ("oleg", "empathy"): (2, 1, 50.0),
        ("boris", "escalation_offer"): (1, 1, 100.0),
        ("no agent", "apology"): (0, 0, None),
    },
}
TOTALS = {"alerts": (7, 8, 114.29), "pass": (6, 3, 50.0), "practices": (6, 5, 83.33)}


def write_known_calls(location: str | Path, users: bool = True) -> dict[str, str]:
    """Write the calls above into the database at `location`, and give the agents their teams (adding
    the agents that are not users yet when `users`); returns the audited calls' ids by A1, A2, A3."""
    with AuthStore(location) as auth:
        for name, team in TEAMS.items():
            if name in {u.name for u in auth.list_users()}:
                auth.set_team(name, team)
            elif users:
                auth.add_user(name, "agent", "correct horse battery", team)
    dates: list[tuple[str, str, str]] = []  # table, id, date
    with Store(location) as live:
        for call_id, agent, day, alerts, status, scored in LIVE:
            live.create_call(call_id, ["agent", "customer"], "ru", "pcm16", 8000, agent=agent)
            for i, category in enumerate(alerts):
                speaker = "customer" if KINDS[category] == "trigger" else "agent"
                start = i * 5.0
                turn = live.add_turn(call_id, speaker, f"turn {i}", start, start + 3)
                kind, text = KINDS[category], f"turn {i}"
                live.add_alert(
                    call_id, turn, category, kind, speaker, text, start, start + 3, 0.9, ["say this"], 1
                )
            if status is not None:
                live.end_call(call_id, status)
            if scored is not None:
                assert live.set_scorecard(call_id, scored[0], scored[1])
            dates.append(("calls", call_id, day))
    ids: dict[str, str] = {}
    with AuditStore(location) as audits:
        for name, (agent, day, flags, score, practices) in zip(("A1", "A2"), AUDITED, strict=True):
            call_id = ids[name] = audits.create_job({}, [(f"{name}.wav", f"/nowhere/{name}.wav")], agent)[1][
                0
            ]
            audits.save_report(call_id, _report(flags, score, practices))
            for flag in audits.flags(call_id):
                review = dict(flags)[flag.category]
                if review != "pending":
                    audits.review_flag(flag.id, review)
            dates.append(("audited_calls", call_id, day))
        ids["A3"] = audits.create_job({}, [("A3.wav", "/nowhere/A3.wav")], "anna")[1][0]
        audits.mark_failed(ids["A3"], "could not decode")
        dates.append(("audited_calls", ids["A3"], "2025-03-05"))
    _move(location, dates)
    return ids


def _report(flags: list[tuple[str, str]], score: float, practices: list[str]) -> dict:
    detections = [
        {"turn": i, "category": c, "kind": KINDS[c], "speaker": "agent", "start": i * 4.0, "end": i * 4.0 + 2,
         "text": f"turn {i}", "score": 0.9}
        for i, (c, _) in enumerate(flags)
    ] + [
        {"turn": 10 + i, "category": p, "kind": "practice", "speaker": "agent", "start": 50.0 + i,
         "end": 51.0 + i, "text": f"practice {i}", "score": 0.8}
        for i, p in enumerate(practices)
    ]  # fmt: skip
    return {
        "duration": 90.0,
        "scorecard": {"score": score, "passed": 1, "failed": 0},
        "detections": detections,
    }


def _move(location: str | Path, dates: list[tuple[str, str, str]]) -> None:
    """Give each call its date (the stores stamp the time of writing)."""
    db = open_database(location)
    try:
        with db.write("tests/known-calls") as tx:
            for table, call_id, day in dates:
                column = "call_id" if table == "calls" else "id"
                tx.execute(
                    f"UPDATE {table} SET created_at = ? WHERE {column} = ?",
                    (f"{day}T10:00:00.000+00:00", call_id),
                )
    finally:
        db.close()
