"""EASE under the shared contract, plus the closed form on a tiny matrix."""

from __future__ import annotations

import numpy as np
import pytest

from contract import ModelContract, make_checkerboard, make_low_rank
from movierec.models.ease import EASE


class TestEASE(ModelContract):
    make = staticmethod(lambda: EASE(l2=10.0))
    quality = "checkerboard"


@pytest.mark.parametrize("which", ["few users (Woodbury)", "many users (direct inverse)"])
def test_matches_the_closed_form(which: str) -> None:
    data = make_checkerboard() if which.startswith("few") else make_low_rank()[0]
    assert (data.n_users < data.n_movies) == which.startswith("few")
    model = EASE(l2=5.0).fit(data)
    x = data.interactions().toarray().astype(np.float64)
    active = np.flatnonzero(x.sum(axis=0) > 0)
    g = x[:, active].T @ x[:, active] + 5.0 * np.eye(active.size)
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(model.state()["b"], b, rtol=1e-4, atol=1e-6)
    assert np.allclose(np.diag(model.state()["b"]), 0.0)
