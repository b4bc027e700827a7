"""``POST /api/admin/reload``: load the model directory again, from this machine only.

Only requests from the loopback interface that carry no proxy headers are
served (403 otherwise): behind a reverse proxy on the same machine, a visitor's
request arrives with ``X-Forwarded-For`` / ``Forwarded`` and is refused.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request

from movierec.service.app import ReloadBusy, ReloadError
from movierec.service.schemas import ReloadOut

router = APIRouter(tags=["admin"])

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
PROXY_HEADERS = frozenset({"x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host"})


def require_local(request: Request) -> None:
    """403 unless the request comes straight from this machine."""
    host = request.client.host if request.client else ""
    if host not in LOOPBACK or any(h in PROXY_HEADERS for h in request.headers):
        raise HTTPException(status_code=403, detail="admin endpoints answer only to this machine (loopback)")


@router.post(
    "/admin/reload",
    response_model=ReloadOut,
    responses={
        403: {"description": "Not from this machine"},
        409: {"description": "A reload is already running"},
        422: {"description": "The model directory holds no loadable model; the previous one keeps serving"},
    },
)
async def reload_model(request: Request) -> ReloadOut:
    """Load the model directory again and swap it in atomically; on failure the previous model keeps serving."""
    require_local(request)
    reloader = request.app.state.reloader
    start = time.perf_counter()
    try:
        engine = await reloader.reload()
    except ReloadBusy as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except ReloadError as exc:  # the request was fine; the artifact on disk was not (never a 500)
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return ReloadOut(
        status="reloaded",
        model=engine.model.name,
        movies=engine.model.n_movies,
        tags=engine.model.n_tags,
        seconds=round(time.perf_counter() - start, 3),
        model_loaded_at=reloader.loaded_at,
    )
