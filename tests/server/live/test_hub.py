"""server.live.hub: fan-out, replay for late listeners, and cutting off a listener that stopped reading."""

from __future__ import annotations

import asyncio

from server.live.hub import LISTENER_QUEUE, EventHub


def _drain(queue: asyncio.Queue) -> list:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def test_live_history_is_replayed_and_previews_are_not():
    async def run():
        hub = EventHub()
        hub.open("c1", ["old-turn"])
        early = hub.subscribe("c1")
        hub.publish("c1", "final", keep=True)
        hub.publish("c1", "partial", keep=False)
        late = hub.subscribe("c1")
        hub.close("c1", "end")
        return _drain(early.queue), _drain(late.queue), hub.is_live("c1")

    early, late, live = asyncio.run(run())
    assert early == ["old-turn", "final", "partial", "end", None]
    assert late == ["old-turn", "final", "end", None]
    assert not live


def test_a_listener_that_stops_reading_is_cut_off_without_holding_up_others():
    """One listener never reads while 2 001 events are published: it is marked overflowed and its queue
    ends with the end marker (its socket gets closed and the page reconnects); the other keeps up."""

    async def run():
        hub = EventHub()
        hub.open("c2", [])
        stuck, reader = hub.subscribe("c2"), hub.subscribe("c2")
        got = []
        for i in range(LISTENER_QUEUE + 1):
            hub.publish("c2", f"e{i}", keep=False)
            got.extend(_drain(reader.queue))
        return stuck, got

    stuck, got = asyncio.run(run())
    assert stuck.overflowed and _drain(stuck.queue) == [None]
    assert len(got) == LISTENER_QUEUE + 1


def test_unsubscribe_forgets_the_listener():
    async def run():
        hub = EventHub()
        listener = hub.subscribe("c3")
        hub.unsubscribe(listener)
        hub.publish("c3", "x", keep=True)
        return hub.listener_count("c3"), _drain(listener.queue)

    assert asyncio.run(run()) == (0, [])
