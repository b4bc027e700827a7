"""Item and user kNN under the shared contract, plus similarity known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contract import ModelContract, make_checkerboard
from movierec.data.dataset import Dataset
from movierec.models.base import Query
from movierec.models.knn import ItemKNN, UserKNN


class TestItemKNN(ModelContract):
    make = staticmethod(lambda: ItemKNN(k=20))
    quality = "checkerboard"


class TestUserKNN(ModelContract):
    make = staticmethod(lambda: UserKNN(k=10))
    quality = "checkerboard"


def _tiny() -> Dataset:
    """Movies 0 and 1 are always watched together; movie 2 by other users."""
    users = [1, 1, 2, 2, 3, 3, 4, 5]
    movies = [10, 11, 10, 11, 10, 11, 12, 12]
    ratings = pd.DataFrame({"userId": users, "movieId": movies, "rating": 4.0, "timestamp": 1})
    titles = pd.DataFrame(
        {"movieId": [10, 11, 12], "title": ["A (2000)", "B (2001)", "C (2002)"], "genres": "Drama"}
    )
    return Dataset.build("tiny", ratings, titles)


def test_itemknn_cosine_with_shrinkage() -> None:
    # movies 0 and 1: 3 common users, 3 each -> cosine 1, shrunk by 3 / (3 + 1)
    model = ItemKNN(k=5, shrink=1.0).fit(_tiny())
    idx, val = model.similar(0, 5)
    assert idx.tolist() == [1]
    np.testing.assert_allclose(val, [0.75], rtol=1e-6)
    assert model.similar(2, 5)[0].size == 0


def test_itemknn_dislike_subtracts() -> None:
    model = ItemKNN(k=5, shrink=0.0, dislike_weight=2.0).fit(_tiny())
    like, dislike = model.score([Query.session(liked=[0]), Query.session(disliked=[0])])
    assert like[1] == pytest.approx(1.0) and dislike[1] == pytest.approx(-2.0)


def test_itemknn_keeps_k_neighbours() -> None:
    model = ItemKNN(k=3).fit(make_checkerboard())
    assert max(np.diff(model.state()["sim_indptr"])) <= 3


def test_itemknn_similar_rejects_bad_index() -> None:
    model = ItemKNN().fit(_tiny())
    with pytest.raises(IndexError, match="out of range"):
        model.similar(3)


def test_userknn_excludes_the_user_itself() -> None:
    # user 3 (index 3) only watched movie 2, like user 4: its neighbour is user 4, not itself
    data = _tiny()
    model = UserKNN(k=1, shrink=0.0).fit(data)
    scores = model.score_users(np.array([3]))[0]
    assert scores[2] == pytest.approx(1.0) and scores[0] == 0.0


def test_empty_query_gives_a_nan_row() -> None:
    model = ItemKNN().fit(_tiny())
    # movie 2 has no neighbours -> all-zero row is still a scored row; an empty query gives NaN
    assert np.isnan(model.score([Query(user=None)])).all()


def test_itemknn_blocks_give_the_same_similarities(monkeypatch: pytest.MonkeyPatch) -> None:
    # guards a bug where blocks after the first were stacked as extra rows
    import movierec.models.knn as knn

    data = make_checkerboard()
    whole = ItemKNN(k=7).fit(data).state()
    monkeypatch.setattr(knn, "_BLOCK", 7)
    blocked = ItemKNN(k=7).fit(data).state()
    for key, arr in whole.items():
        np.testing.assert_array_equal(blocked[key], arr, err_msg=key)
