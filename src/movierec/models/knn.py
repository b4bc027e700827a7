"""Neighbourhood models: item-item and user-user cosine k-nearest neighbours.

Both work on the binary user x movie interaction matrix of the training data
(every rating counts as an interaction). Similarities are cosine, damped by
shrinkage ``sim * n_common / (n_common + shrink)`` so that pairs supported by
few common users count less, and only the ``k`` strongest neighbours are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.models.base import DISLIKE, NotFittedError, Query, Recommender

__all__ = ["ItemKNN", "ItemKNNConfig", "UserKNN", "UserKNNConfig", "query_matrix"]

#: movie columns per block when computing item-item similarities (bounds memory)
_BLOCK = 1024


def query_matrix(
    queries: Sequence[Query],
    n_movies: int,
    train: sp.csr_matrix | None,
    dislike_weight: float,
) -> sp.csr_matrix:
    """Weighted query vectors as a CSR matrix ``(len(queries), n_movies)`` float32.

    A query's liked (+1) and seen (0) movies get weight 1, disliked (-1) movies
    ``-dislike_weight``. A query with no movies but a known ``user`` index uses
    that user's row of the binary training matrix ``train`` (``(n_users, n_movies)``).

    Raises
    ------
    IndexError
        A query's user index is outside ``train``.
    """
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for i, q in enumerate(queries):  # over queries, vectorised within each
        if q.movies.size:
            c = q.movies
            v = np.where(q.feedback == DISLIKE, -dislike_weight, 1.0).astype(np.float32)
        elif q.user is not None and train is not None:
            if not 0 <= q.user < train.shape[0]:
                raise IndexError(f"user index {q.user} out of range 0..{train.shape[0] - 1}")
            lo, hi = train.indptr[q.user], train.indptr[q.user + 1]
            c = train.indices[lo:hi].astype(np.int64)
            v = np.ones(c.size, np.float32)
        else:
            continue
        rows.append(np.full(c.size, i, np.int64))
        cols.append(c)
        vals.append(v)
    if not rows:
        return sp.csr_matrix((len(queries), n_movies), dtype=np.float32)
    m = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(queries), n_movies),
        dtype=np.float32,
    )
    m.sum_duplicates()
    return m


def _binary(train: sp.csr_matrix) -> sp.csr_matrix:
    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    return x


def _top_k_sparse(dense: np.ndarray, k: int, row_offset: int, n_cols: int) -> sp.coo_matrix:
    """Keep the ``k`` largest positive entries of each row of ``dense`` ``(b, n_cols)``."""
    b = dense.shape[0]
    k = min(k, n_cols)
    part = np.argpartition(-dense, k - 1, axis=1)[:, :k] if k < n_cols else np.tile(np.arange(n_cols), (b, 1))
    vals = np.take_along_axis(dense, part, axis=1)
    rows = np.repeat(np.arange(b) + row_offset, k)
    keep = vals.ravel() > 0
    return sp.coo_matrix(
        (vals.ravel()[keep], (rows[keep], part.ravel()[keep])), shape=(row_offset + b, n_cols)
    )


def _nan_empty_rows(scores: np.ndarray, q: sp.csr_matrix) -> np.ndarray:
    """Rows whose query vector is empty cannot be scored: NaN (the ranking falls back)."""
    empty = np.diff(q.indptr) == 0
    if empty.any():
        scores[empty] = np.nan
    return scores


def _csr_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_data": m.data.astype(np.float32),
        f"{prefix}_indices": m.indices.astype(np.int64),
        f"{prefix}_indptr": m.indptr.astype(np.int64),
        f"{prefix}_shape": np.asarray(m.shape, np.int64),
    }


def _csr_from_state(prefix: str, state: dict[str, np.ndarray]) -> sp.csr_matrix:
    shape = tuple(int(x) for x in state[f"{prefix}_shape"])
    return sp.csr_matrix(
        (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]), shape=shape
    )


# ------------------------------------------------------------------ item kNN


@dataclass
class ItemKNNConfig:
    """Settings of :class:`ItemKNN`."""

    #: neighbours kept per movie (the strongest similarities)
    k: int = 100
    #: shrinkage: similarity is multiplied by ``n_common / (n_common + shrink)``
    shrink: float = 10.0
    #: weight of a disliked movie in a query (its neighbours' scores are reduced)
    dislike_weight: float = 1.0


class ItemKNN(Recommender):
    """Item-item cosine kNN: a movie scores the summed similarity to the query's movies.

    ``sim`` is a CSR matrix ``(n_movies, n_movies)``; row ``i`` holds movie
    ``i``'s ``k`` nearest neighbours. The score of movie ``j`` for query vector
    ``x`` is ``(x @ sim)[j]``.
    """

    name = "itemknn"
    Config = ItemKNNConfig

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        cfg = self.config
        if cfg.k < 1 or cfg.shrink < 0:
            raise ValueError(f"ItemKNN needs k >= 1 and shrink >= 0, got k={cfg.k}, shrink={cfg.shrink}")
        x = _binary(data.interactions())
        n = x.shape[1]
        counts = np.asarray(x.sum(axis=0)).ravel()
        norm = np.sqrt(counts)
        inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
        parts = []
        xtt = sp.csr_matrix(x.T)
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            common = (xtt[start:stop] @ x).toarray()  # (b, n) co-occurrence counts
            sim = common * inv[start:stop, None] * inv[None, :]
            if cfg.shrink:
                sim *= common / (common + cfg.shrink + 1e-12)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
            parts.append(_top_k_sparse(sim.astype(np.float32), cfg.k, start, n))
        rows = np.concatenate([p.row for p in parts]) if parts else np.zeros(0, np.int64)
        cols = np.concatenate([p.col for p in parts]) if parts else np.zeros(0, np.int64)
        vals = np.concatenate([p.data for p in parts]) if parts else np.zeros(0, np.float32)
        self._sim = sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)
        self._sim.sum_duplicates()
        self._sim.sort_indices()

    def _require(self) -> sp.csr_matrix:
        self._check_fitted()
        sim = getattr(self, "_sim", None)
        if sim is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return sim

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        sim = self._require()
        q = query_matrix(queries, self.n_movies, self._train, self.config.dislike_weight)
        scores = np.asarray((q @ sim).toarray(), np.float32)
        return _nan_empty_rows(scores, q)

    def similar(self, movie: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` movies most similar to movie *index* ``movie``.

        Returns
        -------
        indices:
            Movie indices ``(<= n,)`` int64, most similar first (ties by index).
        scores:
            Their similarities ``(<= n,)`` float32; only neighbours with positive similarity.
        """
        sim = self._require()
        if not 0 <= movie < self.n_movies:
            raise IndexError(f"movie index {movie} out of range 0..{self.n_movies - 1}")
        lo, hi = sim.indptr[movie], sim.indptr[movie + 1]
        idx = sim.indices[lo:hi].astype(np.int64)
        val = sim.data[lo:hi].astype(np.float32)
        order = np.lexsort((idx, -val))[:n]
        return idx[order], val[order]

    def explain(self, query: Query, movies: np.ndarray) -> list[str | None]:
        """Name the liked query movie (by index) that contributes most to each recommendation."""
        sim = self._require()
        liked = query.movies[query.feedback != DISLIKE]
        if liked.size == 0:
            return [None] * len(movies)
        block = sim[liked][:, np.asarray(movies, np.int64)].toarray()  # (n_liked, n_rec)
        best = block.argmax(axis=0)
        return [
            f"similar to movie index {int(liked[b])}" if block[b, j] > 0 else None for j, b in enumerate(best)
        ]

    def state(self) -> dict[str, np.ndarray]:
        return _csr_state("sim", self._require())

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._sim = _csr_from_state("sim", state)


