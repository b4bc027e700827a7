"""How the web app answers what went wrong: 503 with Retry-After for a busy recommender, a
busy database or a restarting scoring process, 422 for invalid input, and a logged 500
(never a traceback) for anything else."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from movierec.service.gate import Busy
from movierec.service.scorer import ScorerError
from movierec.storage.sessions import StoreBusy

log = logging.getLogger("movierec.service.app")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

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
