"""``GET /api/health``."""

from __future__ import annotations

from fastapi import APIRouter

from movierec.service.deps import EngineDep, GateDep
from movierec.service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(engine: EngineDep, gate: GateDep) -> Health:
    """The service is up; which model it serves and how busy it is."""
    return Health(
        status="ok",
        model=engine.model.name,
        movies=engine.model.n_movies,
        tags=engine.model.n_tags,
        genres=list(engine.genre_names),
        inference_pending=gate.pending,
    )
