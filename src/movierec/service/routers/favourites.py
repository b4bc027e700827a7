"""Favourites: movies the visitor saved, most recent first; they persist with the session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from movierec.service.deps import ConnDep, EngineDep, SessionDep, StoreDep
from movierec.service.routers._common import cards, require_movie, store_call
from movierec.service.schemas import FavouriteIn, Movie

router = APIRouter(tags=["favourites"])


@router.get("/favourites", response_model=list[Movie])
async def list_favourites(
    conn: ConnDep, engine: EngineDep, store: StoreDep, token: SessionDep
) -> list[Movie]:
    """Saved movies, most recent first."""
    return cards(conn, store_call(store.get, token).favourites, engine=engine)


@router.post("/favourites", response_model=list[Movie], responses={404: {"description": "Unknown movie"}})
async def add_favourite(
    body: FavouriteIn, conn: ConnDep, engine: EngineDep, store: StoreDep, token: SessionDep
) -> list[Movie]:
    """Save a movie."""
    require_movie(conn, body.movie_id, engine)
    return cards(conn, store_call(store.add_favourite, token, body.movie_id).favourites, engine=engine)


@router.delete("/favourites", response_model=list[Movie])
async def remove_favourite(
    body: FavouriteIn, conn: ConnDep, engine: EngineDep, store: StoreDep, token: SessionDep
) -> list[Movie]:
    """Unsave a movie (no error if it was not saved)."""
    return cards(conn, store_call(store.remove_favourite, token, body.movie_id).favourites, engine=engine)


@router.delete("/favourites/{movie_id}", response_model=list[Movie])
async def remove_favourite_path(
    movie_id: Annotated[int, Path(ge=1, le=2**62)],
    conn: ConnDep,
    engine: EngineDep,
    store: StoreDep,
    token: SessionDep,
) -> list[Movie]:
    """Path form of ``DELETE /favourites``."""
    return cards(conn, store_call(store.remove_favourite, token, movie_id).favourites, engine=engine)
