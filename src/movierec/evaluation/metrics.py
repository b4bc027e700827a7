"""Evaluation metrics as pure, vectorised functions.

Three families, all free of state, globals and printing:

* **rating** metrics of predicted against true ratings: :func:`rmse`, :func:`mae`;
* **ranking** metrics per user, computed from a boolean *hits* matrix
  (:func:`hits_matrix`) that marks which ranked movies are relevant:
  :func:`hit_rate`, :func:`recall`, :func:`precision`, :func:`ndcg`, :func:`mrr`,
  and :func:`ranking_metrics` that computes them all at several cut-offs;
* **beyond-accuracy** metrics of the ranked lists themselves:
  :func:`coverage`, :func:`novelty`, :func:`popularity_percentile`,
  :func:`intra_list_diversity`;
* **statistics** over per-user values: :func:`bootstrap_ci`, :func:`paired_comparison`.

Conventions
-----------
``ranked`` is always an int array of shape ``(n_users, K_max)`` holding movie
*indices* (not MovieLens ids), best first; ``-1`` is padding and means "no
item" (a list shorter than ``K_max``). ``relevant`` is a scipy CSR matrix of
shape ``(n_users, n_movies)`` whose *nonzero* entries mark the relevant movies
(explicit zeros are not relevant). Row ``u`` of both refers to the same user.

Per-user ranking metrics are ``NaN`` for users with no relevant movie: such
users carry no information about ranking quality, and the protocols drop them
(``np.nanmean``, and :func:`bootstrap_ci` / :func:`paired_comparison` ignore NaN).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

__all__ = [
    "bootstrap_ci",
    "count_relevant",
    "coverage",
    "hit_rate",
    "hits_matrix",
    "intra_list_diversity",
    "mae",
    "mrr",
    "ndcg",
    "novelty",
    "paired_comparison",
    "popularity_percentile",
    "precision",
    "ranking_metrics",
    "recall",
    "rmse",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

#: Upper bound on the elements of one temporary (resamples x values) block.
_BLOCK_ELEMENTS = 4_000_000


# --------------------------------------------------------------------- rating


def _paired_ratings(pred: ArrayLike, truth: ArrayLike) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred and truth must have the same shape, got {p.shape} and {t.shape}")
    if p.size == 0:
        raise ValueError("pred and truth are empty: no ratings to score")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError("pred and truth must be finite (found NaN or inf)")
    return p, t


def rmse(pred: ArrayLike, truth: ArrayLike) -> float:
    """Root mean squared error of predicted ratings.

    Parameters
    ----------
    pred, truth:
        Predicted and true ratings, float arrays of the same (any) shape, not empty.

    Returns
    -------
    float
        ``sqrt(mean((pred - truth) ** 2))``, in rating units.
    """
    p, t = _paired_ratings(pred, truth)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(pred: ArrayLike, truth: ArrayLike) -> float:
    """Mean absolute error of predicted ratings.

    Parameters
    ----------
    pred, truth:
        Predicted and true ratings, float arrays of the same (any) shape, not empty.

    Returns
    -------
    float
        ``mean(|pred - truth|)``, in rating units.
    """
    p, t = _paired_ratings(pred, truth)
    return float(np.mean(np.abs(p - t)))


# -------------------------------------------------------------------- ranking


def _as_ranked(ranked: ArrayLike, n_movies: int | None = None) -> IntArray:
    """Validate ``ranked`` (2-D ints, ``-1`` padding, indices < ``n_movies``) as int64."""
    arr = np.asarray(ranked)
    if arr.ndim != 2:
        raise ValueError(f"ranked must be 2-D (n_users, K_max), got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"ranked must hold integer movie indices, got dtype {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    if out.size:
        if out.min() < -1:
            raise ValueError(f"ranked holds {int(out.min())}; movie indices are >= 0 and -1 is padding")
        if n_movies is not None and out.max() >= n_movies:
            raise ValueError(
                f"ranked holds movie index {int(out.max())}, but there are only {n_movies} movies"
            )
    return out


def _check_k(k: int, k_max: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= k_max:
        raise ValueError(f"cut-off k={k} must lie in 1..{k_max} (the number of ranked columns)")
    return int(k)


def _relevant_keys(relevant: Any, n_users: int) -> tuple[IntArray, int]:
    """Sorted unique keys ``user * n_movies + movie`` of the nonzero entries, and ``n_movies``."""
    if not sp.issparse(relevant):
        raise TypeError(f"relevant must be a scipy.sparse matrix (CSR), got {type(relevant).__name__}")
    rel = relevant.tocsr()
    n_rows, n_movies = (int(s) for s in rel.shape)
    if n_rows != n_users:
        raise ValueError(f"relevant has {n_rows} rows but ranked has {n_users} users")
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(rel.indptr))
    keep = np.asarray(rel.data) != 0
    keys = rows[keep] * n_movies + np.asarray(rel.indices, dtype=np.int64)[keep]
    if keys.size > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        keys = np.unique(keys)  # unsorted indices or duplicate entries
    return keys, n_movies


def count_relevant(relevant: Any) -> IntArray:
    """Number of relevant movies per user.

    Parameters
    ----------
    relevant:
        scipy.sparse matrix, shape ``(n_users, n_movies)``; nonzero = relevant.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` int64 (explicit zeros and duplicate entries are not counted twice).
    """
    if not sp.issparse(relevant):
        raise TypeError(f"relevant must be a scipy.sparse matrix (CSR), got {type(relevant).__name__}")
    n_users = int(relevant.shape[0])
    keys, n_movies = _relevant_keys(relevant, n_users)
    if n_movies == 0:
        return np.zeros(n_users, dtype=np.int64)
    return np.bincount(keys // n_movies, minlength=n_users).astype(np.int64)


def hits_matrix(ranked: ArrayLike, relevant: Any) -> BoolArray:
    """Which ranked movies are relevant, for all users at once.

    Vectorised over users: each (user, movie) pair becomes the key
    ``user * n_movies + movie``; the keys of ``relevant`` are sorted (CSR order)
    and looked up with :func:`numpy.searchsorted`.

    Parameters
    ----------
    ranked:
        Movie *indices*, best first, shape ``(n_users, K_max)`` int; ``-1`` is padding.
        A row must not repeat a movie.
    relevant:
        scipy.sparse matrix (CSR preferred), shape ``(n_users, n_movies)``; nonzero = relevant.

    Returns
    -------
    np.ndarray
        Shape ``(n_users, K_max)`` bool; ``True`` where ``ranked[u, r]`` is relevant
        to user ``u`` (always ``False`` for padding).

    Raises
    ------
    ValueError
        Row counts differ, an index is out of range, or a row repeats a movie.
    """
    arr = np.asarray(ranked)
    if arr.ndim != 2:
        raise ValueError(f"ranked must be 2-D (n_users, K_max), got shape {arr.shape}")
    keys, n_movies = _relevant_keys(relevant, arr.shape[0])
    r = _as_ranked(arr, n_movies)
    n_users, k_max = r.shape
    if r.size == 0:
        return np.zeros((n_users, k_max), dtype=np.bool_)
    srt = np.sort(r, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        u, c = np.argwhere(dup)[0]
        raise ValueError(f"ranked row {int(u)} repeats movie index {int(srt[u, c + 1])}")
    valid = r >= 0
    if keys.size == 0:
        return np.zeros((n_users, k_max), dtype=np.bool_)
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_movies + r
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return valid & (keys[pos] == query)


def _as_hits(hits: ArrayLike, k: int) -> tuple[BoolArray, int]:
    h = np.asarray(hits)
    if h.ndim != 2:
        raise ValueError(f"hits must be 2-D (n_users, K_max), got shape {h.shape}")
    if h.dtype != np.bool_:
        if h.size and not np.isin(h, (0, 1)).all():
            raise ValueError("hits must be boolean (or 0/1)")
        h = h.astype(np.bool_)
    k = _check_k(k, h.shape[1])
    return h[:, :k], k


def _as_counts(n_relevant: ArrayLike, top: BoolArray) -> IntArray:
    n = np.asarray(n_relevant)
    if n.shape != (top.shape[0],):
        raise ValueError(f"n_relevant must have shape ({top.shape[0]},), got {n.shape}")
    if n.size and (n.dtype.kind not in "iu" and not np.all(n == np.round(n))):
        raise ValueError("n_relevant must hold integer counts")
    c = n.astype(np.int64)
    if c.size and c.min() < 0:
        raise ValueError("n_relevant must be >= 0")
    over = top.sum(axis=1) > c
    if over.any():
        u = int(np.flatnonzero(over)[0])
        raise ValueError(
            f"user row {u} has {int(top[u].sum())} hits but only {int(c[u])} relevant movies: "
            "hits and n_relevant do not match"
        )
    return c


def _nan_where_empty(values: FloatArray, n_relevant: ArrayLike | None, top: BoolArray) -> FloatArray:
    if n_relevant is not None:
        c = _as_counts(n_relevant, top)
        values = np.where(c == 0, np.nan, values)
    return values


def hit_rate(hits: ArrayLike, k: int, *, n_relevant: ArrayLike | None = None) -> FloatArray:
    """Hit rate at ``k``: 1 if any of the top ``k`` is relevant, else 0.

    Parameters
    ----------
    hits:
        Shape ``(n_users, K_max)`` bool, from :func:`hits_matrix`.
    k:
        Cut-off, ``1 <= k <= K_max``.
    n_relevant:
        Optional, shape ``(n_users,)`` int: relevant movies per user; users with
        none get ``NaN``.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` float64 in {0, 1} (or NaN).
    """
    top, _ = _as_hits(hits, k)
    return _nan_where_empty(np.asarray(top.any(axis=1), dtype=np.float64), n_relevant, top)


def precision(hits: ArrayLike, k: int, *, n_relevant: ArrayLike | None = None) -> FloatArray:
    """Precision at ``k``: hits in the top ``k`` divided by ``k``.

    Padding (``-1``) counts as a miss, so a list shorter than ``k`` is penalised.

    Parameters
    ----------
    hits:
        Shape ``(n_users, K_max)`` bool, from :func:`hits_matrix`.
    k:
        Cut-off, ``1 <= k <= K_max``.
    n_relevant:
        Optional, shape ``(n_users,)`` int; users with no relevant movie get ``NaN``.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` float64 in [0, 1] (or NaN).
    """
    top, k = _as_hits(hits, k)
    return _nan_where_empty(top.sum(axis=1) / k, n_relevant, top)


def recall(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> FloatArray:
    """Recall at ``k``, normalised so that a perfect list scores 1.

    ``hits in top k / min(k, n_relevant)``; ``NaN`` where ``n_relevant == 0``.

    Parameters
    ----------
    hits:
        Shape ``(n_users, K_max)`` bool, from :func:`hits_matrix`.
    n_relevant:
        Shape ``(n_users,)`` int: relevant movies per user (:func:`count_relevant`).
    k:
        Cut-off, ``1 <= k <= K_max``.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` float64 in [0, 1] (or NaN).
    """
    top, k = _as_hits(hits, k)
    c = _as_counts(n_relevant, top)
    denom = np.minimum(c, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = top.sum(axis=1) / denom
    return np.where(c == 0, np.nan, out)


def _discounts(k: int) -> FloatArray:
    """``1 / log2(rank + 1)`` for ranks ``1..k``, shape ``(k,)``."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> FloatArray:
    """Normalised discounted cumulative gain at ``k`` with binary gains.

    ``DCG = sum_{r <= k} hit_r / log2(r + 1)`` and the ideal DCG puts
    ``min(k, n_relevant)`` hits at the top; ``NaN`` where ``n_relevant == 0``.

    Parameters
    ----------
    hits:
        Shape ``(n_users, K_max)`` bool, from :func:`hits_matrix`.
    n_relevant:
        Shape ``(n_users,)`` int: relevant movies per user (:func:`count_relevant`).
    k:
        Cut-off, ``1 <= k <= K_max``.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` float64 in [0, 1] (or NaN).
    """
    top, k = _as_hits(hits, k)
    c = _as_counts(n_relevant, top)
    disc = _discounts(k)
    dcg = top @ disc
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(c, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = dcg / ideal
    return np.where(c == 0, np.nan, out)


def mrr(hits: ArrayLike, k: int, *, n_relevant: ArrayLike | None = None) -> FloatArray:
    """Reciprocal rank of the first hit within the top ``k`` (0 if none).

    Parameters
    ----------
    hits:
        Shape ``(n_users, K_max)`` bool, from :func:`hits_matrix`.
    k:
        Cut-off, ``1 <= k <= K_max``.
    n_relevant:
        Optional, shape ``(n_users,)`` int; users with no relevant movie get ``NaN``.

    Returns
    -------
    np.ndarray
        Shape ``(n_users,)`` float64 in [0, 1] (or NaN); average it for MRR@k.
    """
    top, _ = _as_hits(hits, k)
    first = np.argmax(top, axis=1)
    out = np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _nan_where_empty(out, n_relevant, top)


def ranking_metrics(ranked: ArrayLike, relevant: Any, ks: Iterable[int] = (10, 20)) -> dict[str, FloatArray]:
    """All per-user ranking metrics at several cut-offs.

    Parameters
    ----------
    ranked:
        Movie *indices*, best first, shape ``(n_users, K_max)`` int; ``-1`` is padding.
        ``K_max`` must be at least ``max(ks)``.
    relevant:
        scipy.sparse matrix, shape ``(n_users, n_movies)``; nonzero = relevant.
    ks:
        Cut-offs.

    Returns
    -------
    dict[str, np.ndarray]
        Keys ``hr@k``, ``recall@k``, ``precision@k``, ``ndcg@k``, ``mrr@k`` for each
        ``k``; each value has shape ``(n_users,)`` float64, ``NaN`` for users with no
        relevant movie (protocols drop those with ``np.nanmean``).
    """
    hits = hits_matrix(ranked, relevant)
    n_rel = count_relevant(relevant)
    out: dict[str, FloatArray] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate(hits, k, n_relevant=n_rel)
        out[f"recall@{k}"] = recall(hits, n_rel, k)
        out[f"precision@{k}"] = precision(hits, k, n_relevant=n_rel)
        out[f"ndcg@{k}"] = ndcg(hits, n_rel, k)
        out[f"mrr@{k}"] = mrr(hits, k, n_relevant=n_rel)
    return out


# ----------------------------------------------------------- beyond accuracy


def _top_k(ranked: ArrayLike, k: int, n_movies: int) -> IntArray:
    r = _as_ranked(ranked, n_movies)
    return r[:, : _check_k(k, r.shape[1])]


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


# ----------------------------------------------------------------- statistics


def _finite_1d(values: ArrayLike, name: str) -> FloatArray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per user), got shape {v.shape}")
    return v


