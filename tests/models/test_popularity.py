"""Popularity under the shared contract, plus its own known answers."""

from __future__ import annotations

import numpy as np

from contract import ModelContract, make_checkerboard
from movierec.models.popularity import Popularity


class TestPopularity(ModelContract):
    make = staticmethod(lambda: Popularity())
    quality = None  # not personalised: checked below instead


def test_most_rated_movie_ranks_first() -> None:
    data = make_checkerboard()
    scores = Popularity().fit(data).score_users(np.array([0, 1]))
    assert (scores[0] == scores[1]).all()
    assert int(np.argmax(scores[0])) == int(np.argmax(data.movie_popularity))
