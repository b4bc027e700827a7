"""``GET /api/recommendations``: movies and tags for the visitor's session."""

from __future__ import annotations

import time

from fastapi import APIRouter

from movierec.service.deps import VisitDep
from movierec.service.routers._common import MoviesN, TagsN, recommendations_out, store_call
from movierec.service.schemas import RecommendationsOut

router = APIRouter(tags=["recommendations"])


@router.get("/recommendations", response_model=RecommendationsOut, responses={503: {"description": "Busy"}})
async def recommendations(v: VisitDep, n: MoviesN = 24, n_tags: TagsN = 12) -> RecommendationsOut:
    """Recommended movies (with a reason each) and tags; liked and disliked items never come back."""
    start = time.perf_counter()
    return await recommendations_out(v, await store_call(v.store.get(v.token)), n, n_tags, start)
