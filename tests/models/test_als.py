"""Implicit ALS under the shared contract."""

from __future__ import annotations

from contract import ModelContract, make_checkerboard
from movierec.models.als import ALS
from movierec.models.base import Query


class TestALS(ModelContract):
    make = staticmethod(lambda: ALS(factors=8, iterations=10, regularization=5.0, threads=1))
    quality = "checkerboard"


def test_dislike_lowers_the_disliked_half() -> None:
    data = make_checkerboard()
    model = ALS(factors=8, iterations=10, regularization=5.0, threads=1).fit(data)
    liked, with_dislike = model.score(
        [Query.session(liked=[0, 2]), Query.session(liked=[0, 2], disliked=[4, 6])]
    )
    # disliking even movies lowers the even half relative to the plain session
    assert with_dislike[0::2].mean() < liked[0::2].mean()
