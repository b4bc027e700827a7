"""Evaluation metrics as pure, vectorised functions.

Two families, all free of state, globals and printing:

* **rating** metrics of predicted against true ratings: :func:`rmse`, :func:`mae`;
* **ranking** metrics per user, computed from a boolean *hits* matrix
  (:func:`hits_matrix`) that marks which ranked movies are relevant:
  :func:`hit_rate`, :func:`recall`, :func:`precision`, :func:`ndcg`, :func:`mrr`,
  and :func:`ranking_metrics` that computes them all at several cut-offs;
* :class:`ValidationMetric`: one of those at one cut-off as a single number, what models
  validate on (handed to ``fit``).

Beside them, as pure: **beyond-accuracy** metrics of the ranked lists themselves in
:mod:`movierec.evaluation.beyond_accuracy`, and **statistics** over per-user values
(:func:`~movierec.evaluation.statistics.bootstrap_ci`,
:func:`~movierec.evaluation.statistics.paired_comparison`) in :mod:`movierec.evaluation.statistics`.

Conventions
-----------
``ranked`` is always an int array of shape ``(n_users, K_max)`` holding movie
*indices* (not MovieLens ids), best first; ``-1`` is padding and means "no
item" (a list shorter than ``K_max``). ``relevant`` is a scipy CSR matrix of
shape ``(n_users, n_movies)`` whose *nonzero* entries mark the relevant movies
(explicit zeros are not relevant). Row ``u`` of both refers to the same user.

Per-user ranking metrics are ``NaN`` for users with no relevant movie: such
users carry no information about ranking quality, and the protocols drop them
(``np.nanmean``, and :func:`~movierec.evaluation.statistics.bootstrap_ci` /
:func:`~movierec.evaluation.statistics.paired_comparison` ignore NaN).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ValidationMetric",
    "count_relevant",
    "hit_rate",
    "hits_matrix",
    "mae",
    "mrr",
    "ndcg",
    "precision",
    "ranking_metrics",
    "recall",
    "rmse",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


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


def as_ranked(ranked: ArrayLike, n_movies: int | None = None) -> IntArray:
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


def check_k(k: int, k_max: int) -> int:
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
    r = as_ranked(arr, n_movies)
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
    k = check_k(k, h.shape[1])
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


_PER_USER = {"hr": hit_rate, "precision": precision, "mrr": mrr}


@dataclass(frozen=True)
class ValidationMetric:
    """One ranking metric at one cut-off, averaged over the rows with something relevant: what
    a model's early stopping and tuning read. Models never import it; it is handed to
    :meth:`~movierec.models.base.Recommender.fit` (``metric=``), NDCG@10 unless told otherwise.

    ``metric(ranked, relevant)``: ``ranked`` movie indices ``(n_rows, >= k)`` best first,
    ``relevant`` a CSR ``(n_rows, n_movies)``; ``NaN`` when no row has anything relevant.
    Lists shorter than ``k`` (a catalogue of fewer movies) are scored at their length.
    """

    #: ``"ndcg"``, ``"recall"``, ``"hr"``, ``"precision"`` or ``"mrr"``
    name: str = "ndcg"
    #: the cut-off
    k: int = 10

    def __post_init__(self) -> None:
        if self.name not in ("ndcg", "recall", *_PER_USER):
            raise ValueError(f"unknown validation metric {self.name!r}: ndcg, recall, hr, precision or mrr")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"the validation metric's cut-off must be an int >= 1, got {self.k!r}")

    @property
    def label(self) -> str:
        return f"{self.name}@{self.k}"

    def __call__(self, ranked: ArrayLike, relevant: Any) -> float:
        hits = hits_matrix(ranked, relevant)
        n_rel = count_relevant(relevant)
        # a catalogue smaller than k: its whole list (columns that are padding everywhere do not count)
        filled = int((np.asarray(ranked) >= 0).any(axis=0).sum()) if np.size(ranked) else hits.shape[1]
        k = max(1, min(self.k, hits.shape[1], filled))
        if self.name == "ndcg":
            values = ndcg(hits, n_rel, k)
        elif self.name == "recall":
            values = recall(hits, n_rel, k)
        else:
            values = _PER_USER[self.name](hits, k, n_relevant=n_rel)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
