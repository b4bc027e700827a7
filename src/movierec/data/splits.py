"""Train / validation / test splits of a :class:`~movierec.data.dataset.Dataset`.

Every split is a set of boolean row masks turned into new data sets with
:meth:`Dataset.subset`, so vocabularies (and hence indices) are shared by all
parts. Random splits take an explicit :class:`numpy.random.Generator`; all
work is vectorised over rating rows.
"""

from __future__ import annotations

import numpy as np

from movierec.data.dataset import Dataset

__all__ = [
    "canonical",
    "per_user_holdout",
    "random_holdout",
    "shuffle_ties",
    "temporal_leave_last",
    "user_holdout",
]

#: :func:`shuffle_ties` spreads one second over this many steps
TIE_STEPS = 1_000_000


def _check_ratio(test_ratio: float) -> None:
    if not 0.0 < test_ratio < 1.0:
        raise ValueError(f"test_ratio must lie strictly between 0 and 1, got {test_ratio}")


def random_holdout(data: Dataset, test_ratio: float, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    """Hold out a random ``test_ratio`` of all rating rows.

    Parameters
    ----------
    data:
        The data set to split.
    test_ratio:
        Fraction of rows in the test part, in (0, 1); ``round(test_ratio * n)`` rows.
    rng:
        Source of randomness.

    Returns
    -------
    (train, test):
        Disjoint data sets covering all rows, with ``data``'s vocabularies.
    """
    _check_ratio(test_ratio)
    n = data.n_ratings
    test = np.zeros(n, dtype=bool)
    test[rng.permutation(n)[: round(test_ratio * n)]] = True
    return data.subset(~test, f"{data.name}:train"), data.subset(test, f"{data.name}:test")


def user_holdout(
    data: Dataset, valid_ratio: float, test_ratio: float, rng: np.random.Generator
) -> tuple[Dataset, Dataset, Dataset]:
    """Split the *users* into train / validation / test ("strong generalisation").

    Every rating row goes with its user, so a validation or test user is never
    seen in training; :meth:`Dataset.subset` also drops the held-out users' tag
    applications from the training part. Only users with ratings are split;
    ``round(ratio * n_users)`` of them go to each held-out part.

    Parameters
    ----------
    data:
        The data set to split.
    valid_ratio, test_ratio:
        Shares of the users in the validation part (``>= 0``) and the test part (``> 0``);
        together below 1.
    rng:
        Source of randomness (the permutation of users).

    Returns
    -------
    (train, valid, test):
        Disjoint data sets covering all rows; ``valid`` is empty when ``valid_ratio == 0``.
    """
    _check_ratio(test_ratio)
    if not 0.0 <= valid_ratio < 1.0 - test_ratio:
        raise ValueError(
            f"valid_ratio must lie in [0, 1 - test_ratio), got valid={valid_ratio}, test={test_ratio}"
        )
    users = np.flatnonzero(np.diff(data.user_ptr) > 0)
    perm = rng.permutation(users)
    n_test, n_valid = round(test_ratio * users.size), round(valid_ratio * users.size)
    part = np.zeros(data.n_users, np.int8)  # 0 train, 1 valid, 2 test
    part[perm[:n_test]] = 2
    part[perm[n_test : n_test + n_valid]] = 1
    row = part[data.user]
    return (
        data.subset(row == 0, f"{data.name}:train"),
        data.subset(row == 1, f"{data.name}:valid"),
        data.subset(row == 2, f"{data.name}:test"),
    )


def _rank_within_user(data: Dataset, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its 0-based rank by ``key`` among its user's rows, and the user's row count.

    ``key`` has shape ``(n_ratings,)``; both outputs have shape ``(n_ratings,)`` int64.
    """
    counts = np.diff(data.user_ptr)
    order = np.lexsort((key, data.user))
    rank = np.empty(data.n_ratings, np.int64)
    rank[order] = np.arange(data.n_ratings) - data.user_ptr[data.user[order]]
    return rank, counts[data.user]


def per_user_holdout(
    data: Dataset, test_ratio: float, rng: np.random.Generator, min_test: int = 1
) -> tuple[Dataset, Dataset]:
    """Hold out a random ``test_ratio`` of each user's ratings.

    A user with ``c >= 2`` ratings gets ``clip(round(test_ratio * c), min_test, c - 1)``
    test rows (at least ``min_test``, always at least one training row); a user with
    a single rating keeps it in training.

    Parameters
    ----------
    data:
        The data set to split.
    test_ratio:
        Fraction of each user's rows held out, in (0, 1).
    rng:
        Source of randomness.
    min_test:
        Minimum number of test rows per user with at least two ratings (>= 1).

    Returns
    -------
    (train, test):
        Disjoint data sets covering all rows.
    """
    _check_ratio(test_ratio)
    if min_test < 1:
        raise ValueError(f"min_test must be >= 1, got {min_test}")
    rank, count = _rank_within_user(data, rng.random(data.n_ratings))
    n_test = np.clip(np.round(test_ratio * count), min_test, count - 1)
    n_test = np.where(count >= 2, n_test, 0)
    test = rank < n_test
    return data.subset(~test, f"{data.name}:train"), data.subset(test, f"{data.name}:test")


def temporal_leave_last(data: Dataset, n_valid: int = 1, n_test: int = 1) -> tuple[Dataset, Dataset, Dataset]:
    """Per user, the latest ``n_test`` ratings are test and the ``n_valid`` before them validation.

    Rows are ordered per user by (timestamp, movie index), the data set's own
    order. A user with fewer than ``n_valid + n_test + 1`` ratings keeps all of
    them in training (so every evaluated user has some history).

    Parameters
    ----------
    data:
        The data set to split.
    n_valid:
        Validation rows per user (>= 0).
    n_test:
        Test rows per user (>= 1).

    Returns
    -------
    (train, valid, test):
        Disjoint data sets covering all rows; ``valid`` is empty when ``n_valid == 0``.
    """
    if n_test < 1 or n_valid < 0:
        raise ValueError(f"need n_test >= 1 and n_valid >= 0, got n_test={n_test}, n_valid={n_valid}")
    # data is already sorted this way; an explicit (timestamp, movie) key keeps this true for any input
    rank, count = _rank_within_user(data, np.lexsort((data.movie, data.timestamp)).argsort())
    from_end = count - 1 - rank
    eligible = count >= n_valid + n_test + 1
    test = eligible & (from_end < n_test)
    valid = eligible & (from_end >= n_test) & (from_end < n_test + n_valid)
    train = ~(test | valid)
    return (
        data.subset(train, f"{data.name}:train"),
        data.subset(valid, f"{data.name}:valid"),
        data.subset(test, f"{data.name}:test"),
    )


def shuffle_ties(data: Dataset, rng: np.random.Generator) -> Dataset:
    """The same ratings, each user's ratings of one same second put in a random order.

    MovieLens times are whole seconds, and a user often rates several movies in one
    (in ml-latest-small about 15% of the users' last rating shares its second with
    the one before). Sorted as the files are, ties run in movie-id order, so "the
    next movie" of a tie is one with a higher id: an order a sequence model can learn
    and that no visitor produces. Here each tie is drawn in a random order instead and
    made strict: timestamps become ``second * TIE_STEPS + place in the tie`` (so they
    are no longer seconds; nothing else in the data changes).
    """
    n = data.n_ratings
    order = np.lexsort((rng.random(n), data.timestamp, data.user))
    user, second = data.user[order], data.timestamp[order].astype(np.int64)
    starts = np.ones(n, bool)
    starts[1:] = (user[1:] != user[:-1]) | (second[1:] != second[:-1])
    place = np.arange(n) - np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    if n and int(place.max()) >= TIE_STEPS:
        raise ValueError(f"a user rated more than {TIE_STEPS} movies in one second; cannot untie")
    return data.retimed(order, second * TIE_STEPS + place, f"{data.name}:untied")


def canonical(data: Dataset, name: str) -> tuple[Dataset, Dataset]:
    """ml-100k's canonical split ``name`` (``u1``..``u5``, ``ua``, ``ub``) as (train, test).

    Raises :class:`~movierec.data.validation.DataError` if the data set has no such split files.
    """
    from movierec.data.movielens import canonical_split

    train, test = canonical_split(data, name)
    return data.subset(train, f"{data.name}:{name}.base"), data.subset(test, f"{data.name}:{name}.test")
