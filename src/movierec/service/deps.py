"""Dependencies of the routers, as ``Annotated[..., Depends()]`` aliases: one per route."""

from __future__ import annotations

import logging
import math
import sqlite3
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response

from movierec.service.config import ServiceSettings
from movierec.service.gate import InferenceGate
from movierec.service.ratelimit import TOKEN, VERIFIED_TOKEN
from movierec.service.state import ServiceState
from movierec.service.store import AsyncStore
from movierec.serving import Engine
from movierec.storage.sessions import SessionStore, sessions_path_for

log = logging.getLogger(__name__)


def open_store(settings: ServiceSettings) -> AsyncStore:
    """The session store the settings ask for (migrated; :meth:`AsyncStore.close` it on shutdown).

    With no database URL the sessions live in an SQLite file beside the catalogue
    (:func:`~movierec.storage.sessions.sessions_path_for`; sessions an older release kept
    in the catalogue file move there); ``postgresql://...`` gives a store that any number
    of workers and instances share, so a visitor needs no sticky session;
    ``sqlite:///path`` another SQLite file.
    """
    url = settings.resolved_database_url
    if url is not None:
        return AsyncStore(SessionStore(url, wait_s=settings.store_wait_s))
    catalogue = settings.resolved_database_path
    store = SessionStore(sessions_path_for(catalogue), wait_s=settings.store_wait_s)
    try:
        moved = store.adopt(catalogue)
    except BaseException:
        store.close()
        raise
    if moved:
        log.info("moved %d sessions from %s to %s", moved, catalogue, sessions_path_for(catalogue))
    return AsyncStore(store)


@dataclass(frozen=True, slots=True)
class Services:
    """The app's shared objects for one request, read from ``app.state`` once.

    ``engine`` is the one serving now (a model reload swaps ``ServiceState.engine``;
    a request keeps the engine it started with). One dependency that hands out
    everything costs a fraction of one dependency per object: FastAPI's
    dependency solving was a quarter of the event loop's time under load.
    """

    conn: sqlite3.Connection
    engine: Engine
    store: AsyncStore
    gate: InferenceGate
    settings: ServiceSettings
    state: ServiceState  # caches, the batcher, the reloader


@dataclass(frozen=True, slots=True)
class Visit(Services):
    """:class:`Services` plus the visitor's session token: ``None`` for a visitor who has
    not written anything yet (reads never create a session)."""

    token: str | None


@dataclass(frozen=True, slots=True)
class Writer(Services):
    """:class:`Services` plus the session a write goes to (created by this write if need be)."""

    token: str


# async: FastAPI runs a plain def dependency in its thread pool (a thread hop per request)
def service_state(request: Request) -> ServiceState:
    """The app's :class:`ServiceState` (``app.state.service``, made by the lifespan)."""
    state: ServiceState = request.app.state.service
    return state


async def services(request: Request) -> Services:
    st = service_state(request)
    return Services(st.conn, st.engine, st.store, st.gate, st.settings, st)


async def _known_token(request: Request) -> str | None:
    """The cookie's session token if it names a session the store holds, else ``None``
    (missing, malformed, forged, expired: never someone else's)."""
    st = service_state(request)
    token = request.cookies.get(st.settings.cookie_name, "")
    if token and token == request.scope.get("state", {}).get(VERIFIED_TOKEN):  # the rate limit checked it
        return token
    if TOKEN.fullmatch(token) and await st.store.exists(token):
        return token
    return None


async def visit(request: Request) -> Visit:
    """The shared objects and the visitor's session token, if they have a session."""
    st = service_state(request)
    return Visit(st.conn, st.engine, st.store, st.gate, st.settings, st, await _known_token(request))


async def writer(request: Request, response: Response) -> Writer:
    """The shared objects and the session this write goes to: the cookie's, or a new one.

    A new session costs a token of the client address's session bucket
    (``ServiceSettings.session_create_rate``; 429 with Retry-After beyond it), so that
    minting cookies does not get round the per-session write limit. The cookie is
    HttpOnly, SameSite=Lax, Secure over https, and lives ``settings.cookie_max_age``
    seconds.
    """
    st = service_state(request)
    settings = st.settings
    token = await _known_token(request)
    if token is None:
        client = request.client.host if request.client else "?"
        wait = st.buckets.sessions.take(client)
        if wait > 0:
            raise HTTPException(
                status_code=429,
                detail=f"too many new sessions from this address; retry in {math.ceil(wait)} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        token = await st.store.create()
        response.set_cookie(
            settings.cookie_name,
            token,
            max_age=settings.cookie_max_age,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
    return Writer(st.conn, st.engine, st.store, st.gate, settings, st, token)


ServicesDep = Annotated[Services, Depends(services)]
VisitDep = Annotated[Visit, Depends(visit)]
WriterDep = Annotated[Writer, Depends(writer)]
