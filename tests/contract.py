"""The model contract every recommender must pass.

A model's test file subclasses :class:`ModelContract` and sets ``make`` (a
function returning a new, unfitted model, with settings small enough to fit
in well under a second) and ``quality`` (which known-answer check applies)::

    class TestItemKNN(ModelContract):
        make = staticmethod(lambda: ItemKNN(k=20))
        quality = "checkerboard"

The synthetic data sets are built once per module; nothing touches the network.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from movierec.data.dataset import Dataset
from movierec.data.synthetic import checkerboard, low_rank_ratings
from movierec.models.artifacts import load_model, save_model
from movierec.models.base import Query, Recommender
from movierec.models.configs import knows
from movierec.models.registry import create, model_class
from movierec.ranking import Catalog, recommend

N_USERS, N_MOVIES = 40, 60


def make_checkerboard() -> Dataset:
    """Even users rate ~30% of even movies, odd users of odd movies (4-5 stars)."""
    return checkerboard(N_USERS, N_MOVIES, 0.3, np.random.default_rng(7))


def make_low_rank() -> tuple[Dataset, np.ndarray]:
    """Rank-3 ratings at 40% density and the true matrix."""
    return low_rank_ratings(80, 60, 3, 0.4, np.random.default_rng(3), noise=0.1)


def _arrays(data: Dataset) -> dict[str, np.ndarray]:
    return {
        "user": data.user.copy(),
        "movie": data.movie.copy(),
        "rating": data.rating.copy(),
        "timestamp": data.timestamp.copy(),
        "movie_tags": data.movie_tags.toarray(),
        "movie_ids": data.movies.ids.copy(),
    }


def _sessions(data: Dataset) -> list[Query]:
    return [
        Query.session(liked=[0, 2, 4]),
        Query.session(liked=[1, 3], disliked=[0]),
        Query(movies=np.array([5, 7, 9]), feedback=np.array([1, 0, 1]), ratings=np.array([5.0, np.nan, 4.0])),
    ]


def check_contract(make: Callable[[], Recommender], data: Dataset, tmp_path: Path) -> None:
    """Every structural check of the contract on ``data``; usable outside the test class."""
    before = _arrays(data)
    model = make()
    fitted = model.fit(data, np.random.default_rng(0))
    assert fitted is model, "fit must return self"
    for key, arr in _arrays(data).items():
        np.testing.assert_array_equal(arr, before[key], err_msg=f"fit modified the data set's {key}")

    users = np.arange(min(5, data.n_users))
    s_users = model.score_users(users)
    assert s_users.shape == (users.size, data.n_movies) and s_users.dtype == np.float32
    assert np.isfinite(s_users).any(axis=1).all(), "known users must be scorable"
    sessions = _sessions(data)
    s_sess = model.score(sessions)
    assert s_sess.shape == (len(sessions), data.n_movies) and s_sess.dtype == np.float32
    if model.supports_sessions:
        assert np.isfinite(s_sess).any(axis=1).all(), "sessions must be scorable"

    catalog = Catalog.from_dataset(data)
    with pytest.raises(IndexError, match="out of range"):
        recommend(model, [Query.session(liked=[data.n_movies])], 5, catalog=catalog)
    with pytest.raises(IndexError, match="out of range"):
        recommend(model, [Query.session(liked=[-1])], 5, catalog=catalog)

    empty = recommend(model, [Query()], 5, catalog=catalog)[0]
    assert empty.fallback
    pop = np.lexsort((np.arange(data.n_movies), -catalog.popularity_scores))[:5]
    np.testing.assert_array_equal(empty.movies, pop)

    recs = recommend(model, sessions, 10, catalog=catalog)
    for q, r in zip(sessions, recs, strict=True):
        assert not np.isin(r.movies, q.movies).any(), "held movies must be excluded"
        assert len(r.movies) == 10 and len(np.unique(r.movies)) == 10

    path = save_model(model, tmp_path / model.name)
    loaded = load_model(path, expect_fingerprint=data.fingerprint())
    np.testing.assert_array_equal(loaded.score(sessions), s_sess)
    if model.supports_ratings:
        u, m = data.user[:20].astype(np.int64), data.movie[:20].astype(np.int64)
        np.testing.assert_array_equal(loaded.predict(u, m), model.predict(u, m))

    again = make().fit(data, np.random.default_rng(0))
    np.testing.assert_array_equal(again.score(sessions), s_sess, err_msg="same seed must give the same model")
    np.testing.assert_array_equal(again.score_users(users), s_users)


def check_checkerboard(model: Recommender, data: Dataset, n: int = 10) -> None:
    """Every user's top-``n`` (training items excluded) lies in the user's own half."""
    train = data.interactions()
    queries = [
        Query(movies=train.indices[train.indptr[u] : train.indptr[u + 1]].astype(np.int64), user=u)
        for u in range(data.n_users)
    ]
    recs = recommend(model, queries, n, catalog=Catalog.from_dataset(data))
    for u, r in enumerate(recs):
        assert len(r.movies) == n
        wrong = r.movies[r.movies % 2 != u % 2]
        assert wrong.size == 0, f"user {u} got movies from the other half: {wrong.tolist()}"


def check_low_rank(model: Recommender, data: Dataset, truth: np.ndarray) -> None:
    """Rating predictions of all pairs beat the global mean by a wide margin."""
    users, movies = np.divmod(np.arange(data.n_users * data.n_movies), data.n_movies)
    pred = model.predict(users, movies)
    assert pred.shape == users.shape and pred.dtype == np.float32
    assert pred.min() >= data.scale.low and pred.max() <= data.scale.high
    rmse = math.sqrt(float(np.mean((pred - truth.ravel()) ** 2)))
    baseline = math.sqrt(float(np.mean((float(data.rating.mean()) - truth.ravel()) ** 2)))
    assert rmse < 0.6 * baseline, f"RMSE {rmse:.3f} vs global mean {baseline:.3f}"


class ModelContract:
    """Mix-in test class: set ``make`` and ``quality`` (``"checkerboard"``, ``"low_rank"`` or ``None``)."""

    make: ClassVar[Callable[[], Recommender]]
    quality: ClassVar[str | None] = "checkerboard"

    def test_contract_checkerboard(self, tmp_path: Path) -> None:
        check_contract(type(self).make, make_checkerboard(), tmp_path)

    def test_contract_low_rank(self, tmp_path: Path) -> None:
        check_contract(type(self).make, make_low_rank()[0], tmp_path)

    def test_quality(self) -> None:
        if self.quality is None:
            pytest.skip("no known-answer quality check for this model")
        if self.quality == "checkerboard":
            data = make_checkerboard()
            check_checkerboard(type(self).make().fit(data, np.random.default_rng(0)), data)
        elif self.quality == "low_rank":
            data, truth = make_low_rank()
            check_low_rank(type(self).make().fit(data, np.random.default_rng(0)), data, truth)
        else:
            raise AssertionError(f"unknown quality check {self.quality!r}")

    def test_registered_name(self) -> None:
        from movierec.models.registry import model_class

        model = type(self).make()
        assert model_class(model.name) is type(model)

    def test_unfitted_model_says_so(self) -> None:
        from movierec.models.base import NotFittedError

        with pytest.raises(NotFittedError):
            type(self).make().score([Query.session(liked=[0])])


# ------------------------------------------------------------- every model, tiny

#: settings that keep every model's fit on the 40 x 60 checkerboard well under a second; each
#: is applied only to the models whose config has it
TINY: dict[str, Any] = {
    "epochs": 1,
    "enc_epochs": 1,
    "iterations": 2,
    "factors": 4,
    "mlp_layers": (8, 4),
    "embedding_dim": 8,
    "embed_dim": 8,
    "hidden_dim": 16,
    "max_len": 8,
    "latent": 8,
    "batch_size": 64,
    "threads": 1,
    "patience": 0,
    "progress": False,
}


def text_encoder(texts: Sequence[str]) -> np.ndarray:
    """A 16-dimensional hashed bag of words (unit rows): content without the MiniLM model."""
    out = np.zeros((len(texts), 16), np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % out.shape[1]] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def tiny(name: str) -> Recommender:
    """An unfitted registered model ``name`` with the :data:`TINY` settings its config has."""
    settings: dict[str, Any] = {k: v for k, v in TINY.items() if knows(model_class(name).Config, k)}
    if name in ("content", "hybrid"):
        settings["encoder"] = text_encoder
    if name in ("autorec", "sparsefc", "multvae", "recvae"):
        settings["hidden"] = 16  # one width (the rating MLPs' "hidden" is a tuple of layers)
    return create(name, **settings)
