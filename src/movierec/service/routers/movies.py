"""Search, the movie view and similar movies."""

from __future__ import annotations

import sqlite3
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from movierec.service.deps import ServicesDep
from movierec.service.routers._common import cards, require_movie
from movierec.service.schemas import Movie, MovieDetail, Tag, movie_detail
from movierec.storage.catalog import get_movie, search_movies, search_tags

router = APIRouter(tags=["movies"])

SearchText = Annotated[str, Query(max_length=200, description="What the visitor typed.")]
Limit = Annotated[int, Query(ge=1, le=100)]
MoviePath = Annotated[int, Path(ge=1, le=2**62, description="MovieLens movie id.")]


@router.get("/movies/search", response_model=list[Movie])
async def movies_search(svc: ServicesDep, q: SearchText = "", limit: Limit = 20) -> list[Movie]:
    """Type-ahead movie search (exact titles first, then prefixes, then full text)."""
    ids: list[int] = svc.state.catalog_cache.get_or_compute(  # only ids: a few bytes per entry
        ("search", q, limit), lambda: [int(r["movie_id"]) for r in search_movies(svc.conn, q, limit)]
    )
    return cards(svc, ids)


@router.get("/tags/search", response_model=list[Tag])
async def tags_search(svc: ServicesDep, q: SearchText = "", limit: Limit = 20) -> list[Tag]:
    """Tags containing ``q``."""
    return [Tag(tag=r["name"], movie_count=r["movie_count"]) for r in search_tags(svc.conn, q, limit)]


@router.get(
    "/movies/{movie_id}", response_model=MovieDetail, responses={404: {"description": "Unknown movie"}}
)
async def movie(svc: ServicesDep, movie_id: MoviePath) -> MovieDetail:
    """One movie with overview, runtime, tags and IMDb / TMDB / trailer links, and its
    stills and trailer when the artwork lookups (a TMDB key) have found them."""
    detail: MovieDetail | None = svc.state.catalog_cache.get_or_compute(
        ("movie", movie_id), lambda: _detail(svc.conn, movie_id)
    )
    if detail is None:
        raise HTTPException(status_code=404, detail=f"no movie with id {movie_id} in the catalogue")
    art = svc.state.artwork.art(movie_id)  # what the cache holds now; a lookup if it holds nothing
    if art is None:
        return detail
    update: dict[str, object] = {"stills": list(art.backdrops), "trailer_youtube_key": art.trailer_key}
    if art.poster_path:
        update["poster_path"] = art.poster_path
    if art.trailer_key:
        update["trailer_url"] = f"https://www.youtube.com/watch?v={art.trailer_key}"
    return detail.model_copy(update=update)


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
    svc: ServicesDep,
    movie_id: MoviePath,
    n: Annotated[int, Query(ge=1, le=50)] = 12,
) -> list[Movie]:
    """Movies similar to one movie (empty if the model does not know it)."""
    require_movie(svc.conn, movie_id, svc.engine)
    if not svc.engine.knows_movie(movie_id):
        return []
    found = await svc.gate.run(svc.engine.similar, movie_id, n)
    scores = {f.movie_id: {"score": f.score} for f in found}
    return cards(svc, [f.movie_id for f in found], scores)
