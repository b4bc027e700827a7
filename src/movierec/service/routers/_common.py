"""Small adapters shared by the routers."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable
from contextlib import suppress
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Query

from movierec.service.deps import Services, Writer
from movierec.service.gate import Busy
from movierec.service.schemas import Movie, RecommendationsOut, SessionOut, Tag
from movierec.service.scorer import ScorerError
from movierec.serving import CARD_FIELDS, Answer, Engine
from movierec.storage.catalog import get_movies, has_tag
from movierec.storage.session_state import SessionState
from movierec.storage.sessions import UnknownSessionError

T = TypeVar("T")

#: ``n``: recommended movies asked for; ``n_tags``: recommended tags
MoviesN = Annotated[int, Query(ge=1, le=100, description="How many recommended movies.")]
TagsN = Annotated[int, Query(ge=0, le=50, description="How many recommended tags.")]


def card_rows(conn: sqlite3.Connection, engine: Engine | None, ids: list[int]) -> list[dict[str, Any]]:
    """Card columns of the movies ``ids`` in that order (ids the catalogue lacks are skipped).

    From the engine's in-memory cards when it has them (no database read), else
    from the catalogue in ``conn``.
    """
    if engine is not None and engine.cards is not None:
        found = (engine.cards.get(int(i)) for i in ids)
        return [c for c in found if c is not None]
    return [{k: row[k] for k in CARD_FIELDS if k in row} for row in get_movies(conn, ids)]


def cards(svc: Services, ids: list[int], extra: dict[int, dict[str, Any]] | None = None) -> list[Movie]:
    """Movie cards of ``ids`` in that order (ids the catalogue lacks are skipped), with the
    posters the artwork cache holds (:class:`~movierec.service.artwork.Artwork`; never waits).

    ``extra`` adds fields (``score``, ``reason``) per movie id. Cards from the engine's
    catalogue copy (typed when it was read) and the engine's scores skip validation
    (``model_construct``): it was most of a response's cost.
    """
    extra = extra or {}
    engine = svc.engine
    make = Movie.model_construct if engine.cards is not None else Movie
    rows = svc.state.artwork.overlay(card_rows(svc.conn, engine, ids))
    return [make(**row, **extra.get(row["movie_id"], {})) for row in rows]


def session_out(svc: Services, state: SessionState) -> SessionOut:
    return SessionOut(
        liked=cards(svc, state.liked),
        disliked=cards(svc, state.disliked),
        liked_tags=state.liked_tags,
        disliked_tags=state.disliked_tags,
        filters=state.filters,
        favourites=state.favourites,
    )


async def recommendations_for(v: Services, state: SessionState, n: int, n_tags: int) -> Answer:
    """The engine's answer for ``state`` (read only): remembered (no worker thread, never a
    503), else scored with the concurrent misses in one batch (shared with an equal call
    already waiting or running, such as a prefetch)."""
    rec = v.engine.recommend_cached(state, n, n_tags)
    if rec is None:
        rec = await v.state.rec_batcher.submit((state, n, n_tags))
    return rec


async def recommendations_out(
    v: Services, state: SessionState, n: int, n_tags: int, start: float | None = None
) -> RecommendationsOut:
    """The answer of ``GET /api/recommendations`` for ``state``: cards with score and reason,
    tags, and the server's time since ``start`` (``time.perf_counter()``; default: now)."""
    start = time.perf_counter() if start is None else start
    rec = await recommendations_for(v, state, n, n_tags)
    extra = {
        m: {"score": s, "reason": r} for m, s, r in zip(rec.movie_ids, rec.scores, rec.reasons, strict=True)
    }
    return RecommendationsOut(
        movies=cards(v, list(rec.movie_ids), extra),
        tags=[Tag(tag=t, score=s) for t, s in zip(rec.tag_names, rec.tag_scores, strict=True)],
        fallback=rec.fallback,
        notes=list(rec.notes),
        elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
    )


async def changed_session(v: Writer, state: SessionState, n: int | None, n_tags: int) -> SessionOut:
    """The answer to a change of the session: its new state, with its recommendations when
    the change asked for them (``n`` movies, ``n_tags`` tags: one round trip per click).

    The change is already stored: a busy or restarting recommender leaves
    ``recommendations`` null (the page then asks ``GET /api/recommendations``, which
    answers 503 with Retry-After) rather than failing a write that succeeded. Without
    ``n`` the recommendations are prefetched (:func:`prefetch`).
    """
    out = session_out(v, state)
    if n is None:
        prefetch(v, state)
    else:
        with suppress(Busy, ScorerError):
            out.recommendations = await recommendations_out(v, state, n, n_tags)
    return out


def prefetch(v: Services, state: SessionState) -> None:
    """Start scoring ``state``'s recommendations now, as the page will ask for them next
    (``ServiceSettings.prefetch_n`` / ``prefetch_n_tags``), without waiting for them.

    The batcher shares one computation between this and the request that follows.
    Only when the recommender is idle: under load a prefetch would start a batch of one
    that the request, arriving a moment later, would otherwise have joined (measured:
    5 % fewer recommendations per second at 50 visitors). A prefetch that finds the
    recommender busy (503) or failing gives up quietly.
    """
    n, n_tags = v.settings.prefetch_n, v.settings.prefetch_n_tags
    if not n or v.state.rec_batcher.gate.pending:
        return

    async def run() -> None:
        with suppress(Exception):
            await recommendations_for(v, state, n, n_tags)

    task = asyncio.get_running_loop().create_task(run())
    v.state.prefetches.add(task)
    task.add_done_callback(v.state.prefetches.discard)


async def store_call(call: Awaitable[T]) -> T:
    """Await a session-store call; its ``ValueError`` (limits, bad order) becomes a 422 and an
    unknown session a 409 (a busy database, :class:`StoreBusy`, is the app's 503)."""
    try:
        return await call
    except UnknownSessionError as exc:
        raise HTTPException(status_code=409, detail=f"{exc}; reload the page") from exc
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def require_movie(conn: sqlite3.Connection, movie_id: int, engine: Engine | None = None) -> None:
    """404 unless the catalogue holds ``movie_id``."""
    if engine is not None and engine.cards is not None:
        if int(movie_id) in engine.cards:
            return
    elif get_movies(conn, [movie_id]):
        return
    raise HTTPException(status_code=404, detail=f"no movie with id {movie_id} in the catalogue")


def require_tag(conn: sqlite3.Connection, name: str) -> None:
    """404 unless the catalogue holds the tag ``name``."""
    if not has_tag(conn, name):
        raise HTTPException(status_code=404, detail=f"no tag named {name!r} in the catalogue")
