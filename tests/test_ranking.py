"""ranking.top_n / recommend / Filters / Catalog on hand-made cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.models.base import Query
from movierec.models.popularity import Popularity
from movierec.ranking import Catalog, Filters, recommend, top_n


def _data() -> Dataset:
    """5 movies; movie 0 rated by 3 users, 1 by 2, 2 by 1, 3 and 4 by nobody."""
    ratings = pd.DataFrame(
        {
            "userId": [1, 2, 3, 1, 2, 1],
            "movieId": [10, 10, 10, 11, 11, 12],
            "rating": [5.0, 4.0, 3.0, 2.0, 2.0, 5.0],
            "timestamp": 1,
        }
    )
    movies = pd.DataFrame(
        {
            "movieId": [10, 11, 12, 13, 14],
            "title": ["A (1990)", "B (2000)", "C (2010)", "D", "E (2005)"],
            "genres": ["Drama|Comedy", "Action", "Comedy", "Drama", "(no genres listed)"],
        }
    )
    return Dataset.build("tiny", ratings, movies)


def test_top_n_orders_and_breaks_ties_by_index() -> None:
    scores = np.array([[0.1, 0.5, 0.5, 0.9]], np.float32)
    idx, vals = top_n(scores, 3)
    assert idx.tolist() == [[3, 1, 2]]
    np.testing.assert_allclose(vals, [[0.9, 0.5, 0.5]])


def test_top_n_excludes_list_and_sparse_alike() -> None:
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
    by_list, _ = top_n(scores, 2, exclude=[np.array([0]), np.array([3, 2])])
    ex = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 1]], np.float32))
    by_csr, _ = top_n(scores, 2, exclude=ex)
    assert by_list.tolist() == [[1, 2], [1, 0]] == by_csr.tolist()


def test_top_n_pads_with_minus_one() -> None:
    scores = np.array([[1.0, np.nan, 2.0]], np.float32)
    idx, vals = top_n(scores, 5)
    assert idx.tolist() == [[2, 0, -1, -1, -1]]
    assert np.isneginf(vals[0, 2:]).all()


def test_top_n_fallback_only_for_rows_without_scores() -> None:
    scores = np.array([[np.nan, np.nan, np.nan], [0.0, 1.0, np.nan]], np.float32)
    fallback = np.array([3.0, 2.0, 1.0], np.float32)
    idx, _ = top_n(scores, 2, fallback=fallback)
    assert idx.tolist() == [[0, 1], [1, 0]]


def test_top_n_does_not_modify_scores() -> None:
    scores = np.array([[1.0, np.nan, 2.0]], np.float32)
    before = scores.copy()
    top_n(scores, 2, exclude=[np.array([0])], allowed=np.array([True, True, False]))
    np.testing.assert_array_equal(scores, before)


def test_catalog_from_dataset() -> None:
    cat = Catalog.from_dataset(_data())
    assert cat.year.tolist() == [1990, 2000, 2010, 0, 2005]
    assert cat.rating_count.tolist() == [3, 2, 1, 0, 0]
    assert cat.genre_names == ("Action", "Comedy", "Drama")
    assert cat.genres[0].tolist() == [False, True, True] and not cat.genres[4].any()
    assert np.isnan(cat.mean_rating[3])
    assert int(np.argmax(cat.popularity_scores)) == 0


@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        (Filters(), None),
        (Filters(year_min=2000), [1, 2, 4]),
        (Filters(year_max=2000), [0, 1]),  # unknown year (0) is not "before 2000"
        (Filters(genres=("Comedy",)), [0, 2]),
        (Filters(genres=("Action", "Drama")), [0, 1, 3]),
        (Filters(min_rating=4.0), [0, 2]),
        (Filters(min_rating=4.0, min_count=2), [0]),
    ],
)
def test_filters(filters: Filters, allowed: list[int] | None) -> None:
    mask = filters.mask(Catalog.from_dataset(_data()))
    if allowed is None:
        assert mask is None
    else:
        assert mask is not None and np.flatnonzero(mask).tolist() == allowed


def test_unknown_genre_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown genre.*Western.*known"):
        Filters(genres=("Western",)).mask(Catalog.from_dataset(_data()))


def test_recommend_excludes_held_filters_and_falls_back() -> None:
    data = _data()
    model = Popularity().fit(data)
    cat = Catalog.from_dataset(data)
    held, empty = recommend(model, [Query.session(liked=[0]), Query()], 3, catalog=cat)
    assert held.movies.tolist() == [1, 2, 3]  # 3 and 4 tie: lower index first and not held.fallback
    assert empty.fallback and empty.movies.tolist() == [0, 1, 2]
    (filtered,) = recommend(model, [Query()], 3, catalog=cat, filters=Filters(genres=("Comedy",)))
    assert filtered.movies.tolist() == [0, 2]  # only two comedies: no padding in the result


def test_recommend_rejects_out_of_range_indices() -> None:
    data = _data()
    model = Popularity().fit(data)
    with pytest.raises(IndexError, match=r"movie index out of range 0\.\.4: \[5\]"):
        recommend(model, [Query.session(liked=[5])], 3)
