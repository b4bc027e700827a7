"""Small adapters shared by the routers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException

from movierec.service.schemas import Movie, SessionOut
from movierec.storage.catalog import get_movies
from movierec.storage.sessions import SessionState, UnknownSessionError

T = TypeVar("T")


def cards(
    conn: sqlite3.Connection, ids: list[int], extra: dict[int, dict[str, Any]] | None = None
) -> list[Movie]:
    """Movie cards of ``ids`` in that order (ids the catalogue lacks are skipped)."""
    extra = extra or {}
    return [
        Movie(**{k: v for k, v in row.items() if k in Movie.model_fields}, **extra.get(row["movie_id"], {}))
        for row in get_movies(conn, ids)
    ]


def session_out(conn: sqlite3.Connection, state: SessionState) -> SessionOut:
    return SessionOut(
        liked=cards(conn, state.liked),
        disliked=cards(conn, state.disliked),
        liked_tags=state.liked_tags,
        disliked_tags=state.disliked_tags,
        filters=state.filters,
        favourites=state.favourites,
    )


def store_call(fn: Callable[..., T], *args: Any) -> T:
    """Call a session-store method; its ``ValueError`` (limits, bad order) becomes a 422."""
    try:
        return fn(*args)
    except UnknownSessionError as exc:
        raise HTTPException(status_code=409, detail=f"{exc}; reload the page") from exc
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def require_movie(conn: sqlite3.Connection, movie_id: int) -> None:
    if not get_movies(conn, [movie_id]):
        raise HTTPException(status_code=404, detail=f"no movie with id {movie_id} in the catalogue")
