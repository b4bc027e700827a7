"""``GET /api/health``."""

from __future__ import annotations

from fastapi import APIRouter

from movierec.models.artifacts import STANDIN_KEY
from movierec.service.deps import ServicesDep
from movierec.service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(svc: ServicesDep) -> Health:
    """The service is up; which model it serves, since when, and how busy it is."""
    reloader = svc.state.reloader
    engine = svc.engine
    return Health(
        status="ok",
        model=engine.model.name,
        model_standin_for=engine.model.fit_info.extra.get(STANDIN_KEY),
        movies=engine.model.n_movies,
        tags=engine.model.n_tags,
        genres=list(engine.genre_names),
        image_base=svc.settings.settings.tmdb_image_url,
        inference_pending=svc.gate.pending,
        model_loaded_at=reloader.loaded_at if reloader else None,
        last_reload_error=reloader.last_error if reloader else None,
    )
