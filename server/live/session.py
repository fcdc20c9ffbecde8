"""One live call on the server: audio frames in, transcripts and alerts out to the call's listeners.

The pure recogniser (:class:`models.streaming.CallRecognizer`, deferred mode) does the listening; this
class only moves data. Frames are decoded on the event loop (so a bad frame is answered at once), queued,
and fed to the recogniser on a worker thread in arrival order; listening never waits for Whisper. Each
finished turn goes to the shared transcription pool at once (or was sent there early, when it went quiet),
and a publisher takes the results in order: the turn is stored, classified with the active phrase pack and
its alerts stored before the events go out, so what an agent saw is always in the store. Partial
transcripts are previews: they run only when the pool has room. A final that waits longer than
``overload_after`` seconds makes the call say so (an ``overload`` event) rather than silently lag.

A disconnect mid-call flushes the turn in progress (its audio was received, so it is kept) and marks the
call ``disconnected``; a client may reconnect with the same call id and go on, its times continuing after
what was already stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np

from audio.codecs import decode_frame
from audio.endpoint import VAD_SAMPLE_RATE
from models.classifier import Detection, Speaker, Turn
from models.streaming import CallRecognizer, PendingTurn, PieceKey, TranscriptEvent, piece_key
from models.transcriber import Segment
from server.live.engine import LiveEngine
from server.live.protocol import AlertMessage, EndMessage, OverloadMessage, StartMessage, TranscriptMessage

logger = logging.getLogger(__name__)

Emit = Callable[[str, bool], Awaitable[None]]  # (event JSON, keep for replay)
OVERLOAD_REPEAT_S = 5.0  # tell a call about overload at most this often
# a speaker's turns closer than this (seconds) are also judged together: a pause the endpointer took for a
# turn's end may fall inside a phrase («Это бухгалтерия, | а не я напутала»); an audit hears them as one
JOIN_GAP_S = 1.0
_END = object()
T = TypeVar("T")


class CallState(StrEnum):
    """Where a call session is in its life."""

    STREAMING = "streaming"  # audio is being received
    STOPPING = "stopping"  # stop received (or the line dropped); the last turns are being finished
    ENDED = "ended"  # stopped normally, everything sent and stored
    DISCONNECTED = "disconnected"  # the client went away; what was received is stored
    FAILED = "failed"  # a server fault; what was finished before it is stored


@dataclass(frozen=True)
class _Final:
    """A finished turn on its way: its transcription, when the endpointer declared it, whether early."""

    turn: PendingTurn
    futures: list[Future[list[Segment]]]  # one per piece of the turn, in order
    declared: float
    early: bool


class SessionStateError(RuntimeError):
    """An operation that the call's state does not allow (audio after stop, a second stop)."""


