"""Dependencies of the routers, as ``Annotated[..., Depends()]`` aliases: one per route."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from movierec.service.config import ServiceSettings
from movierec.service.gate import InferenceGate
from movierec.service.ratelimit import TOKEN, VERIFIED_TOKEN
from movierec.serving import Engine
from movierec.storage.sessions import SessionStore


def open_store(settings: ServiceSettings, catalogue: sqlite3.Connection) -> SessionStore:
    """The session store the settings ask for (migrated; :meth:`SessionStore.close` it on shutdown).

    With no database URL the sessions share the catalogue's SQLite connection
    (one machine); ``postgresql://...`` gives a store that any number of
    workers and instances share, so a visitor needs no sticky session;
    ``sqlite:///path`` another SQLite file.
    """
    url = settings.resolved_database_url
    return SessionStore(catalogue) if url is None else SessionStore(url)


@dataclass(frozen=True, slots=True)
class Services:
    """The app's shared objects for one request, read from ``app.state`` once.

    ``engine`` is the one serving now (a model reload swaps ``app.state.engine``;
    a request keeps the engine it started with). One dependency that hands out
    everything costs a fraction of one dependency per object: FastAPI's
    dependency solving was a quarter of the event loop's time under load.
    """

    conn: sqlite3.Connection
    engine: Engine
    store: SessionStore
    gate: InferenceGate
    settings: ServiceSettings
    state: Any  # app.state: caches, the batcher, the reloader


@dataclass(frozen=True, slots=True)
class Visit(Services):
    """:class:`Services` plus the visitor's session token."""

    token: str


# async: FastAPI runs a plain def dependency in its thread pool (a thread hop per request)
async def services(request: Request) -> Services:
    st = request.app.state
    return Services(st.conn, st.engine, st.store, st.gate, st.service_settings, st)


async def visit(request: Request, response: Response) -> Visit:
    """The shared objects and the visitor's session token, from the cookie or a new session.

    A missing, malformed or unknown (forged, expired) cookie gets a fresh
    session, never someone else's. The cookie is HttpOnly, SameSite=Lax, Secure
    over https, and lives ``settings.cookie_max_age`` seconds.
    """
    st = request.app.state
    settings: ServiceSettings = st.service_settings
    store: SessionStore = st.store
    token = request.cookies.get(settings.cookie_name, "")
    verified = request.scope.get("state", {}).get(VERIFIED_TOKEN)  # a write's rate limit checked it
    if token != verified and not (TOKEN.fullmatch(token) and store.exists(token)):
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
    return Visit(st.conn, st.engine, store, st.gate, settings, st, token)


ServicesDep = Annotated[Services, Depends(services)]
VisitDep = Annotated[Visit, Depends(visit)]
