"""The web app: ``create_app(settings)`` builds a FastAPI app whose ``lifespan``
loads the model and opens the database once.

Routers only parse, validate and call the library (:mod:`movierec.serving`,
:mod:`movierec.storage`). Database calls run on the event loop (they take
well under a millisecond and the connection is shared); model calls run in
worker threads through a bounded :class:`~movierec.service.gate.InferenceGate`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from movierec.service.config import ServiceSettings
from movierec.service.gate import Busy, InferenceGate
from movierec.service.ratelimit import RateLimit, TokenBuckets
from movierec.service.schemas import ErrorOut

log = logging.getLogger(__name__)

__all__ = ["ServiceSettings", "build_engine", "create_app"]

STATIC_DIR = Path(str(resources.files("movierec.service") / "static"))

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' https://image.tmdb.org data:; script-src 'self'; "
        b"style-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


#: The OpenAPI pages (Swagger UI, ReDoc) need FastAPI's inline bootstrap script and
#: its CDN assets; only these paths get this looser policy.
DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    b"worker-src 'self' blob:; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (:data:`DOCS_CSP` on the docs pages)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        docs = scope.get("path") in DOCS_PATHS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, DOCS_CSP if docs and k == b"content-security-policy" else v)
                    for k, v in SECURITY_HEADERS
                    if k not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Answers 413 to request bodies larger than ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = b'{"detail":"request body too large (limit %d bytes)"}' % self.max_bytes
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
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
        while True:
            message = await receive()
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


def build_engine(model_dir: Path, conn: Any) -> Any:
    """Load the model at ``model_dir`` and align it with the catalogue in ``conn``."""
    from movierec.models.artifacts import load_model
    from movierec.serving import Engine
    from movierec.storage.catalog import all_movies_with_tags

    model = load_model(model_dir)
    rows = all_movies_with_tags(conn)
    if not rows:
        raise RuntimeError(
            "the catalogue database holds none of the model's movies; build it from the model's data "
            "(`movierec run` does this)"
        )
    return Engine.from_rows(model, rows)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The movierec web app (page at ``/``, JSON API under ``/api``, OpenAPI at ``/docs``)."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from movierec.storage.db import connect, migrate
        from movierec.storage.sessions import SessionStore

        start = time.perf_counter()
        conn = connect(settings.resolved_database_path)
        try:
            migrate(conn)
            app.state.engine = build_engine(settings.resolved_model_dir, conn)
            app.state.conn = conn
            app.state.store = SessionStore(conn)
            app.state.gate = InferenceGate(settings.max_inference_threads, settings.max_waiting)
            app.state.service_settings = settings
            log.info("movierec service ready in %.2f s", time.perf_counter() - start)
            yield
        finally:
            conn.close()

    app = FastAPI(
        title="movierec",
        description="Movie and tag recommendations for anonymous sessions.",
        version="0.1.0",
        lifespan=lifespan,
        responses={422: {"model": ErrorOut, "description": "Invalid input"}},
    )

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)}
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

    from movierec.service.routers import favourites, health, movies, recommendations, session

    for module in (health, movies, session, recommendations, favourites):
        app.include_router(module.router, prefix="/api")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.write_buckets = TokenBuckets(
        settings.write_rate, settings.write_burst, settings.rate_limit_buckets
    )
    app.add_middleware(RateLimit, buckets=app.state.write_buckets, cookie_name=settings.cookie_name)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
