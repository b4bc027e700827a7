"""Search, the movie view and similar movies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from movierec.service.deps import ConnDep, EngineDep, GateDep
from movierec.service.routers._common import cards, require_movie
from movierec.service.schemas import Movie, MovieDetail, Tag, movie_detail
from movierec.storage.catalog import get_movie, search_movies, search_tags

router = APIRouter(tags=["movies"])

SearchText = Annotated[str, Query(max_length=200, description="What the visitor typed.")]
Limit = Annotated[int, Query(ge=1, le=100)]
MoviePath = Annotated[int, Path(ge=1, le=2**62, description="MovieLens movie id.")]


@router.get("/movies/search", response_model=list[Movie])
async def movies_search(conn: ConnDep, q: SearchText = "", limit: Limit = 20) -> list[Movie]:
    """Type-ahead movie search (exact titles first, then prefixes, then full text)."""
    return [
        Movie(**{k: v for k, v in r.items() if k in Movie.model_fields})
        for r in search_movies(conn, q, limit)
    ]


@router.get("/tags/search", response_model=list[Tag])
async def tags_search(conn: ConnDep, q: SearchText = "", limit: Limit = 20) -> list[Tag]:
    """Tags containing ``q``."""
    return [Tag(tag=r["name"], movie_count=r["movie_count"]) for r in search_tags(conn, q, limit)]


@router.get(
    "/movies/{movie_id}", response_model=MovieDetail, responses={404: {"description": "Unknown movie"}}
)
async def movie(conn: ConnDep, movie_id: MoviePath) -> MovieDetail:
    """One movie with overview, runtime, tags and IMDb / TMDB / trailer links."""
    row = get_movie(conn, movie_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no movie with id {movie_id} in the catalogue")
    return movie_detail(row)


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
    require_movie(conn, movie_id)
    if not engine.knows_movie(movie_id):
        return []
    found = await gate.run(engine.similar, movie_id, n)
    return cards(conn, [f["movie_id"] for f in found], {f["movie_id"]: {"score": f["score"]} for f in found})
