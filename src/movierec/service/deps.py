"""Dependencies of the routers, as ``Annotated[..., Depends()]`` aliases."""

from __future__ import annotations

import re
import sqlite3
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response

from movierec.service.config import ServiceSettings
from movierec.service.gate import InferenceGate
from movierec.serving import Engine
from movierec.storage.sessions import SessionStore

_TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,128}")


def open_store(settings: ServiceSettings, catalogue: sqlite3.Connection) -> SessionStore:
    """The session store the settings ask for (migrated; :meth:`SessionStore.close` it on shutdown).

    With no database URL the sessions share the catalogue's SQLite connection
    (one machine); ``postgresql://...`` gives a store that any number of
    workers and instances share, so a visitor needs no sticky session;
    ``sqlite:///path`` another SQLite file.
    """
    url = settings.resolved_database_url
    return SessionStore(catalogue) if url is None else SessionStore(url)


def _state(request: Request, name: str) -> Any:
    return getattr(request.app.state, name)


# async: FastAPI runs a plain def dependency in its thread pool (a thread hop per request)
async def get_engine(request: Request) -> Engine:
    return _state(request, "engine")


async def get_conn(request: Request) -> sqlite3.Connection:
    return _state(request, "conn")


async def get_store(request: Request) -> SessionStore:
    return _state(request, "store")


async def get_gate(request: Request) -> InferenceGate:
    return _state(request, "gate")


async def get_settings(request: Request) -> ServiceSettings:
    return _state(request, "service_settings")


EngineDep = Annotated[Engine, Depends(get_engine)]
ConnDep = Annotated[sqlite3.Connection, Depends(get_conn)]
StoreDep = Annotated[SessionStore, Depends(get_store)]
GateDep = Annotated[InferenceGate, Depends(get_gate)]
SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]


async def session_token(request: Request, response: Response, store: StoreDep, settings: SettingsDep) -> str:
    """The visitor's session token, from the cookie or a new session.

    A missing, malformed or unknown (forged, expired) cookie gets a fresh
    session, never someone else's. The cookie is HttpOnly, SameSite=Lax, Secure
    over https, and lives ``settings.cookie_max_age`` seconds.
    """
    token = request.cookies.get(settings.cookie_name, "")
    if _TOKEN.fullmatch(token) and store.exists(token):
        return token
    token = store.create()
    response.set_cookie(
        settings.cookie_name,
        token,
        max_age=settings.cookie_max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return token


SessionDep = Annotated[str, Depends(session_token)]


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=what)
