"""Beyond-accuracy metrics of the ranked lists themselves, as pure, vectorised functions:
:func:`coverage`, :func:`novelty`, :func:`popularity_percentile`, :func:`intra_list_diversity`.

``ranked`` follows the conventions of :mod:`movierec.evaluation.metrics` (movie *indices*
``(n_users, K_max)``, best first, ``-1`` padding).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from movierec.evaluation.metrics import FloatArray, IntArray, as_ranked, check_k

__all__ = ["coverage", "intra_list_diversity", "novelty", "popularity_percentile"]


def _top_k(ranked: ArrayLike, k: int, n_movies: int) -> IntArray:
    r = as_ranked(ranked, n_movies)
    return r[:, : check_k(k, r.shape[1])]


def _as_popularity(item_popularity: ArrayLike) -> FloatArray:
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim != 1 or pop.size == 0:
        raise ValueError(f"item_popularity must have shape (n_movies,) with n_movies > 0, got {pop.shape}")
    if not np.isfinite(pop).all() or pop.min() < 0:
        raise ValueError("item_popularity must be finite and >= 0")
    return pop


def _mean_over_list(values: FloatArray, top: IntArray) -> FloatArray:
    """Per-row mean of ``values[top]`` over non-padding entries; NaN for empty rows."""
    valid = top >= 0
    gathered = np.where(valid, values[np.where(valid, top, 0)], 0.0)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, gathered.sum(axis=1) / n, np.nan)


def coverage(ranked: ArrayLike, n_movies: int, k: int) -> float:
    """Catalogue coverage: the fraction of movies that appear in any top-``k`` list.

    Parameters
    ----------
    ranked:
        Movie *indices*, best first, shape ``(n_users, K_max)`` int; ``-1`` is padding.
    n_movies:
        Catalogue size (> 0).
    k:
        Cut-off, ``1 <= k <= K_max``.

    Returns
    -------
    float
        In [0, 1].
    """
    if n_movies <= 0:
        raise ValueError(f"n_movies must be > 0, got {n_movies}")
    top = _top_k(ranked, k, n_movies)
    shown = np.zeros(n_movies, dtype=np.bool_)
    shown[top[top >= 0]] = True
    return float(shown.mean())


def novelty(ranked: ArrayLike, item_popularity: ArrayLike, n_users_train: int, k: int) -> FloatArray:
    """Mean self-information of the recommended movies, per user, in bits.

    A movie's self-information is ``-log2(p_i)`` with the add-one smoothed
    probability ``p_i = (pop_i + 1) / (n_users_train + 1)`` that a training user
    has interacted with it. Smoothing keeps movies nobody interacted with finite
    (``log2(n_users_train + 1)`` bits, the maximum) and a movie everybody
    interacted with at 0 bits. Higher means less popular, more novel.

    Parameters
    ----------
    ranked:
        Movie *indices*, best first, shape ``(n_users, K_max)`` int; ``-1`` is padding.
    item_popularity:
        Shape ``(n_movies,)``: number of distinct training users per movie,
        ``0 <= pop_i <= n_users_train``.
    n_users_train:
        Number of training users (> 0).
    k:
        Cut-off, ``1 <= k <= K_max``.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` float64 in ``[0, log2(n_users_train + 1)]``; NaN for
        users whose top-``k`` is all padding.
    """
    if n_users_train <= 0:
        raise ValueError(f"n_users_train must be > 0, got {n_users_train}")
    pop = _as_popularity(item_popularity)
    if pop.max() > n_users_train:
        raise ValueError(
            f"item_popularity holds {pop.max():g} > n_users_train={n_users_train}; "
            "it must count distinct training users per movie"
        )
    info = np.log2(n_users_train + 1.0) - np.log2(pop + 1.0)
    return _mean_over_list(info, _top_k(ranked, k, pop.size))


def popularity_percentile(ranked: ArrayLike, item_popularity: ArrayLike, k: int) -> FloatArray:
    """Mean popularity percentile of the recommended movies, per user.

    A movie's percentile is ``(rank - 1) / (n_movies - 1)`` where ``rank`` is its
    average (tie-shared) rank by ascending popularity: 0 for the least popular
    movie, 1 for the most popular, 0.5 when all movies tie (or there is only one).

    Parameters
    ----------
    ranked:
        Movie *indices*, best first, shape ``(n_users, K_max)`` int; ``-1`` is padding.
    item_popularity:
        Shape ``(n_movies,)`` float or int, any popularity measure >= 0 (only its order matters).
    k:
        Cut-off, ``1 <= k <= K_max``.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` float64 in [0, 1]; NaN for users whose top-``k`` is all padding.
    """
    pop = _as_popularity(item_popularity)
    n = pop.size
    pct = np.full(n, 0.5) if n == 1 else (np.asarray(rankdata(pop, method="average")) - 1.0) / (n - 1.0)
    return _mean_over_list(pct, _top_k(ranked, k, n))


def intra_list_diversity(ranked: ArrayLike, item_features: Any, k: int) -> FloatArray:
    """Mean pairwise cosine distance among the movies of each top-``k`` list.

    With ``u_i`` the L2-normalised feature row of movie ``i`` (a zero row stays
    zero and its cosine similarity to anything is taken as 0, distance 1) and
    ``S = sum_i u_i`` over the ``m`` movies of a list,
    ``sum_{i != j} u_i . u_j = ||S||^2 - sum_i ||u_i||^2``, hence over the
    ``m (m - 1)`` ordered pairs::

        ILD = (m (m - 1) - ||S||^2 + z) / (m (m - 1))

    where ``z`` is the number of movies with a nonzero feature row; with all rows
    nonzero this is ``(m^2 - ||S||^2) / (m (m - 1))``. One sparse product gives
    ``S`` for all users at once.

    Parameters
    ----------
    ranked:
        Movie *indices*, best first, shape ``(n_users, K_max)`` int; ``-1`` is padding.
    item_features:
        Shape ``(n_movies, n_features)``, scipy.sparse (CSR) or dense; e.g. binary genres or tags.
    k:
        Cut-off, ``1 <= k <= K_max``.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` float64; in [0, 1] for nonnegative features (in [0, 2]
        in general); NaN for lists with fewer than two movies.
    """
    feats = sp.csr_matrix(item_features, dtype=np.float64)
    n_movies = int(feats.shape[0])
    if n_movies == 0:
        raise ValueError("item_features has no rows")
    top = _top_k(ranked, k, n_movies)
    norms = np.sqrt(np.asarray(feats.multiply(feats).sum(axis=1)).ravel())
    nonzero = norms > 0
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=nonzero)
    unit = sp.diags(scale) @ feats
    valid = top >= 0
    n_users = top.shape[0]
    rows = np.broadcast_to(np.arange(n_users)[:, None], top.shape)[valid]
    lists = sp.csr_matrix(
        (np.ones(rows.size), (rows, top[valid])), shape=(n_users, n_movies)
    )  # duplicates, if any, are summed and count as repeated members
    s = lists @ unit
    s_sq = np.asarray(s.multiply(s).sum(axis=1)).ravel()
    m = valid.sum(axis=1).astype(np.float64)
    z = np.where(valid, nonzero[np.where(valid, top, 0)], False).sum(axis=1)
    pairs = m * (m - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ild = (pairs - s_sq + z) / pairs
    return np.where(m >= 2, np.clip(ild, 0.0, 2.0), np.nan)
