"""server.cluster.judge_pool: live turns judged by classification workers on a real local Ray cluster, so a
front-end holds no model; the same detections as in process, a worker lost mid-call costs no turn, and a
published pack reaches every worker without a restart."""

from __future__ import annotations

import os
import threading

import pytest

from models.classifier import Speaker, Turn
from server.cluster.actors import join_cluster
from server.cluster.judge_pool import ClusterClassifier, ClusterJudges
from tests.conftest import wait_for

TURNS = [
    Turn("Я этим не занимаюсь, звоните в другой отдел.", Speaker.AGENT, "ru"),
    Turn("Позовите, пожалуйста, вашего руководителя!", Speaker.CUSTOMER, "ru"),
    Turn("Когда уже почините мне интернет?", Speaker.CUSTOMER, "ru"),
    Turn("Номер моего договора сорок два ноль семь.", Speaker.CUSTOMER, "ru"),
    Turn("It's the billing team's fault, not mine.", Speaker.AGENT, "en"),
    Turn("Thank you for waiting, I have checked your account.", Speaker.AGENT, "en"),
]


def _found(detections) -> list[list[tuple[str, int, int]]]:
    return [sorted((d.category, d.start, d.end) for d in turn) for turn in detections]


@pytest.fixture(scope="module")
def judges(speech_cluster):
    join_cluster(speech_cluster.address)
    speech_cluster.ensure_speech_nodes(2)
    judges = ClusterJudges("e5")
    yield judges
    judges.close()


@pytest.fixture(scope="module")
def remote(judges, default_pack):
    classifier = ClusterClassifier(default_pack, judges)
    classifier.prepare()
    return classifier


def test_turns_are_judged_on_workers_of_other_nodes_as_in_process(remote, judges, classifier):
    """Tried: six turns (alerts of both sides, a neutral one, Russian and English) judged on the cluster
    and by the in-process classifier of the same pack: the same categories at the same spans, and the work
    was done by worker processes on the speech nodes, never by this one."""
    assert _found(remote.classify_batch(TURNS)) == _found(classifier.classify_batch(TURNS))
    assert _found(remote.classify_batch(TURNS))[0]  # "Я этим не занимаюсь" is an alert
    where = judges.where()
    assert len(where) == 2 and len({w["node"] for w in where}) == 2  # one per worker machine
    assert os.getpid() not in {w["pid"] for w in where}
    assert sum(w["turns"] for w in where) == 2 * len(TURNS)
    pack = f"{remote.pack.name} v{remote.pack.version}"
    assert all(pack in w["packs"] for w in where)  # prepare() built it on both


def test_a_published_pack_reaches_every_worker_before_it_judges(remote, judges, default_pack):
    """Tried: a new version of the pack with a nonsense sentence added as an example of the category
    "Я этим не занимаюсь" raises. ``for_pack`` returns only once every worker has built it; the sentence is
    caught by the new version and not by the old, which keeps judging in the meantime."""
    category = default_pack.category(remote.classify_batch(TURNS[:1])[0][0].category)
    phrase = "Жёлтый трамвай поёт по вторникам."
    examples = category.examples.model_copy(update={"ru": [*category.examples.ru, phrase]})
    changed = category.model_copy(update={"examples": examples})
    new_pack = default_pack.model_copy(
        update={
            "version": default_pack.version + 1,
            "categories": [changed if c.id == category.id else c for c in default_pack.categories],
        }
    )
    published = remote.for_pack(new_pack)
    label = f"{new_pack.name} v{new_pack.version}"
    assert all(label in w["packs"] for w in judges.where())
    turn = [Turn(phrase, Speaker.AGENT, "ru")]
    assert category.id in {d.category for d in published.classify_batch(turn)[0]}
    assert category.id not in {d.category for d in remote.classify_batch(turn)[0]}


def test_a_worker_lost_mid_call_costs_no_turn_and_comes_back_knowing_nothing(speech_cluster, remote, judges):
    """Tried: turns judged from four threads at once while the node of one classification worker is
    killed (no goodbye). Every batch is answered, the same as before the kill; the lost worker's turn went
    to the other. A new node joins; the worker starts again there with no pack built, and builds it on its
    first turn."""
    expected = _found(remote.classify_batch(TURNS))
    victim = sorted(w["node"] for w in judges.where())[0]
    answers: list[object] = []
    stop = threading.Event()

    def judge() -> None:
        while not stop.is_set():
            answers.append(_found(remote.classify_batch(TURNS)))

    threads = [threading.Thread(target=judge, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(answers) >= 8, 60, "turns judged on both workers")
        speech_cluster.kill_node(victim)
        after_kill = len(answers)
        wait_for(lambda: len(answers) >= after_kill + 16, 120, "turns judged after the kill")
        # a turn in flight on the victim fails at once; one sent to it while it was idle in line goes to
        # the other once the victim does not answer a status call (it cannot restart until a node joins)
        wait_for(lambda: judges.retried >= 1, 120, "the victim's turn sent to the other worker")
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
        speech_cluster.ensure_speech_nodes(2)  # the next tests' cluster, whatever happened here
    assert all(answer == expected for answer in answers)
    wait_for(lambda: len(judges.where()) == 2, 180, "the lost worker to restart on the new node")
    restarted = next(w for w in judges.where() if w["node"] != victim and not w["packs"])
    assert restarted["turns"] == 0
    wait_for(
        lambda: _found(remote.classify_batch(TURNS)) == expected and all(w["packs"] for w in judges.where()),
        120,
        "the restarted worker to build the pack on a turn",
    )
