"""Every registered model can be the page's model: fitted on the contract's checkerboard with
tiny settings, the engine answers a session (likes, a dislike, a liked tag, a year filter),
without movies already held and with the fallback only where the model cannot score, and
answers the movie view's "similar movies"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from contract import make_checkerboard, tiny
from movierec.data.dataset import Dataset
from movierec.models.registry import MODELS
from movierec.serving import Engine


@dataclass
class Visit:
    liked: list[int]
    disliked: list[int] = field(default_factory=list)
    liked_tags: list[str] = field(default_factory=list)
    disliked_tags: list[str] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_checkerboard()


@pytest.mark.parametrize("name", list(MODELS))
def test_the_engine_serves_a_session_with_every_model(name: str, data: Dataset) -> None:
    model = tiny(name).fit(data, np.random.default_rng(0))
    engine = Engine.from_dataset(model, data)
    ids = [int(x) for x in data.movies.ids]
    visit = Visit(liked=[ids[0], ids[2], ids[4]], disliked=[ids[1]])
    answer = engine.recommend(visit, n=10, n_tags=3)
    got = [m.movie_id for m in answer.movies]
    assert len(got) == 10 and len(set(got)) == 10
    assert not set(got) & {ids[0], ids[1], ids[2], ids[4]}, "held movies are never shown"
    assert all(np.isfinite(m.score) for m in answer.movies)
    if model.supports_sessions:
        assert not answer.fallback, f"{name} fell back to popularity for a session it can score"
    similar = engine.similar(ids[0], 5)
    assert 0 < len(similar) <= 5 and ids[0] not in [m.movie_id for m in similar]
