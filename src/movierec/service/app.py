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

import json
import logging
import os
from functools import partial
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from swagger_ui_bundle import swagger_ui_path

from movierec.service.config import ServiceSettings
from movierec.service.engine import build_engine, check_engine, limit_torch_threads, model_signature
from movierec.service.errors import install_error_handlers
from movierec.service.lifespan import lifespan, score_batch
from movierec.service.middleware import DOCS_HTML, BodyLimit, HeadAsGet, SecurityHeaders, page_csp
from movierec.service.ratelimit import RateLimit, TokenBuckets
from movierec.service.reload import ModelReloader, ReloadBusy, ReloadError, start_scorer
from movierec.service.schemas import ErrorOut
from movierec.service.state import Buckets

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

    app = FastAPI(
        title="movierec",
        description="Movie and tag recommendations for anonymous sessions.",
        version="0.1.0",
        lifespan=partial(lifespan, settings=settings, buckets=buckets, watch_model_s=watch_model_s),
        docs_url=None,  # served below from the swagger-ui-bundle package, not a CDN
        redoc_url=None,
        responses={422: {"model": ErrorOut, "description": "Invalid input"}},
    )

    install_error_handlers(app)

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
