"""The web app: ``create_app(settings)`` builds a FastAPI app whose ``lifespan``
loads the model and opens the database once.

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
small LRU cache (``app.state.catalog_cache``), repeated recommendations from the
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
from starlette.types import ASGIApp, Message, Receive, Scope, Send
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
from movierec.service.ratelimit import RateLimit, TokenBuckets
from movierec.service.schemas import ErrorOut
from movierec.serving import Answer, LRUCache, session_key
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

#: Where the page may embed a trailer from (youtube-nocookie: no cookies until it plays).
TRAILER_ORIGIN = "https://www.youtube-nocookie.com"


def page_csp(image_url: str = "https://image.tmdb.org/t/p") -> bytes:
    """The page's Content-Security-Policy: images from this origin and the artwork's image
    origin only, trailers framed from :data:`TRAILER_ORIGIN` only, scripts and styles from here."""
    from urllib.parse import urlsplit

    parts = urlsplit(image_url)
    images = f"{parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'self'; img-src 'self' {images} data:; frame-src {TRAILER_ORIGIN}; script-src 'self'; "
        "style-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
    ).encode()


SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", page_csp()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


#: The OpenAPI page (Swagger UI from the ``swagger-ui-bundle`` package, started by
#: ``static/docs.js``): no inline script and nothing from another origin; Swagger UI sets
#: inline styles, so only these paths allow them.
DOCS_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/docs/")
DOCS_ASSETS = "/docs/assets/"
DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>movierec API</title>
<link rel="icon" href="/favicon.ico"><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/static/docs.js"></script>
</body></html>
"""


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (:data:`DOCS_CSP` on the docs
    page), and ``Cache-Control: no-store`` to answers under ``/api/`` that set none: they
    carry a visitor's session, favourites or recommendations, which no shared cache (nor
    the browser's back button on a shared machine) may keep."""

    def __init__(self, app: ASGIApp, *, csp: bytes | None = None) -> None:
        self.app = app
        self.headers = [
            (k, csp if csp is not None and k == b"content-security-policy" else v)
            for k, v in SECURITY_HEADERS
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = str(scope.get("path", ""))
        docs = path in DOCS_PATHS or path.startswith(DOCS_ASSETS)
        extra = [(b"cache-control", b"no-store")] if path.startswith("/api/") else []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, DOCS_CSP if docs and k == b"content-security-policy" else v)
                    for k, v in [*self.headers, *extra]
                    if k not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """Answers ``HEAD`` on every ``GET`` route as the ``GET`` would, without the body
    (FastAPI's routes answered 405): headers, status and ``Content-Length`` are the GET's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


class BodyLimit:
    """Answers 413 to request bodies larger than ``max_bytes`` (declared or streamed), and
    408 to one that does not arrive in full within ``timeout_s`` seconds (a body declared
    with ``Content-Length: 20`` and 14 bytes sent once held its connection forever)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def _reject(self, send: Send, status: int = 413) -> None:
        if status == 413:
            body = b'{"detail":"request body too large (limit %d bytes)"}' % self.max_bytes
        else:
            body = b'{"detail":"request body not received within %g s"}' % self.timeout_s
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 408:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await self._reject(send)
                    return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # read the whole body (bounded), then replay it to the app
        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                await self._reject(send, 408)
                return
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(
            scope,
            _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive),
            send,
        )


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A ``receive`` that returns ``messages`` first, then defers to ``then``."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


def score_batch(app: FastAPI, items: list[tuple[Any, int, int]]) -> list[Answer]:
    """The batcher's model call: ``Engine.recommend_many`` here, or in the scoring process
    when there is one (its answers are then remembered by this process's engine).

    The engine is read before the scorer and a reload swaps the scorer first: a batch
    never stores the old model's answers in the new engine's cache.
    """
    engine = app.state.engine
    scorer = app.state.scorer
    if scorer is None:
        return engine.recommend_many(items)
    answers: list[Answer] = scorer(items)
    for (state, n, n_tags), answer in zip(items, answers, strict=True):
        engine.remember(state, n, n_tags, answer)
    return answers


def create_app(settings: ServiceSettings | None = None, *, watch_model_s: float | None = None) -> FastAPI:
    """The movierec web app (page at ``/``, JSON API under ``/api``, OpenAPI at ``/docs``).

    ``watch_model_s``: reload the model when its directory changes, checked this
    often (seconds); ``None``: only on ``POST /api/admin/reload`` or ``SIGHUP``.
    """
    settings = settings or ServiceSettings()
    if watch_model_s is not None and not watch_model_s > 0:
        raise ValueError(f"watch_model_s must be a positive number of seconds, got {watch_model_s}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from movierec.service.deps import open_store
        from movierec.storage.db import connect, migrate

        start = time.perf_counter()
        conn = connect(settings.resolved_database_path)
        background: list[asyncio.Task[None]] = []
        hup = False
        store = None
        try:
            migrate(conn)
            # before the model is read: a model saved while the service starts is reloaded
            seen = model_signature(settings.resolved_model_dir)
            app.state.engine = build_engine(
                settings.resolved_model_dir,
                conn,
                ann_min_movies=settings.ann_min_movies,
                int8_heads=settings.int8_heads,
            )
            app.state.conn = conn
            store = app.state.store = open_store(settings)
            background.append(asyncio.create_task(sweep_sessions(store, settings)))
            gate = app.state.gate = InferenceGate(settings.max_inference_threads, settings.max_waiting)
            app.state.scorer = None
            if settings.inference_process:
                app.state.scorer = await anyio.to_thread.run_sync(start_scorer, settings)
            # concurrent recommendation misses share one model call; always the current engine.
            # One scoring process works on one batch at a time: while it does, the next batch
            # gathers every request that arrives (a second batch in flight would only be smaller)
            rec_gate = gate if app.state.scorer is None else InferenceGate(1, settings.max_waiting)
            app.state.rec_batcher = Batcher(
                rec_gate,
                lambda items: score_batch(app, items),
                key=lambda item: (session_key(item[0]), int(item[1]), int(item[2])),
            )
            app.state.prefetches = set()  # running prefetch tasks (a reference keeps each alive)
            app.state.service_settings = settings
            app.state.catalog_cache = LRUCache(4096)  # search results and movie views; emptied on reload
            app.state.artwork = open_artwork(settings, conn)
            if app.state.artwork.client is not None:
                background.append(asyncio.create_task(app.state.artwork.run()))
            reloader = app.state.reloader = ModelReloader(app, settings, seen=seen)
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
            for task in [*background, *getattr(app.state, "prefetches", ())]:
                task.cancel()
            if getattr(app.state, "scorer", None) is not None:
                await anyio.to_thread.run_sync(app.state.scorer.close, True)
            if store is not None:
                await anyio.to_thread.run_sync(store.close)
            if getattr(app.state, "artwork", None) is not None and app.state.artwork.cache is not None:
                app.state.artwork.cache.close()
            getattr(app.state, "conn", conn).close()  # a reload may have opened a newer one
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
    app.state.write_buckets = TokenBuckets(
        settings.write_rate, settings.write_burst, settings.rate_limit_buckets
    )
    app.state.address_buckets = TokenBuckets(
        settings.address_write_rate, settings.address_write_burst, settings.rate_limit_buckets
    )
    app.state.session_buckets = TokenBuckets(
        settings.session_create_rate, settings.session_create_burst, settings.rate_limit_buckets
    )
    app.add_middleware(
        RateLimit,
        buckets=app.state.write_buckets,
        cookie_name=settings.cookie_name,
        addresses=app.state.address_buckets,
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
