"""The web app: ``create_app(settings)`` builds a FastAPI app whose ``lifespan``
loads the model and opens the database once, into one typed
:class:`~movierec.service.state.ServiceState` (``app.state.service``) that the routers
get through :mod:`movierec.service.deps`; the middleware lives in
:mod:`movierec.service.middleware`, engine loading and reloading in
:mod:`movierec.service.engine`.

Routers only parse, validate and call the library (:mod:`movierec.serving`,
:mod:`movierec.storage`). Session-store calls run in worker threads of their own
(:class:`~movierec.service.store.AsyncStore`: a write waiting for a lock held by
another process never stalls the event loop or a read; a wait beyond
``store_wait_s`` answers 503 with Retry-After), and expired sessions are swept in
the background (``session_sweep_s``); model calls run in
worker threads through a bounded :class:`~movierec.service.gate.InferenceGate`;
concurrent recommendation misses are scored together by a
:class:`~movierec.service.gate.Batcher`, in a child process when
``inference_process`` is on (:mod:`movierec.service.scorer`: no interpreter-lock
contention with the event loop), and a change to a session starts scoring its
recommendations before the page asks (``prefetch_n``). Movie cards come from the
engine's in-memory copy of the catalogue, search results and movie views from a
small LRU cache (``ServiceState.catalog_cache``), repeated recommendations from the
engine's cache keyed by the session's state (no thread, no model call).

Model reloading (:class:`ModelReloader`): ``POST /api/admin/reload`` from the
machine itself (loopback, no proxy headers), ``SIGHUP`` to a single-process
server, or ``watch_model_s`` (every worker process polls the model directory).
The new engine is built and checked off the event loop, then swapped in with
one assignment; if anything fails, the previous engine keeps serving and the
error is logged and shown by ``GET /api/health`` (``last_reload_error``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from swagger_ui_bundle import swagger_ui_path

from movierec.service.config import ServiceSettings
from movierec.service.engine import (
    ModelReloader,
    ReloadBusy,
    ReloadError,
    build_engine,
    check_engine,
    freeze_heap,
    limit_torch_threads,
    model_signature,
    open_artwork,
    start_scorer,
)
from movierec.service.gate import Batcher, Busy, InferenceGate
from movierec.service.middleware import DOCS_HTML, BodyLimit, HeadAsGet, SecurityHeaders, page_csp
from movierec.service.ratelimit import RateLimit, TokenBuckets
from movierec.service.schemas import ErrorOut
from movierec.service.state import Buckets, ServiceState
from movierec.serving import Answer, session_key
from movierec.storage.sessions import StoreBusy

log = logging.getLogger(__name__)

__all__ = [
    "SETTINGS_ENV",
    "ModelReloader",
    "ReloadBusy",
    "ReloadError",
    "ServiceSettings",
    "app_from_env",
    "build_engine",
    "check_engine",
    "create_app",
    "model_signature",
    "score_batch",
    "start_scorer",
]

#: Environment variable through which ``movierec serve --workers N`` hands each
#: worker process its settings (JSON, see :func:`app_from_env`).
SETTINGS_ENV = "MOVIEREC_SERVICE_SETTINGS"

STATIC_DIR = Path(str(resources.files("movierec.service") / "static"))


def score_batch(state: ServiceState, items: list[tuple[Any, int, int]]) -> list[Answer]:
    """The batcher's model call: ``Engine.recommend_many`` here, or in the scoring process
    when there is one (its answers are then remembered by this process's engine).

    The engine is read before the scorer and a reload swaps the scorer first: a batch
    never stores the old model's answers in the new engine's cache.
    """
    engine = state.engine
    scorer = state.scorer
    if scorer is None:
        return engine.recommend_many(items)
    answers: list[Answer] = scorer(items)
    for (session, n, n_tags), answer in zip(items, answers, strict=True):
        engine.remember(session, n, n_tags, answer)
    return answers


def create_app(settings: ServiceSettings | None = None, *, watch_model_s: float | None = None) -> FastAPI:
    """The movierec web app (page at ``/``, JSON API under ``/api``, OpenAPI at ``/docs``).

    ``watch_model_s``: reload the model when its directory changes, checked this
    often (seconds); ``None``: only on ``POST /api/admin/reload`` or ``SIGHUP``.
    """
    settings = settings or ServiceSettings()
    if watch_model_s is not None and not watch_model_s > 0:
        raise ValueError(f"watch_model_s must be a positive number of seconds, got {watch_model_s}")
    limit = settings.rate_limit_buckets
    buckets = Buckets(
        writes=TokenBuckets(settings.write_rate, settings.write_burst, limit),
        addresses=TokenBuckets(settings.address_write_rate, settings.address_write_burst, limit),
        sessions=TokenBuckets(settings.session_create_rate, settings.session_create_burst, limit),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from movierec.service.deps import open_store
        from movierec.storage.db import connect, migrate

        start = time.perf_counter()
        conn = connect(settings.resolved_database_path)
        background: list[asyncio.Task[None]] = []
        hup = False
        state: ServiceState | None = None
        store = None
        try:
            migrate(conn)
            # before the model is read: a model saved while the service starts is reloaded
            seen = model_signature(settings.resolved_model_dir)
            engine = build_engine(
                settings.resolved_model_dir,
                conn,
                ann_min_movies=settings.ann_min_movies,
                int8_heads=settings.int8_heads,
            )
            store = open_store(settings)
            background.append(asyncio.create_task(sweep_sessions(store, settings)))
            gate = InferenceGate(settings.max_inference_threads, settings.max_waiting)
            scorer = (
                await anyio.to_thread.run_sync(start_scorer, settings) if settings.inference_process else None
            )
            # concurrent recommendation misses share one model call; always the current engine.
            # One scoring process works on one batch at a time: while it does, the next batch
            # gathers every request that arrives (a second batch in flight would only be smaller)
            rec_gate = gate if scorer is None else InferenceGate(1, settings.max_waiting)
            built: list[ServiceState] = []  # the batcher scores through the state made next
            batcher: Batcher[Any, Answer] = Batcher(
                rec_gate,
                lambda items: score_batch(built[0], items),
                key=lambda item: (session_key(item[0]), int(item[1]), int(item[2])),
            )
            state = ServiceState(
                settings=settings,
                buckets=buckets,
                conn=conn,
                engine=engine,
                store=store,
                gate=gate,
                artwork=open_artwork(settings, conn),
                rec_batcher=batcher,
                scorer=scorer,
            )
            built.append(state)
            app.state.service = state
            del engine, scorer  # the state holds them: a reload must be able to free the old ones
            if state.artwork.client is not None:
                background.append(asyncio.create_task(state.artwork.run()))
            reloader = state.reloader = ModelReloader(state, seen=seen)
            if watch_model_s is not None:
                background.append(asyncio.create_task(reloader.watch(watch_model_s)))
            if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
                with suppress(NotImplementedError, RuntimeError, ValueError):
                    asyncio.get_running_loop().add_signal_handler(
                        signal.SIGHUP,
                        lambda: background.append(asyncio.create_task(reloader.reload_quietly())),
                    )
                    hup = True
            freeze_heap()
            log.info("movierec service ready in %.2f s (pid %d)", time.perf_counter() - start, os.getpid())
            yield
        finally:
            if hup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            for task in [*background, *(state.prefetches if state is not None else ())]:
                task.cancel()
            if state is not None and state.scorer is not None:
                await anyio.to_thread.run_sync(state.scorer.close, True)
            if store is not None:
                await anyio.to_thread.run_sync(store.close)
            if state is not None and state.artwork.cache is not None:
                state.artwork.cache.close()
            if state is not None:
                state.conn.close()  # a reload may have opened a newer one
            conn.close()

    app = FastAPI(
        title="movierec",
        description="Movie and tag recommendations for anonymous sessions.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served below from the swagger-ui-bundle package, not a CDN
        redoc_url=None,
        responses={422: {"model": ErrorOut, "description": "Invalid input"}},
    )

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)}
        )

    @app.exception_handler(StoreBusy)
    async def _store_busy(request: Request, exc: StoreBusy) -> JSONResponse:
        log.warning("sessions database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)}
        )

    from movierec.service.scorer import ScorerError

    @app.exception_handler(ScorerError)
    async def _scorer_down(request: Request, exc: ScorerError) -> JSONResponse:
        log.error("recommendations unavailable: %s", exc)
        return JSONResponse(
            {"detail": "the recommender is restarting; retry in a moment"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # last resort
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    from movierec.service.routers import admin, favourites, health, movies, recommendations, session

    for module in (health, movies, session, recommendations, favourites, admin):
        app.include_router(module.router, prefix="/api")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_HTML)

    app.mount("/docs/assets", StaticFiles(directory=Path(str(swagger_ui_path))), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        RateLimit,
        buckets=buckets.writes,
        cookie_name=settings.cookie_name,
        addresses=buckets.addresses,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(HeadAsGet)
    # a Host the settings do not name gets 400 before anything else runs (DNS rebinding)
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=settings.settings.allowed_host_list, www_redirect=False
    )
    app.add_middleware(SecurityHeaders, csp=page_csp(settings.settings.tmdb_image_url))
    return app


async def sweep_sessions(store: Any, settings: ServiceSettings) -> None:
    """Delete expired sessions now and every ``settings.session_sweep_s`` seconds (until
    cancelled): empty ones idle ``session_empty_days``, any idle ``session_idle_days``.
    A sweep that finds the database busy or failing is logged and tried at the next turn."""
    day = 24 * 3600.0
    while True:
        try:
            gone = await store.expire(
                empty_after_s=settings.session_empty_days * day, idle_after_s=settings.session_idle_days * day
            )
            if gone:
                log.info("deleted %d expired sessions", gone)
        except Exception as exc:
            log.warning(
                "session sweep failed (%s: %s); next try in %g s",
                type(exc).__name__,
                exc,
                settings.session_sweep_s,
            )
        await anyio.sleep(settings.session_sweep_s)


def app_from_env() -> FastAPI:
    """The app of one worker process of ``movierec serve --workers N`` (a uvicorn factory).

    Reads :data:`SETTINGS_ENV`: ``{"settings": <ServiceSettings JSON>, "watch_model_s": float | null}``.
    Each worker runs model calls with one torch thread (the processes share the cores).
    """
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"{SETTINGS_ENV} is not set; start workers with `movierec serve --workers N`")
    spec = json.loads(raw)
    limit_torch_threads()
    return create_app(
        ServiceSettings.model_validate(spec["settings"]), watch_model_s=spec.get("watch_model_s")
    )
