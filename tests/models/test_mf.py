"""Biased MF under the shared contract, plus rating and fold-in checks."""

from __future__ import annotations

import numpy as np
import pytest

from contract import (
    ModelContract,
    make_low_rank,
)
from movierec.models.base import CannotScoreError, Query
from movierec.models.mf import BiasedMF


class TestBiasedMF(ModelContract):
    make = staticmethod(lambda: BiasedMF(factors=4, iterations=5, reg=0.05))
    quality = "low_rank"


def test_predict_is_clipped_to_scale() -> None:
    data, _ = make_low_rank()
    model = BiasedMF(factors=4, iterations=5, reg=0.0, bias_reg=1e-3).fit(data)
    users, movies = np.divmod(np.arange(data.n_users * data.n_movies), data.n_movies)
    pred = model.predict(users, movies)
    assert pred.min() >= data.scale.low and pred.max() <= data.scale.high


def test_fold_in_follows_the_sessions_taste() -> None:
    # a session rating exactly what a training user rated recovers a similar ranking
    data, _ = make_low_rank()
    model = BiasedMF(factors=4, iterations=8, reg=0.05).fit(data)
    movies, ratings = data.history(0)
    q = Query(movies=movies.astype(np.int64), ratings=ratings)
    session = model.score([q])[0]
    known = model.score_users(np.array([0]))[0]
    assert np.corrcoef(session, known)[0, 1] > 0.8


def test_empty_session_cannot_be_folded_in() -> None:
    data, _ = make_low_rank()
    model = BiasedMF(factors=2, iterations=2).fit(data)
    with pytest.raises(CannotScoreError):
        model.fold_in(Query())


def test_predict_rejects_bad_indices() -> None:
    data, _ = make_low_rank()
    model = BiasedMF(factors=2, iterations=2).fit(data)
    with pytest.raises(IndexError, match="out of range"):
        model.predict(np.array([0]), np.array([data.n_movies]))