class CallSession:
    """The server side of one ``/v1/calls/{id}/stream`` connection (or a telephony adapter's call)."""

    def __init__(
        self,
        call_id: str,
        start: StartMessage,
        engine: LiveEngine,
        emit: Emit,
        executor: Executor,
        *,
        time_offset: float = 0.0,
        previews: bool = True,
    ) -> None:
        """``previews``: send partial transcripts (off for a call admitted beyond capacity)."""
        self.call_id = call_id
        self.previews = previews
        self.start = start
        self.state = CallState.STREAMING
        self._engine = engine
        self._emit = emit
        self._executor = executor
        self._offset = time_offset
        self._language = start.language
        self._recognizer = CallRecognizer(
            None,
            start.roles,
            language=start.language,
            endpoint=engine.endpoint,
            partial_every=engine.settings.partial_every,
            min_piece=engine.settings.min_piece or None,
        )
        self._queue: asyncio.Queue[np.ndarray | object] = asyncio.Queue()
        self._finals: asyncio.Queue[_Final | object] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._last_final_end: dict[str, float] = {}
        # each speaker's last final turn and the alerts it raised, to judge the next one with it
        self._previous: dict[str, tuple[TranscriptMessage, frozenset[str]]] = {}
        self._last_overload = -OVERLOAD_REPEAT_S
        self._background: set[asyncio.Task[None]] = set()  # previews and overload notices being sent
        self._early: dict[PieceKey, Future[list[Segment]]] = {}  # pieces of open turns sent ahead
        self._previews: set[Future[list[Segment]]] = set()
        self._publisher = asyncio.create_task(self._publish_finals(), name=f"call-{call_id}-publish")
        self._task = asyncio.create_task(self._run(), name=f"call-{call_id}")
        for task in (self._task, self._publisher):
            task.add_done_callback(self._worker_ended)
        if not previews:  # sent once the loop runs again: after the caller has subscribed to the call
            self._send_later(
                OverloadMessage(
                    message="admitted beyond the server's capacity: no partial transcripts on this call; "
                    "final turns and alerts as usual",
                    queued=engine.pool.queued(),
                ).to_json()
            )

    # -- what the socket calls ----------------------------------------------------------------------------

    def feed(self, frame: bytes) -> None:
        """One binary audio frame; raises audio.codecs.FrameError for a malformed one (the call goes on)."""
        if self.state is not CallState.STREAMING:
            raise SessionStateError(f"call {self.call_id} is {self.state}: no more audio is accepted")
        if self._task.done() or self._publisher.done():  # a fault (logged): do not pile up unread audio
            raise SessionStateError(f"call {self.call_id} cannot go on: recognition failed")
        audio = decode_frame(frame, encoding=self.start.encoding, channels=self.start.channels)
        self._queue.put_nowait(audio)

    async def stop(self) -> None:
        """Normal end: finish every open turn, store and send it, mark the call completed, send ``end``."""
        await self._close(CallState.ENDED)

    async def disconnect(self) -> None:
        """The client went away: keep what was received (the open turn is finished), mark it disconnected."""
        await self._close(CallState.DISCONNECTED)

    async def fail(self) -> None:
        """A server fault: stop recognising and mark the call failed; finished turns are already stored."""
        self.state = CallState.FAILED
        self._task.cancel()
        self._publisher.cancel()
        self._drop_background_work()
        await self._in_thread(self._engine.store.end_call, self.call_id, "failed")

    # -- the worker -------------------------------------------------------------------------------------

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("call %s: %s failed", self.call_id, task.get_name(), exc_info=task.exception())

    async def _close(self, final_state: CallState) -> None:
        if self.state is not CallState.STREAMING:
            raise SessionStateError(f"call {self.call_id} is already {self.state}")
        self.state = CallState.STOPPING
        self._queue.put_nowait(_END)
        try:
            await self._task
            await self._publisher
        except Exception:
            self.state = CallState.FAILED
            await self._in_thread(self._engine.store.end_call, self.call_id, "failed")
            raise
        status = "completed" if final_state is CallState.ENDED else "disconnected"
        await self._in_thread(self._engine.store.end_call, self.call_id, status)
        self.state = final_state
        if final_state is CallState.ENDED:
            await self._emit(EndMessage().to_json(), False)

    async def _run(self) -> None:
        """Feed queued audio to the recogniser in order (several queued frames in one push), and hand what
        it heard to the pool; at the end, finish the open turns and let the publisher drain."""
        rate = self.start.sample_rate
        while True:
            item = await self._queue.get()
            chunks = [item]
            while not self._queue.empty() and chunks[-1] is not _END:
                chunks.append(self._queue.get_nowait())
            ending = chunks[-1] is _END
            audio = [c for c in chunks if c is not _END]
            if audio:
                await self._in_thread(self._recognizer.push, np.concatenate(audio, axis=1), rate)
            if ending:
                await self._in_thread(self._recognizer.finish)
                self._dispatch_finals()
                self._drop_background_work()
                self._finals.put_nowait(_END)
                return
            self._dispatch_finals()
            self._start_early()
            self._start_partials()

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking work (recognition, the store) on the calls' thread pool."""
        return await self._loop.run_in_executor(self._executor, fn, *args)

    def _send_later(self, event: str) -> None:
        """Send an event from a callback (not a coroutine), keeping the task referenced until it is done."""
        task = asyncio.ensure_future(self._emit(event, False))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _dispatch_finals(self) -> None:
        """Send each finished turn's pieces to the pool, except those already sent early."""
        pool = self._engine.pool
        for turn in self._recognizer.take_finals():
            futures, early = [], True
            for piece in turn.parts():
                future = self._early.pop(piece_key(turn.channel, piece), None)
                if future is None:
                    early = False
                    future = pool.submit(self.call_id, piece.samples, self._language)
                else:
                    pool.promote(future)  # a guess still waiting is now a final
                futures.append(future)
            self._cancel_early(turn.channel, before=turn.utterance.end)  # guesses the speaker outran
            self._finals.put_nowait(_Final(turn, futures, time.perf_counter(), early))
        if pool.overloaded:
            self._overload()

    def _cancel_early(self, channel: int, *, before: float | None = None, start: int | None = None) -> None:
        """Drop the channel's early pieces that start before `before` (seconds) or at `start` (sample):
        the speaker went on, so they are of no use (cancelled if not yet running)."""
        limit = None if before is None else round(before * VAD_SAMPLE_RATE)
        for key in [k for k in self._early if k[0] == channel]:
            if (limit is not None and key[1] < limit) or key[1] == start:
                self._early.pop(key).cancel()

    async def _publish_finals(self) -> None:
        """Publish finished turns in the order they ended, each once its transcription is back."""
        while (final := await self._finals.get()) is not _END:
            segments = [s for future in final.futures for s in await self._result(future)]
            logger.debug(
                "call %s: %.2f s turn transcribed in %.2f s (queue included; started early: %s)",
                self.call_id,
                final.turn.utterance.duration,
                time.perf_counter() - final.declared,
                final.early,
            )
            event = self._recognizer.turn_event(final.turn, segments)
            if event is not None:
                alerts = await self._publish(event)
                silence = self._engine.settings.endpoint_silence
                self._engine.metrics.turn_sent(time.perf_counter() - final.declared + silence, alerts)

    async def _result(self, future: Future[list[Segment]]) -> list[Segment]:
        """The transcription, with an overload notice to the call for every `overload_after` it waits."""
        waiting = asyncio.wrap_future(future)
        patience = self._engine.settings.overload_after
        while not (await asyncio.wait({waiting}, timeout=patience))[0]:
            self._overload()
        return waiting.result()

    async def _publish(self, event: TranscriptEvent) -> int:
        """A final turn: store, classify, store its alerts (on a worker thread), then send them all;
        returns how many alerts it raised."""
        shifted = self._shifted(event)
        alerts = await self._in_thread(self._record_final, shifted)
        self._last_final_end[event.speaker] = event.end
        await self._emit(shifted.to_json(), True)
        for alert in alerts:
            await self._emit(alert.to_json(), True)
        return len(alerts)

    def _shifted(self, event: TranscriptEvent) -> TranscriptMessage:
        """The event on the call's clock (a resumed call continues after what was stored)."""
        return TranscriptMessage.from_event(event).model_copy(
            update={"start": event.start + self._offset, "end": event.end + self._offset}
        )

    def _record_final(self, turn: TranscriptMessage) -> list[AlertMessage]:
        """Store the turn, judge it, store its alerts; runs on a worker thread."""
        store = self._engine.store
        turn_id = store.add_turn(self.call_id, turn.speaker, turn.text, turn.start, turn.end)
        speaker = Speaker(turn.speaker)
        previous, raised = self._previous.get(turn.speaker, (None, frozenset()))
        before = None
        if previous is not None and turn.start - previous.end <= JOIN_GAP_S:
            before = Turn(previous.text, speaker, self._language)
        judged = self._engine.judge(Turn(turn.text, speaker, self._language), before, raised)
        self._previous[turn.speaker] = (turn, frozenset(d.category for d in judged.detections))
        alerts = []
        for detection in judged.detections:
            alert = self._alert(turn, detection, judged.pack_version)
            store.add_alert(
                self.call_id,
                turn_id,
                alert.category,
                alert.kind,
                alert.speaker,
                alert.text,
                alert.start,
                alert.end,
                alert.score,
                alert.suggestions,
                alert.pack_version,
                title=alert.title,
                span=alert.span,
            )
            alerts.append(alert)
        return alerts

    def _alert(self, turn: TranscriptMessage, detection: Detection, pack_version: int) -> AlertMessage:
        category = self._engine.category(detection.category)
        lang = self._language or _guess_language(turn.text)
        return AlertMessage(
            kind=detection.kind,
            category=detection.category,
            title=category.title_in(lang),
            speaker=turn.speaker,
            text=turn.text,
            start=turn.start,
            end=turn.end,
            score=round(min(1.0, max(0.0, detection.score)), 3),
            suggestions=category.suggestions(lang),
            span=(detection.start, detection.end),
            pack_version=pack_version,
        )

    def _start_early(self) -> None:
        """Send turns that have just gone quiet to the pool now: if the silence lasts, the final's text is
        ready when the endpointer declares it. Skipped when finals already wait for every worker."""
        settings = self._engine.settings
        if not 0 < settings.early_after < settings.endpoint_silence:
            return
        pool = self._engine.pool
        for turn in self._recognizer.likely_finals(int(settings.early_after * 1000)):
            key = piece_key(turn.channel, turn.utterance)
            self._cancel_early(turn.channel, start=key[1])  # an earlier guess at the same piece
            if turn.kept or pool.queued() < pool.workers:  # a kept piece is needed in any case
                self._early[key] = pool.submit(
                    self.call_id, turn.utterance.samples, self._language, guess=not turn.kept
                )

    # -- partial previews -------------------------------------------------------------------------------

    def _start_partials(self) -> None:
        """Hand due previews to the pool if it has room; their events are sent when they come back.

        Of a turn in pieces only the newest part is transcribed for a preview; the kept pieces' texts are
        put in front of it, so a preview is skipped until they are back."""
        if not self.previews:
            return
        for turn in self._recognizer.due_partials():
            *kept, rest = turn.parts()
            texts = [self._early.get(piece_key(turn.channel, piece)) for piece in kept]
            if not all(f is not None and f.done() and not f.cancelled() and not f.exception() for f in texts):
                continue
            before = [segment for f in texts for segment in f.result()]
            future = self._engine.pool.submit_partial(self.call_id, rest.samples, self._language)
            if future is None:
                continue
            self._previews.add(future)
            future.add_done_callback(lambda f, t=turn, b=before: self._on_loop(self._partial_done, f, t, b))

    def _on_loop(self, fn: Callable[..., None], *args: object) -> None:
        """Run `fn` on the event loop from a pool thread; nothing if the server has already stopped."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def _partial_done(self, future: Future[list[Segment]], turn: PendingTurn, before: list[Segment]) -> None:
        self._previews.discard(future)
        if future.cancelled() or future.exception() is not None or self.state is not CallState.STREAMING:
            return
        event = self._recognizer.turn_event(turn, before + future.result())
        if event is None or event.start < self._last_final_end.get(event.speaker, -1.0):
            return  # the turn was finished while its preview ran: the final says it better
        self._send_later(self._shifted(event).to_json())

    def _drop_background_work(self) -> None:
        """The call is ending: previews and unused early guesses still queued are not needed."""
        for future in list(self._previews):
            future.cancel()
        for future in self._early.values():
            future.cancel()
        self._early.clear()

    def _overload(self) -> None:
        now = time.monotonic()
        if now - self._last_overload < OVERLOAD_REPEAT_S:
            return
        self._last_overload = now
        queued = self._engine.pool.queued()
        message = OverloadMessage(
            message=f"the server is behind: {queued} turns wait for transcription; prompts may be late",
            queued=queued,
        )
        logger.warning("call %s: %s", self.call_id, message.message)
        self._send_later(message.to_json())


def _guess_language(text: str) -> str:
    """'ru' when the text is mostly Cyrillic, else 'en': for picking the suggestions' language."""
    cyrillic = sum("а" <= ch.lower() <= "я" or ch in "ёЁ" for ch in text)
    latin = sum("a" <= ch.lower() <= "z" for ch in text)
    return "ru" if cyrillic >= latin else "en"
