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
from movierec.service.schemas import (
    AnswerIn,
    FiltersIn,
    ItemIn,
    ItemRef,
    Kind,
    NextQuestion,
    OrderIn,
    QuestionOut,
    SessionOut,
    TagName,
)
from movierec.serving import change_items, changed_filters

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


#: questions a page may ask the server not to repeat (``avoid=movies:318,2571``)
MAX_AVOID = 30


@router.get(
    "/session/question",
    response_model=NextQuestion,
    responses={503: {"description": "Busy"}},
)
async def next_question(
    v: VisitDep,
    avoid: Annotated[
        list[str],
        Query(
            max_length=MAX_AVOID,
            description="Questions not to ask again: KIND:VALUE,VALUE (as the question's values).",
        ),
    ] = [],  # noqa: B006 - FastAPI copies query defaults
) -> NextQuestion:
    """The question whose answer tells the most about what to show this session next
    ("more like Heat or more like Amélie?", "#dystopia or #romance?", "before or after 2000?",
    "in the mood for Comedy?"), chosen from the model's ranking for the session now."""
    pairs: list[tuple[str, list[int | str]]] = []
    for item in avoid:
        kind, _, rest = item[:500].partition(":")
        values: list[int | str] = [int(x) if x.strip().isdigit() else x for x in rest.split(",") if x.strip()]
        pairs.append((kind, values))
    state = await store_call(v.store.get(v.token))
    q = await v.gate.run(v.engine.question, state, pairs)
    return NextQuestion(question=None if q is None else QuestionOut(**q.to_dict()))


@router.post(
    "/session/answer",
    response_model=SessionOut,
    responses={422: {"description": "Not a question this model asks, or not an answer"}},
)
async def answer_question(body: AnswerIn, v: WriterDep, n: RecsN = None, n_tags: TagsN = 12) -> SessionOut:
    """Answer a question: the answer becomes likes, dislikes or a filter of the session (the
    taste panel shows them, and each can be undone like any other)."""
    try:
        change = v.engine.answer_change(body.kind, body.values, body.answer)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    state = await store_call(v.store.get(v.token))
    for kind, value, feedback in change_items(change):
        state = await store_call(v.store.add(v.token, kind, value, feedback))
    filters = changed_filters(state.filters, change)
    if filters != (state.filters or {}):
        state = await store_call(v.store.set_filters(v.token, filters))
    return await changed_session(v, state, n, n_tags)
