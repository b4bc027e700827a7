"""GMF, NCF-MLP and NeuMF: contract, checkerboard, negatives, fold-in, explicit mode."""

from __future__ import annotations

import numpy as np
import pytest

from contract import ModelContract, make_checkerboard, make_low_rank
from movierec.evaluation.harness import evaluate
from movierec.models.base import Query
from movierec.models.ncf import GMF, NCFMLP, NeuMF, sample_negatives

FAST = {
    "epochs": 30,
    "batch_size": 256,
    "lr": 1e-2,
    "factors": 8,
    "mlp_layers": (16, 8),
    "threads": 1,
    "init_std": 0.1,
    # pinned, so these known-answer tests do not move with the tuned defaults
    "negatives": 4,
    "dropout": 0.0,
    "weight_decay": 0.0,
}
#: settings under which each model separates the checkerboard on ~360 positives
GOOD = {
    "gmf": (GMF, {**FAST, "epochs": 20, "factors": 4, "weight_decay": 0.05}, 0.9),
    "mlp": (NCFMLP, {**FAST, "init_std": 0.5, "mlp_layers": (32, 16), "negatives": 2}, 0.85),
    "neumf": (NeuMF, {**FAST, "epochs": 15, "finetune_lr": 5e-3}, 0.95),
}


# The strict checkerboard (every one of 400 recommendations in the user's half)
# is too strict for sampled-negative models on 360 positives: unrated movies of
# the user's own half are sampled as negatives as often as the other half's.
# ``test_checkerboard_own_half`` holds them to a share instead.
class TestGMF(ModelContract):
    make = staticmethod(lambda: GMF(**{**FAST, "epochs": 5}))
    quality = None


class TestNCFMLP(ModelContract):
    make = staticmethod(lambda: NCFMLP(**{**FAST, "epochs": 5}))
    quality = None


class TestNeuMF(ModelContract):
    make = staticmethod(lambda: NeuMF(**{**FAST, "epochs": 3}))
    quality = None


@pytest.mark.parametrize("name", sorted(GOOD))
def test_checkerboard_own_half(name: str) -> None:
    cls, settings, share = GOOD[name]
    data = make_checkerboard()
    model = cls(**settings).fit(data, np.random.default_rng(0))
    scores = model.score_users(np.arange(data.n_users))
    scores[data.interactions().toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :10]
    own = (top % 2 == (np.arange(data.n_users) % 2)[:, None]).mean()
    assert own >= share, f"{name}: {own:.0%} of recommendations in the user's own half"


def test_negatives_are_never_rated() -> None:
    data = make_checkerboard()
    keys = np.unique(data.user.astype(np.int64) * data.n_movies + data.movie)
    users = np.repeat(np.arange(data.n_users), 50)
    neg = sample_negatives(users, data.n_movies, keys, np.random.default_rng(0))
    assert neg.shape == users.shape
    assert not np.isin(users * data.n_movies + neg, keys).any()
    # uniform over the unrated movies: both halves are drawn (the other half is never rated)
    assert (neg % 2 == users % 2).any() and (neg % 2 != users % 2).any()


def test_session_fold_in_stays_in_its_half() -> None:
    data = make_checkerboard()
    cls, settings, _ = GOOD["gmf"]
    model = cls(**settings).fit(data, np.random.default_rng(0))
    scores = model.score([Query.session(liked=[0, 2, 4, 6]), Query.session(liked=[1, 3, 5, 7])])
    top = np.argsort(-scores, axis=1)[:, :15]
    assert (top[0] % 2 == 0).mean() >= 0.9 and (top[1] % 2 == 1).mean() >= 0.9


def test_neumf_pretraining_recorded_and_optional() -> None:
    data = make_checkerboard()
    pre = NeuMF(**{**FAST, "epochs": 3}).fit(data, np.random.default_rng(0))
    assert set(pre.fit_info.extra["pretrain"]) == {"gmf", "mlp"}
    plain = NeuMF(**{**FAST, "epochs": 3, "pretrain": False}).fit(data, np.random.default_rng(0))
    assert "pretrain" not in plain.fit_info.extra


def test_explicit_mode_predicts_ratings() -> None:
    data, _ = make_low_rank()
    model = GMF(**{**FAST, "explicit": True, "epochs": 40}).fit(data, np.random.default_rng(0))
    pred = model.predict(data.user.astype(np.int64), data.movie.astype(np.int64))
    baseline = np.sqrt(np.mean((data.rating.mean() - data.rating) ** 2))
    assert np.sqrt(np.mean((pred - data.rating) ** 2)) < 0.7 * baseline
    with pytest.raises(NotImplementedError, match="explicit"):
        GMF(**{**FAST, "epochs": 1}).fit(data, np.random.default_rng(0)).predict(
            np.zeros(1, np.int64), np.zeros(1, np.int64)
        )


def test_early_stopping_on_valid() -> None:
    data = make_checkerboard()
    model = GMF(**{**FAST, "epochs": 50, "patience": 2}).fit(data, np.random.default_rng(0), valid=data)
    hist = model.fit_info.history
    assert all("valid" in row for row in hist)
    assert 0.0 <= hist[-1]["valid"] <= 1.0


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError, match="negatives"):
        GMF(negatives=0)
    with pytest.raises(ValueError, match="mlp_layers"):
        NCFMLP(mlp_layers=(15, 8))


def test_supports_ratings_follows_explicit_config() -> None:
    assert not GMF().supports_ratings and GMF(explicit=True).supports_ratings
    assert NeuMF(explicit=True).supports_ratings and not NeuMF.supports_ratings
    model = NCFMLP()
    model.config.explicit = True  # read per instance from the live config
    assert model.supports_ratings


@pytest.mark.parametrize("name", ["gmf", "neumf"])
def test_rating_protocol_runs_explicit_mode(name: str) -> None:
    """The harness's rating protocol accepts an explicit NCF and it beats the global mean;
    the implicit default (like ``pop``) is reported unsupported instead of failing.

    For ``neumf`` this also guards the pre-trained explicit NeuMF's output bias,
    which once lost the global mean before fine-tuning."""
    data, _ = make_low_rank()
    settings = {**FAST, "epochs": 40, "explicit": True}
    explicit, pop = evaluate([name, "pop"], data, "rating", model_overrides={name: settings}, n_resamples=50)
    assert explicit.supported, explicit.message
    train_mean = float(data.rating.mean())
    baseline = float(np.sqrt(np.mean((train_mean - data.rating) ** 2)))
    assert explicit.metrics["rmse"] < 0.75 * baseline, (explicit.metrics["rmse"], baseline)
    assert explicit.ci["rmse"][0] <= explicit.metrics["rmse"] <= explicit.ci["rmse"][1]
    assert not pop.supported and "supports_ratings" in pop.message
    (plain,) = evaluate([name], data, "rating", model_overrides={name: FAST}, n_resamples=50)
    assert not plain.supported
