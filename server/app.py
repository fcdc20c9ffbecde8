"""The FastAPI application: live-call WebSockets, telephony adapters, REST, and the UI pages.

``create_app(settings)`` builds the app; the models load in its lifespan (before the first request), so a
call that connects never waits for a model to load. Tests start it under a real uvicorn server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from server.access import api_login, api_users
from server.access.store import AuthStore
from server.audits import api as api_audits
from server.audits.jobs import AuditRunner, audit_function
from server.audits.store import AuditStore
from server.config import Settings
from server.live import api as api_calls
from server.live import status, telephony
from server.live.calls import CallRegistry
from server.live.engine import LiveEngine
from server.live.relay import start_relay
from server.packs import api as api_packs
from server.packs.service import PackService
from server.packs.store import PackStore
from server.search import api as api_search
from server.search.store import open_search
from server.stats import api as api_stats
from server.stats.aggregate import StatsReader
from server.stats.scoring import LiveScorer

logger = logging.getLogger(__name__)


def static_dir() -> Path:
    """The UI's static files, shipped inside the ``ui`` package."""
    return Path(str(files("ui") / "static"))


def create_app(settings: Settings | None = None, *, engine: LiveEngine | None = None) -> FastAPI:
    """The server app for `settings`; pass `engine` to share already-loaded models (tests, benchmarks)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        live = engine or LiveEngine.start(settings)
        app.state.auth = AuthStore(settings.database)
        if not app.state.auth.has_admin():
            logger.warning("no admin user yet: create one with `callbuffer users add NAME --role admin`")
        app.state.calls = CallRegistry(live)
        pack_store = PackStore(settings.database, seed=live.classifier.pack)
        app.state.packs = PackService(pack_store, live)
        await asyncio.to_thread(app.state.packs.activate_stored)
        # PostgreSQL: other front-ends' calls reach sidebars here, and pack publications every front-end
        app.state.relay = await start_relay(settings, app.state.calls, app.state.packs)
        app.state.audits = AuditStore(settings.database)
        app.state.search = open_search(settings.database)  # turns of every call (server.search)
        app.state.audit_runner = AuditRunner(app.state.audits, *audit_function(settings, live))
        app.state.stats = StatsReader(settings.database, settings.scorecard_pass)  # after the stores' tables
        app.state.scorer = LiveScorer(live.store, lambda: live.classifier, settings.score_every).start()
        try:
            yield
        finally:
            await asyncio.to_thread(app.state.scorer.stop)
            await app.state.calls.shutdown()
            if app.state.relay is not None:  # after the calls' ends are queued, before the stores close
                await asyncio.to_thread(app.state.relay.stop)
            app.state.audit_runner.close()
            app.state.audits.close()
            app.state.search.close()
            app.state.stats.close()
            pack_store.close()
            app.state.auth.close()
            if engine is None:
                live.close()

    app = FastAPI(
        title="callbuffer",
        summary="Live transcripts and buffer-response prompts for call-centre agents",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(api_calls.router)
    app.include_router(telephony.router)
    app.include_router(api_audits.router)
    app.include_router(api_packs.router)
    app.include_router(api_login.router)
    app.include_router(api_users.router)
    app.include_router(api_search.router)
    app.include_router(api_stats.router)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/", include_in_schema=False)
    @app.get("/agent", include_in_schema=False)
    async def agent_page() -> FileResponse:
        return FileResponse(static_dir() / "agent.html")

    @app.get("/review", include_in_schema=False)
    async def review_page() -> FileResponse:
        return FileResponse(static_dir() / "review.html")

    @app.get("/trainer", include_in_schema=False)
    async def trainer_page() -> FileResponse:
        return FileResponse(static_dir() / "trainer.html")

    @app.get("/trends", include_in_schema=False)
    async def trends_page() -> FileResponse:
        return FileResponse(static_dir() / "trends.html")

    @app.get("/me", include_in_schema=False)
    async def my_page() -> FileResponse:
        return FileResponse(static_dir() / "me.html")

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        """Liveness and load: calls, capacity, the transcription queue, alert latency."""
        return await asyncio.to_thread(status.health, request.app.state.calls)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        """The same and each worker's load, in Prometheus text format."""
        text = await asyncio.to_thread(status.prometheus, request.app.state.calls)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
