"""RatingRegressor (mlp-reg) and RatingClassifier (mlp-clf) on planted low-rank ratings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from contract import ModelContract, make_low_rank
from movierec.data.splits import random_holdout
from movierec.models.base import Query
from movierec.models.rating_mlp import RatingClassifier, RatingRegressor

FAST = {"epochs": 40, "batch_size": 256, "threads": 1, "patience": 0}
#: more, smaller steps: what the ~1,700 training ratings need to approach the planted matrix
SMALL_STEPS = {"epochs": 20, "batch_size": 64, "lr": 5e-3, "dropout": 0.1, "threads": 1, "patience": 0}


class TestRatingRegressorContract(ModelContract):
    make = staticmethod(lambda: RatingRegressor(**FAST))
    quality = "low_rank"


class TestRatingClassifierContract(ModelContract):
    make = staticmethod(lambda: RatingClassifier(**{**FAST, "epochs": 3}))
    quality = None  # the held-out check below is the classifier's quality floor


@pytest.mark.parametrize(
    ("cls", "settings", "ratio"), [(RatingRegressor, SMALL_STEPS, 0.6), (RatingClassifier, SMALL_STEPS, 0.9)]
)
def test_held_out_rmse_well_below_global_mean(
    cls: type[RatingRegressor] | type[RatingClassifier], settings: dict[str, Any], ratio: float
) -> None:
    data, _ = make_low_rank()
    train, test = random_holdout(data, 0.1, np.random.default_rng(1))
    model = cls(**settings).fit(train, np.random.default_rng(0))
    pred = model.predict(test.user.astype(np.int64), test.movie.astype(np.int64))
    rmse = float(np.sqrt(np.mean((pred - test.rating) ** 2)))
    baseline = float(np.sqrt(np.mean((train.rating.mean() - test.rating) ** 2)))
    assert rmse < ratio * baseline, f"{cls.name}: RMSE {rmse:.3f} vs global mean {baseline:.3f}"


def test_predictions_clipped_to_scale() -> None:
    data, _ = make_low_rank()
    model = RatingRegressor(**FAST).fit(data, np.random.default_rng(0))
    out = model.net.out
    assert isinstance(out, torch.nn.Linear)
    with torch.no_grad():
        out.bias.add_(10.0)  # push raw outputs far above the scale
    pred = model.predict(np.zeros(5, np.int64), np.arange(5))
    assert np.all(pred == data.scale.high)


def test_classifier_expected_and_argmax() -> None:
    data, _ = make_low_rank()
    model = RatingClassifier(**{**FAST, "epochs": 3}).fit(data, np.random.default_rng(0))
    u, m = data.user[:50].astype(np.int64), data.movie[:50].astype(np.int64)
    proba = model.predict_proba(u, m)
    levels = data.scale.levels
    assert proba.shape == (50, levels.size)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model.predict(u, m), np.clip(proba @ levels, 0.5, 5.0), atol=1e-4)
    arg = model.predict_argmax(u, m)
    np.testing.assert_array_equal(arg, levels[proba.argmax(1)])
    model.config.prediction = "argmax"
    np.testing.assert_array_equal(model.predict(u, m), arg)


def test_fold_in_follows_session_ratings() -> None:
    """A session that rates like user u is scored closer to u's predictions than to the mean user."""
    data, truth = make_low_rank()
    model = RatingRegressor(**FAST).fit(data, np.random.default_rng(0))
    u = 3
    movies, ratings = data.history(u)
    session = Query(movies=movies.astype(np.int64), ratings=ratings)
    folded = model.score([session])[0]
    known = model.score_users(np.array([u]))[0]
    mean_user = model.score_users(np.arange(data.n_users)).mean(0)
    assert np.abs(folded - known).mean() < np.abs(mean_user - known).mean()
    assert np.corrcoef(folded, truth[u])[0, 1] > 0.5


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError, match="prediction"):
        RatingClassifier(prediction="median")
    with pytest.raises(ValueError, match="dropout"):
        RatingRegressor(dropout=1.5).fit(make_low_rank()[0], np.random.default_rng(0))
