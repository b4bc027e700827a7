"""Search, the movie view and similar movies."""

from __future__ import annotations

import sqlite3
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request

from movierec.service.deps import ConnDep, EngineDep, GateDep
from movierec.service.routers._common import cards, require_movie
from movierec.service.schemas import Movie, MovieDetail, Tag, movie_detail
from movierec.storage.catalog import get_movie, search_movies, search_tags

router = APIRouter(tags=["movies"])

SearchText = Annotated[str, Query(max_length=200, description="What the visitor typed.")]
Limit = Annotated[int, Query(ge=1, le=100)]
MoviePath = Annotated[int, Path(ge=1, le=2**62, description="MovieLens movie id.")]


@router.get("/movies/search", response_model=list[Movie])
async def movies_search(
    request: Request, conn: ConnDep, engine: EngineDep, q: SearchText = "", limit: Limit = 20
) -> list[Movie]:
    """Type-ahead movie search (exact titles first, then prefixes, then full text)."""
    ids: list[int] = request.app.state.catalog_cache.get_or_compute(  # only ids: a few bytes per entry
        ("search", q, limit), lambda: [int(r["movie_id"]) for r in search_movies(conn, q, limit)]
    )
    return cards(conn, ids, engine=engine)


@router.get("/tags/search", response_model=list[Tag])
async def tags_search(conn: ConnDep, q: SearchText = "", limit: Limit = 20) -> list[Tag]:
    """Tags containing ``q``."""
    return [Tag(tag=r["name"], movie_count=r["movie_count"]) for r in search_tags(conn, q, limit)]


@router.get(
    "/movies/{movie_id}", response_model=MovieDetail, responses={404: {"description": "Unknown movie"}}
)
async def movie(request: Request, conn: ConnDep, movie_id: MoviePath) -> MovieDetail:
    """One movie with overview, runtime, tags and IMDb / TMDB / trailer links."""
    detail: MovieDetail | None = request.app.state.catalog_cache.get_or_compute(
        ("movie", movie_id), lambda: _detail(conn, movie_id)
    )
    if detail is None:
        raise HTTPException(status_code=404, detail=f"no movie with id {movie_id} in the catalogue")
    return detail


def _detail(conn: sqlite3.Connection, movie_id: int) -> MovieDetail | None:
    """The movie view of ``movie_id``, ``None`` if the catalogue lacks it."""
    row = get_movie(conn, movie_id)
    return None if row is None else movie_detail(row)


@router.get(
    "/movies/{movie_id}/similar",
    response_model=list[Movie],
    responses={404: {"description": "Unknown movie"}},
)
async def similar(
    conn: ConnDep,
    engine: EngineDep,
    gate: GateDep,
    movie_id: MoviePath,
    n: Annotated[int, Query(ge=1, le=50)] = 12,
) -> list[Movie]:
    """Movies similar to one movie (empty if the model does not know it)."""
    require_movie(conn, movie_id, engine)
    if not engine.knows_movie(movie_id):
        return []
    found = await gate.run(engine.similar, movie_id, n)
    scores = {f["movie_id"]: {"score": f["score"]} for f in found}
    return cards(conn, [f["movie_id"] for f in found], scores, engine=engine)
