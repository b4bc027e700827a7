"""An engine (and the service) ranking through an ANN index serves what exact scoring serves.

The index is forced on for the 30-movie :func:`conftest.small_dataset` (``ann_min_movies=1``)
with perfect recall (a flat index, or IVF probing every cell) and a pool small enough that
the index is really searched, so any difference is a bug in the retrieval path: exclusions,
filters, the popularity fallback, tags and reasons must all come out the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from movierec.data.dataset import Dataset
from movierec.models.artifacts import save_model
from movierec.models.popularity import Popularity
from movierec.models.sequence import SequenceLSTM
from movierec.retrieval import MipsConfig
from movierec.retrieval import mips as retrieval_module
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.serving import Answer, Engine
from movierec.settings import Settings
from movierec.storage.catalog import build_catalog
from movierec.storage.db import connect
from movierec.storage.session_state import SessionState

pytest.importorskip("faiss")

MATRIX = 2


@pytest.fixture(scope="module")
def model(tiny: Dataset) -> SequenceLSTM:
    size = {"embed_dim": 8, "hidden_dim": 16, "max_len": 6, "dropout": 0.0, "threads": 1}
    # without the transition prior the scores are inner products and retrieval reproduces them
    small = SequenceLSTM(
        **size, epochs=3, patience=0, holdout=False, transition_prior=False, liked_tag_pull=0.0
    )
    return small.fit(tiny, np.random.default_rng(3))


STATES = [
    SessionState(),  # popularity fallback
    SessionState(liked=[MATRIX, 10]),
    SessionState(liked=[11], disliked=[MATRIX], liked_tags=["crime"]),
    SessionState(liked=[5, 7], filters={"year_min": 1990, "genres": ["Drama", "Comedy"]}),
    SessionState(liked_tags=["cyberpunk"], filters={"genres": ["Sci-Fi"]}),
    SessionState(liked=[3], disliked=[4, 6], filters={"year_max": 2005}),
]


def _same(ann: Answer, exact: Answer) -> None:
    """Equal answers but for the movie scores, which are the exact ones less a per-session constant."""
    assert [m.movie_id for m in ann.movies] == [m.movie_id for m in exact.movies]
    assert [m.reason for m in ann.movies] == [m.reason for m in exact.movies]
    assert ann.tags == exact.tags and ann.fallback == exact.fallback
    assert ann.notes == exact.notes
    gap = np.array([e.score - a.score for a, e in zip(ann.movies, exact.movies, strict=True)])
    if ann.fallback:
        np.testing.assert_allclose(gap, 0.0)
    elif gap.size:
        np.testing.assert_allclose(gap, gap[0], atol=1e-4)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_engine_through_the_index_serves_the_exact_recommendations(
    kind: str, model: SequenceLSTM, tiny: Dataset
) -> None:
    config = MipsConfig(kind=kind, n_lists=4, n_probe=4)  # type: ignore[arg-type]
    ann = Engine.from_dataset(model, tiny, ann_min_movies=1, ann_config=config, ann_candidates=2)
    exact = Engine.from_dataset(model, tiny, ann_min_movies=0)
    assert ann.retrieval is not None and ann.retrieval.index.config.kind == kind
    assert exact.retrieval is None
    for state in STATES:
        got, want = ann.recommend(state, 8, 4), exact.recommend(state, 8, 4)
        _same(got, want)
        allowed = {int(m) for m in tiny.movies.ids}
        held = set(state.liked) | set(state.disliked)
        assert not held & {m.movie_id for m in got.movies}
        assert {m.movie_id for m in got.movies} <= allowed
    # filters honoured (checked against the catalogue, not just against the exact path)
    info = tiny.movie_info.set_index("movie_id")
    for m in ann.recommend(STATES[3], 8, 0).movies:
        assert info.loc[m.movie_id, "year"] >= 1990
        assert {"Drama", "Comedy"} & set(info.loc[m.movie_id, "genres"])
    # one batch with mixed filters and an empty session
    batch = ann.recommend_many([(s, 6, 3) for s in STATES])
    for got, state in zip(batch, STATES, strict=True):
        _same(got, exact.recommend(state, 6, 3))


def test_index_only_for_large_catalogues_and_vector_models(model: SequenceLSTM, tiny: Dataset) -> None:
    assert Engine.from_dataset(model, tiny).retrieval is None  # 30 movies < the 200,000 default
    assert Engine.from_dataset(model, tiny, ann_min_movies=30).retrieval is not None
    assert Engine.from_dataset(model, tiny, ann_min_movies=31).retrieval is None
    assert Engine.from_dataset(Popularity().fit(tiny), tiny, ann_min_movies=1).retrieval is None
    with pytest.raises(ValueError, match="ann_min_movies must be >= 0"):
        Engine.from_dataset(model, tiny, ann_min_movies=-1)


def test_without_faiss_the_engine_warns_and_scores_exactly(
    model: SequenceLSTM, tiny: Dataset, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def missing() -> Any:
        raise ImportError("movierec.retrieval needs FAISS")

    monkeypatch.setattr(retrieval_module, "_faiss", missing)
    with caplog.at_level(logging.WARNING, logger="movierec.serving"):
        engine = Engine.from_dataset(model, tiny, ann_min_movies=1)
    assert engine.retrieval is None
    assert any("needs FAISS" in r.message and "exactly" in r.message for r in caplog.records)
    exact = Engine.from_dataset(model, tiny, ann_min_movies=0)
    assert engine.recommend(STATES[1], 5, 2) == exact.recommend(STATES[1], 5, 2)


# ------------------------------------------------------------------ the service
@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory, tiny: Dataset, model: SequenceLSTM) -> Path:
    tmp = tmp_path_factory.mktemp("ann")
    save_model(model, tmp / "model")
    conn = connect(tmp / "db.sqlite3")
    build_catalog(tiny, conn)
    conn.close()
    return tmp


def _client(home: Path, ann_min_movies: int) -> TestClient:
    settings = ServiceSettings(
        inference_process=False,
        settings=Settings(home=home),
        model_dir=home / "model",
        database_path=home / "db.sqlite3",
        ann_min_movies=ann_min_movies,
        int8_heads=False,  # the index re-scores in float32: compare with exact float32 scoring
    )
    return TestClient(create_app(settings))


@pytest.fixture
def clients(model_home: Path) -> Iterator[tuple[TestClient, TestClient]]:
    with _client(model_home, 1) as ann, _client(model_home, 0) as exact:
        yield ann, exact


def test_service_setting_builds_the_index_and_serves_the_same(clients: tuple[TestClient, TestClient]) -> None:
    ann, exact = clients
    assert ann.app.state.service.engine.retrieval is not None  # type: ignore[attr-defined]
    assert exact.app.state.service.engine.retrieval is None  # type: ignore[attr-defined]
    for c in (ann, exact):
        c.post("/api/session/items", json={"kind": "movie", "value": MATRIX, "feedback": "like"})
        c.post("/api/session/items", json={"kind": "movie", "value": 10, "feedback": "dislike"})
        c.put("/api/session/filters", json={"year_min": 1985})
    params = {"n": 8, "n_tags": 3}
    got = ann.get("/api/recommendations", params=params)
    want = exact.get("/api/recommendations", params=params)
    assert got.status_code == want.status_code == 200, got.text
    g, w = got.json(), want.json()
    assert [m["movie_id"] for m in g["movies"]] == [m["movie_id"] for m in w["movies"]]
    assert g["tags"] == w["tags"] and g["movies"] and not g["fallback"]
    assert MATRIX not in [m["movie_id"] for m in g["movies"]]


def test_settings_reject_a_negative_threshold() -> None:
    with pytest.raises(ValueError, match="ann_min_movies"):
        ServiceSettings(inference_process=False, ann_min_movies=-1)