# ------------------------------------------------------------------ user kNN


@dataclass
class UserKNNConfig:
    """Settings of :class:`UserKNN`."""

    #: neighbours (most similar training users) used per query
    k: int = 50
    #: shrinkage: similarity is multiplied by ``n_common / (n_common + shrink)``
    shrink: float = 10.0
    #: weight of a disliked movie in the query vector (users who hold it look less similar)
    dislike_weight: float = 1.0


class UserKNN(Recommender):
    """User-user cosine kNN over the binary training matrix.

    For any query (a known user's history or a new session) the cosine
    similarity to every training user is computed on the fly; the ``k`` most
    similar users (never the query's own user) vote for their movies with
    their similarity.
    """

    name = "userknn"
    Config = UserKNNConfig

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        cfg = self.config
        if cfg.k < 1 or cfg.shrink < 0:
            raise ValueError(f"UserKNN needs k >= 1 and shrink >= 0, got k={cfg.k}, shrink={cfg.shrink}")
        self._x = _binary(data.interactions())
        self._prepare()

    def _prepare(self) -> None:
        x = self._x
        counts = np.diff(x.indptr).astype(np.float64)
        self._inv_norm = np.divide(1.0, np.sqrt(counts), out=np.zeros_like(counts), where=counts > 0)
        self._xt = sp.csr_matrix(x.T)

    def _require(self) -> sp.csr_matrix:
        self._check_fitted()
        x = getattr(self, "_x", None)
        if x is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return x

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        x = self._require()
        cfg = self.config
        q = query_matrix(queries, self.n_movies, x, cfg.dislike_weight)
        dot = (q @ self._xt).toarray()  # (B, n_users)
        qb = q.copy()
        qb.data = np.ones_like(qb.data)
        common = (qb @ self._xt).toarray()
        q_norm = np.sqrt(np.asarray(q.multiply(q).sum(axis=1)).ravel())
        q_inv = np.divide(1.0, q_norm, out=np.zeros_like(q_norm), where=q_norm > 0)
        sim = dot * q_inv[:, None] * self._inv_norm[None, :]
        if cfg.shrink:
            sim *= common / (common + cfg.shrink + 1e-12)
        own = [(i, qq.user) for i, qq in enumerate(queries) if qq.user is not None]
        if own:
            r, c = np.asarray(own, np.int64).T
            ok = c < sim.shape[1]
            sim[r[ok], c[ok]] = 0.0
        w = sp.csr_matrix(_top_k_sparse(sim.astype(np.float32), cfg.k, 0, sim.shape[1]))
        scores = np.asarray((w @ x).toarray(), np.float32)
        return _nan_empty_rows(scores, q)

    def state(self) -> dict[str, np.ndarray]:
        return _csr_state("x", self._require())

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._x = _csr_from_state("x", state)
        self._prepare()
        self._train = self._x
