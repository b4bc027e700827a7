"""I-AutoRec under the shared contract, plus its fold-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contract import ModelContract, make_low_rank
from movierec.models.autorec import AutoRec, KernelLinear, SparseFC, baseline
from movierec.models.base import Query

FAST = {"hidden": 24, "batch_size": 8, "threads": 1, "patience": 0}


class TestAutoRec(ModelContract):
    make = staticmethod(lambda: AutoRec(**FAST, epochs=150, lr=1e-2, l2=0.1))
    quality = "low_rank"


def test_a_folded_in_session_predicts_its_own_user() -> None:
    """A session holding a known user's ratings ranks movies much as that user's read-out does."""
    data, truth = make_low_rank()
    model = TestAutoRec.make().fit(data, np.random.default_rng(0))
    agree = []
    for u in range(10):
        mine = data.user == u
        q = Query(movies=data.movie[mine].astype(np.int64), ratings=data.rating[mine].astype(np.float32))
        folded = model.score([q])[0]
        agree.append(np.corrcoef(folded, truth[u])[0, 1])
    assert np.median(agree) > 0.8, agree


def test_validation_stops_on_rmse() -> None:
    data, _ = make_low_rank()
    rng = np.random.default_rng(0)
    from movierec.data.splits import random_holdout

    train, valid = random_holdout(data, 0.2, rng)
    model = AutoRec(**{**FAST, "patience": 2}, epochs=40, lr=1e-2, l2=0.1).fit(train, rng, valid=valid)
    values = [h["valid"] for h in model.fit_info.history]
    assert all(np.isfinite(values))
    vu, vm = valid.user.astype(np.int64), valid.movie.astype(np.int64)
    rmse = float(np.sqrt(np.mean((model.predict(vu, vm) - valid.rating) ** 2)))
    assert rmse == pytest.approx(min(values), rel=1e-5)


def test_movie_embeddings_are_the_codes() -> None:
    data, _ = make_low_rank()
    model = AutoRec(**{**FAST, "hidden": 7}, epochs=2).fit(data, np.random.default_rng(0))
    codes = model.movie_embeddings()
    assert codes.shape == (data.n_movies, 7) and codes.dtype == np.float32
    np.testing.assert_array_equal(codes, model.state()["codes"])
    with pytest.raises(ValueError, match="invalid AutoRec"):
        AutoRec(hidden=0).fit(data)


class TestSparseFC(ModelContract):
    make = staticmethod(lambda: SparseFC(**FAST, epochs=150, lr=1e-2, l2=0.1, kernel_dim=3))
    quality = "low_rank"


def test_the_kernel_thins_weights_by_distance() -> None:
    """A unit's kernel is 1 at distance 0, 1 - d^2 nearer than 1, and 0 beyond."""
    layer = KernelLinear(3, 2, kernel_dim=1)
    with torch.no_grad():
        layer.weight.fill_(2.0)
        layer.u.copy_(torch.tensor([[0.0], [0.5], [3.0]]))
        layer.v.copy_(torch.tensor([[0.0], [0.5]]))
    expected = torch.tensor([[1.0, 0.75, 0.0], [0.75, 1.0, 0.0]])
    torch.testing.assert_close(layer.kernel(), expected)
    torch.testing.assert_close(layer(torch.ones(1, 3)), (2.0 * expected).sum(1, keepdim=True).T)


def test_the_kernel_penalty_makes_the_layers_sparser() -> None:
    data, _ = make_low_rank()
    share = {}
    for kernel_l2 in (0.0, 1.0):
        model = SparseFC(**FAST, epochs=40, lr=1e-2, l2=0.1, kernel_dim=3, kernel_l2=kernel_l2)
        model.fit(data, np.random.default_rng(0))
        share[kernel_l2] = float((model.state()["w"] == 0).mean())
    assert share[1.0] > share[0.0]


def test_the_baseline_recovers_additive_biases() -> None:
    """Ratings that are exactly mu + b_u + b_i on a full matrix give those biases back (reg 0)."""
    rng = np.random.default_rng(0)
    bu, bi = rng.normal(0, 0.5, 6), rng.normal(0, 0.5, 5)
    bu -= bu.mean()
    bi -= bi.mean()
    user, movie = np.divmod(np.arange(30), 5)
    rating = 3.5 + bu[user] + bi[movie]
    mu, got_u, got_i = baseline(user, movie, rating, 6, 5, reg=0.0, rounds=5)
    assert mu == pytest.approx(3.5)
    np.testing.assert_allclose(got_u, bu, atol=1e-9)
    np.testing.assert_allclose(got_i, bi, atol=1e-9)
