"""Favourites: movies the visitor saved, most recent first; they persist with the session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from movierec.service.deps import VisitDep, WriterDep
from movierec.service.routers._common import cards, require_movie, store_call
from movierec.service.schemas import FavouriteIn, Movie

router = APIRouter(tags=["favourites"])


@router.get("/favourites", response_model=list[Movie])
async def list_favourites(v: VisitDep) -> list[Movie]:
    """Saved movies, most recent first."""
    return cards(v, (await store_call(v.store.get(v.token))).favourites)


@router.post("/favourites", response_model=list[Movie], responses={404: {"description": "Unknown movie"}})
async def add_favourite(body: FavouriteIn, v: WriterDep) -> list[Movie]:
    """Save a movie."""
    require_movie(v.conn, body.movie_id, v.engine)
    return cards(v, (await store_call(v.store.add_favourite(v.token, body.movie_id))).favourites)


@router.delete("/favourites", response_model=list[Movie])
async def remove_favourite(body: FavouriteIn, v: WriterDep) -> list[Movie]:
    """Unsave a movie (no error if it was not saved)."""
    return cards(v, (await store_call(v.store.remove_favourite(v.token, body.movie_id))).favourites)


@router.delete("/favourites/{movie_id}", response_model=list[Movie])
async def remove_favourite_path(
    movie_id: Annotated[int, Path(ge=1, le=2**62)],
    v: WriterDep,
) -> list[Movie]:
    """Path form of ``DELETE /favourites``."""
    return cards(v, (await store_call(v.store.remove_favourite(v.token, movie_id))).favourites)
