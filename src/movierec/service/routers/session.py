"""The visitor's session: liked / disliked movies and tags, their order, filters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from movierec.service.deps import VisitDep, WriterDep
from movierec.service.routers._common import (
    TagsN,
    changed_session,
    require_movie,
    require_tag,
    session_out,
    store_call,
)
from movierec.service.schemas import FiltersIn, ItemIn, ItemRef, Kind, OrderIn, SessionOut, TagName

router = APIRouter(tags=["session"])

#: every change of the session can bring back its recommendations (``?n=24&n_tags=12``)
RecsN = Annotated[
    int | None,
    Query(ge=1, le=100, description="Also return this many recommended movies for the changed session."),
]


@router.get("/session", response_model=SessionOut)
async def get_session(v: VisitDep) -> SessionOut:
    """Everything the visitor has said so far (a new visitor gets an empty session)."""
    return session_out(v, await store_call(v.store.get(v.token)))


@router.post(
    "/session/items", response_model=SessionOut, responses={404: {"description": "Unknown movie or tag"}}
)
async def add_item(item: ItemIn, v: WriterDep, n: RecsN = None, n_tags: TagsN = 12) -> SessionOut:
    """Like or dislike a movie or a tag (the last one added counts most)."""
    if item.kind == "movie":
        require_movie(v.conn, int(item.value), v.engine)
    else:
        require_tag(v.conn, str(item.value))
    return await changed_session(
        v, await store_call(v.store.add(v.token, item.kind, item.value, item.feedback)), n, n_tags
    )


@router.delete("/session/items", response_model=SessionOut)
async def remove_item(item: ItemRef, v: WriterDep, n: RecsN = None, n_tags: TagsN = 12) -> SessionOut:
    """Forget a liked or disliked movie or tag."""
    return await changed_session(
        v, await store_call(v.store.remove(v.token, item.kind, item.value)), n, n_tags
    )


@router.delete("/session/items/{kind}/{value}", response_model=SessionOut)
async def remove_item_path(
    kind: Kind,
    value: Annotated[TagName, Path()],
    v: WriterDep,
    n: RecsN = None,
    n_tags: TagsN = 12,
) -> SessionOut:
    """Path form of ``DELETE /session/items``: ``/session/items/movie/2571``, ``/session/items/tag/heist``."""
    ref: int | str = value
    if kind == "movie":
        if not value.isdigit() or len(value) > 18 or int(value) < 1:
            raise HTTPException(status_code=422, detail="a movie id must be an integer >= 1")
        ref = int(value)
    return await changed_session(v, await store_call(v.store.remove(v.token, kind, ref)), n, n_tags)


@router.put("/session/order", response_model=SessionOut)
async def reorder(order: OrderIn, v: WriterDep, n: RecsN = None, n_tags: TagsN = 12) -> SessionOut:
    """New order of one list (a permutation of it); the last item is the most important."""
    return await changed_session(
        v,
        await store_call(v.store.reorder(v.token, order.kind, order.feedback, list(order.ordered))),
        n,
        n_tags,
    )


@router.put("/session/filters", response_model=SessionOut)
async def set_filters(filters: FiltersIn, v: WriterDep, n: RecsN = None, n_tags: TagsN = 12) -> SessionOut:
    """Filters on recommendations: minimum rating, year range, genres (any of); and the taste in
    words (``text``), which steers the list like liked tags."""
    unknown = [g for g in filters.genres if g not in v.engine.genre_names]
    if unknown:
        raise HTTPException(
            status_code=422, detail=f"unknown genre(s) {unknown}; known: {list(v.engine.genre_names)}"
        )
    return await changed_session(
        v, await store_call(v.store.set_filters(v.token, filters.model_dump())), n, n_tags
    )
