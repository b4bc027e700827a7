"""Splits: disjoint, covering, per-user guarantees, temporal order, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.data import splits
from movierec.data.dataset import Dataset
from movierec.data.validation import DataError


def _data(seed: int = 0) -> Dataset:
    """25 users with 1..25 ratings each (user k+1 has k+1), distinct shuffled timestamps."""
    rng = np.random.default_rng(seed)
    counts = np.arange(1, 26)
    user = np.repeat(np.arange(25), counts) + 100
    movie = np.concatenate([rng.choice(40, c, replace=False) for c in counts]) + 1
    ts = rng.permutation(len(user)) * 10 + 1_000_000
    ratings = pd.DataFrame(
        {"userId": user, "movieId": movie, "rating": rng.integers(1, 6, len(user)), "timestamp": ts}
    )
    movies = pd.DataFrame({"movieId": np.arange(1, 41), "title": [f"M{i} (1999)" for i in range(40)]})
    return Dataset.build("toy", ratings, movies)


def _keys(d: Dataset) -> np.ndarray:
    return d.user.astype(np.int64) * d.n_movies + d.movie


def _assert_partition(data: Dataset, *parts: Dataset) -> None:
    keys = np.concatenate([_keys(p) for p in parts])
    assert len(np.unique(keys)) == len(keys), "parts overlap"
    np.testing.assert_array_equal(np.sort(keys), np.sort(_keys(data)))
    for p in parts:
        assert p.movies is data.movies and p.users is data.users


def test_random_holdout_is_a_partition_of_the_right_size() -> None:
    data = _data()
    train, test = splits.random_holdout(data, 0.1, np.random.default_rng(1))
    _assert_partition(data, train, test)
    assert test.n_ratings == round(0.1 * data.n_ratings)


def test_random_holdout_is_deterministic_per_seed() -> None:
    data = _data()
    a = splits.random_holdout(data, 0.2, np.random.default_rng(5))[1]
    b = splits.random_holdout(data, 0.2, np.random.default_rng(5))[1]
    c = splits.random_holdout(data, 0.2, np.random.default_rng(6))[1]
    np.testing.assert_array_equal(_keys(a), _keys(b))
    assert not np.array_equal(_keys(a), _keys(c))


def test_per_user_holdout_gives_every_eligible_user_a_test_item() -> None:
    data = _data()
    train, test = splits.per_user_holdout(data, 0.2, np.random.default_rng(0))
    _assert_partition(data, train, test)
    counts = np.diff(data.user_ptr)
    n_test = np.bincount(test.user, minlength=data.n_users)
    n_train = np.bincount(train.user, minlength=data.n_users)
    assert (n_test[counts >= 2] >= 1).all()
    assert (n_test[counts == 1] == 0).all() and (n_train[counts == 1] == 1).all()
    assert (n_train >= 1).all(), "every user keeps a training rating"
    expected = np.where(counts >= 2, np.clip(np.round(0.2 * counts), 1, counts - 1), 0)
    np.testing.assert_array_equal(n_test, expected)


def test_per_user_holdout_min_test_and_determinism() -> None:
    data = _data()
    _, t1 = splits.per_user_holdout(data, 0.1, np.random.default_rng(3), min_test=3)
    _, t2 = splits.per_user_holdout(data, 0.1, np.random.default_rng(3), min_test=3)
    np.testing.assert_array_equal(_keys(t1), _keys(t2))
    counts = np.diff(data.user_ptr)
    n_test = np.bincount(t1.user, minlength=data.n_users)
    assert (n_test[counts >= 4] == 3).all()
    assert n_test[counts == 2].tolist() == [1]  # capped at count - 1


def test_temporal_leave_last_takes_the_latest() -> None:
    data = _data()
    train, valid, test = splits.temporal_leave_last(data, n_valid=1, n_test=2)
    _assert_partition(data, train, valid, test)
    counts = np.diff(data.user_ptr)
    eligible = counts >= 4
    assert (np.bincount(test.user, minlength=data.n_users) == np.where(eligible, 2, 0)).all()
    assert (np.bincount(valid.user, minlength=data.n_users) == np.where(eligible, 1, 0)).all()
    for u in np.flatnonzero(eligible):
        ts = np.sort(data.timestamp[data.user == u])
        np.testing.assert_array_equal(np.sort(test.timestamp[test.user == u]), ts[-2:])
        assert valid.timestamp[valid.user == u].tolist() == [ts[-3]]
        assert train.timestamp[train.user == u].max() < ts[-3]


def test_temporal_ties_broken_by_movie_index() -> None:
    ratings = pd.DataFrame(
        {"userId": [1, 1, 1], "movieId": [30, 10, 20], "rating": [3, 4, 5], "timestamp": [5, 9, 9]}
    )
    movies = pd.DataFrame({"movieId": [10, 20, 30], "title": ["a", "b", "c"]})
    data = Dataset.build("tie", ratings, movies)
    _, valid, test = splits.temporal_leave_last(data, n_valid=1, n_test=1)
    assert data.movies.ids[test.movie].tolist() == [20]
    assert data.movies.ids[valid.movie].tolist() == [10]


def _tied(n_users: int = 30, per_user: int = 8) -> Dataset:
    """Every user rates ``per_user`` movies: the first two in their own seconds, the rest in one."""
    rng = np.random.default_rng(3)
    user = np.repeat(np.arange(n_users), per_user)
    movie = np.concatenate([rng.choice(50, per_user, replace=False) for _ in range(n_users)])
    second = np.tile(np.r_[100, 200, np.full(per_user - 2, 300)], n_users)
    ratings = pd.DataFrame({"userId": user, "movieId": movie, "rating": 4.0, "timestamp": second})
    return Dataset.build("tied", ratings, pd.DataFrame({"movieId": np.arange(50), "title": "m"}))


def test_shuffle_ties_draws_each_tie_in_a_random_order_and_keeps_the_rest() -> None:
    data = _tied()
    untied = splits.shuffle_ties(data, np.random.default_rng(0))

    def rows(d: Dataset) -> list[tuple[int, int, float]]:
        return sorted(zip(d.user.tolist(), d.movie.tolist(), d.rating.tolist(), strict=True))

    assert rows(untied) == rows(data) and untied.name == "tied:untied"
    for u in range(data.n_users):
        lo, hi = data.user_ptr[u], data.user_ptr[u + 1]
        t = untied.timestamp[lo:hi]
        assert (np.diff(t) > 0).all()  # strict: no tie is left
        np.testing.assert_array_equal(t // splits.TIE_STEPS, data.timestamp[lo:hi])  # seconds kept
        np.testing.assert_array_equal(untied.movie[lo : lo + 2], data.movie[lo : lo + 2])  # untied rows stay
    # the files' order puts a tie's highest movie id last; drawn at random it is last ~1/6 of the time
    last_is_max = [
        untied.movie[untied.user_ptr[u + 1] - 1] == data.movie[data.user_ptr[u + 1] - 1] for u in range(30)
    ]
    assert sum(last_is_max) < 15
    again = splits.shuffle_ties(data, np.random.default_rng(0))
    np.testing.assert_array_equal(again.movie, untied.movie)  # the seed decides


def test_retimed_keeps_the_row_order_invariant() -> None:
    data = _tied()
    with pytest.raises(ValueError, match="sorted by"):
        data.retimed(np.arange(data.n_ratings)[::-1], data.timestamp[::-1])
    with pytest.raises(ValueError, match="shape"):
        data.retimed(np.arange(3), data.timestamp[:3])


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.5])
def test_bad_ratio_is_rejected(ratio: float) -> None:
    with pytest.raises(ValueError, match="test_ratio"):
        splits.random_holdout(_data(), ratio, np.random.default_rng(0))


def test_canonical_split_needs_the_files() -> None:
    with pytest.raises(DataError, match="canonical split"):
        splits.canonical(_data(), "u1")
