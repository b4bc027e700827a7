"""``GET /api/recommendations``: movies and tags for the visitor's session."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from movierec.service.deps import VisitDep
from movierec.service.routers._common import cards, recommendations_for, store_call
from movierec.service.schemas import RecommendationsOut, Tag

router = APIRouter(tags=["recommendations"])


@router.get("/recommendations", response_model=RecommendationsOut, responses={503: {"description": "Busy"}})
async def recommendations(
    v: VisitDep,
    n: Annotated[int, Query(ge=1, le=100)] = 24,
    n_tags: Annotated[int, Query(ge=0, le=50)] = 12,
) -> RecommendationsOut:
    """Recommended movies (with a reason each) and tags; liked and disliked items never come back."""
    start = time.perf_counter()
    state = store_call(v.store.get, v.token)
    rec = await recommendations_for(v, state, n, n_tags)
    extra = {m["movie_id"]: {"score": m["score"], "reason": m["reason"]} for m in rec["movies"]}
    return RecommendationsOut(
        movies=cards(v.conn, [m["movie_id"] for m in rec["movies"]], extra, engine=v.engine),
        tags=[Tag(**t) for t in rec["tags"]],
        fallback=rec["fallback"],
        notes=rec["notes"],
        elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
    )