def _check_resampling(n_resamples: int, level: float = 0.95) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def _bootstrap_means(v: FloatArray, rng: np.random.Generator, n_resamples: int) -> FloatArray:
    """Means of ``n_resamples`` resamples (with replacement) of ``v``, in memory-bounded blocks."""
    n = v.size
    block = max(1, _BLOCK_ELEMENTS // n)
    parts = []
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        parts.append(v[idx].mean(axis=1))
    return np.concatenate(parts)


def bootstrap_ci(
    values: ArrayLike, rng: np.random.Generator, n_resamples: int = 1000, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval, ignoring NaN.

    Parameters
    ----------
    values:
        Shape ``(n,)`` float, e.g. a per-user metric; NaN entries (users without
        relevant movies) are dropped first.
    rng:
        Source of randomness for the resamples.
    n_resamples:
        Number of bootstrap resamples (>= 1).
    level:
        Confidence level in (0, 1).

    Returns
    -------
    tuple[float, float, float]
        ``(mean, low, high)``.

    Raises
    ------
    ValueError
        No non-NaN value is left.
    """
    _check_resampling(n_resamples, level)
    v = _finite_1d(values, "values")
    v = v[~np.isnan(v)]
    if v.size == 0:
        raise ValueError("bootstrap_ci: no non-NaN values to summarise")
    means = _bootstrap_means(v, rng, n_resamples)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(v.mean()), float(low), float(high)


def paired_comparison(
    a: ArrayLike, b: ArrayLike, rng: np.random.Generator, n_resamples: int = 1000
) -> dict[str, float]:
    """Compare two systems on the same users: mean difference, its CI and a p-value.

    Users where either value is NaN are dropped. The p-value is two-sided, from
    a paired sign-flip (permutation) test of ``mean(a - b) = 0``: exact over all
    ``2^n`` sign patterns when ``2^n <= n_resamples``, otherwise Monte Carlo with
    ``p = (1 + #{|mean(s d)| >= |mean(d)|}) / (n_resamples + 1)``.

    Parameters
    ----------
    a, b:
        Per-user metric values of systems A and B, shape ``(n_users,)`` float, same users in the same order.
    rng:
        Source of randomness for bootstrap and sign flips.
    n_resamples:
        Bootstrap resamples and random sign patterns (>= 1).

    Returns
    -------
    dict[str, float]
        ``n`` (users compared), ``mean_a``, ``mean_b``, ``mean_diff`` (A - B),
        ``ci_low`` and ``ci_high`` (95 % bootstrap CI of the mean difference) and ``p_value``.
    """
    _check_resampling(n_resamples)
    x = _finite_1d(a, "a")
    y = _finite_1d(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must cover the same users, got shapes {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size == 0:
        raise ValueError("paired_comparison: no user has non-NaN values in both a and b")
    d = x - y
    n = d.size
    mean_diff, low, high = bootstrap_ci(d, rng, n_resamples, 0.95)
    observed = abs(mean_diff)
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n < 63 and 2**n <= n_resamples:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        flipped = np.abs((signs * d).mean(axis=1))
        p = float(np.mean(flipped >= observed - tol))
    else:
        block = max(1, _BLOCK_ELEMENTS // n)
        extreme = 0
        for start in range(0, n_resamples, block):
            size = min(block, n_resamples - start)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
            extreme += int(np.sum(np.abs((signs * d).mean(axis=1)) >= observed - tol))
        p = (1.0 + extreme) / (n_resamples + 1.0)
    return {
        "n": float(n),
        "mean_a": float(x.mean()),
        "mean_b": float(y.mean()),
        "mean_diff": mean_diff,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
    }
