"""``POST /api/admin/reload``: load the model directory again; for the operator only.

Who may call it:

* with an admin token (``MOVIEREC_ADMIN_TOKEN``), a request carrying
  ``Authorization: Bearer TOKEN``, from any address: the way behind a reverse proxy,
  where every visitor's request arrives from loopback;
* without one, requests from the loopback interface that carry no proxy headers
  (behind a proxy on the same machine, a visitor's request arrives with
  ``X-Forwarded-For`` / ``Forwarded`` and is refused).

Either way a web page elsewhere cannot trigger it through the operator's browser: a
request that a browser marks cross-site (``Sec-Fetch-Site``) or that names another
origin (``Origin``) is refused, and the request must carry ``Content-Type:
application/json`` or an ``X-Movierec-Admin`` header, which a browser sends across
sites only after a CORS preflight that this app never grants. (A ``text/plain`` POST,
a "simple" request, once reloaded the model from any page: 5-9 s of CPU each.)
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request

from movierec.service.deps import service_state
from movierec.service.reload import ReloadBusy, ReloadError
from movierec.service.schemas import ReloadOut

router = APIRouter(tags=["admin"])

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
PROXY_HEADERS = frozenset({"x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host"})
#: a header only scripts (and curl) add; a browser preflights it across sites
ADMIN_HEADER = "x-movierec-admin"


def require_admin(request: Request) -> None:
    """403 unless the caller is the operator (see the module docstring); 415 for a request a
    browser could send from another site without asking."""
    headers = request.headers
    if headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
        raise HTTPException(status_code=403, detail="admin endpoints refuse cross-site requests")
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        raise HTTPException(status_code=403, detail="admin endpoints refuse requests from another origin")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and ADMIN_HEADER not in headers:
        raise HTTPException(
            status_code=415,
            detail=f"send Content-Type: application/json or an {ADMIN_HEADER.title()} header "
            "(e.g. curl -X POST -H 'X-Movierec-Admin: 1' URL)",
        )
    token = service_state(request).settings.settings.admin_token
    if token is not None:
        given = headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(
                status_code=403,
                detail="admin endpoints need 'Authorization: Bearer TOKEN' (MOVIEREC_ADMIN_TOKEN)",
            )
        return
    host = request.client.host if request.client else ""
    if host not in LOOPBACK or any(h in PROXY_HEADERS for h in headers):
        raise HTTPException(status_code=403, detail="admin endpoints answer only to this machine (loopback)")


@router.post(
    "/admin/reload",
    response_model=ReloadOut,
    responses={
        403: {"description": "Not the operator: not from this machine, a wrong token, or cross-site"},
        415: {"description": "Neither a JSON body nor an X-Movierec-Admin header"},
        409: {"description": "A reload is already running"},
        422: {"description": "The model directory holds no loadable model; the previous one keeps serving"},
    },
)
async def reload_model(request: Request) -> ReloadOut:
    """Load the model directory again and swap it in atomically; on failure the previous model keeps serving."""
    require_admin(request)
    reloader = service_state(request).reloader
    if reloader is None:  # only before the app has started
        raise HTTPException(status_code=503, detail="the service is starting", headers={"Retry-After": "1"})
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
