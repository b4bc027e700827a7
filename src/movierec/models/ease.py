"""EASE: a closed-form linear item-item autoencoder (Steck, 2019).

``B = I - P / diag(P)`` with ``P = (X^T X + lambda I)^-1`` and a zero diagonal,
computed over the movies that have at least one training interaction; the
score of a query vector ``x`` is ``x @ B``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.models.base import NotFittedError, Query, Recommender
from movierec.models.knn import query_matrix

__all__ = ["EASE", "EASEConfig"]


@dataclass
class EASEConfig:
    """Settings of :class:`EASE`."""

    #: L2 regularisation ``lambda`` added to the diagonal of the Gram matrix
    l2: float = 200.0
    #: weight of a disliked movie in a query (its weights are subtracted)
    dislike_weight: float = 1.0


class EASE(Recommender):
    """Closed-form item-item weights; movies without training interactions score NaN.

    Memory: dense ``(m, m)`` matrices over the ``m`` movies with interactions
    (float32 ~380 MB each for ml-latest-small); float32 ``B`` is stored. With
    fewer users than movies the fit costs ``O(m^2 n_users)`` (Woodbury), else ``O(m^3)``.
    """

    name = "ease"
    Config = EASEConfig

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        if self.config.l2 <= 0:
            raise ValueError(f"EASEConfig.l2 must be positive, got {self.config.l2}")
        x = data.interactions()
        x.data[:] = 1.0
        active = np.flatnonzero(np.diff(x.tocsc().indptr) > 0).astype(np.int64)
        xa = x[:, active]
        self._active = active
        self._b = self._weights(sp.csr_matrix(xa, dtype=np.float64), self.config.l2)

    @staticmethod
    def _weights(xa: sp.csr_matrix, l2: float) -> np.ndarray:
        """``B`` ``(m, m)`` float32 for the binary matrix ``xa`` ``(n_users, m)``.

        With fewer users than movies, Woodbury's identity gives
        ``P = (I - X^T K X) / l2`` with the small ``K = (l2 I + X X^T)^-1``, so
        ``B_ij = M_ij / (1 - M_jj)`` with ``M = X^T K X``: ``O(m^2 n_users)``
        instead of the ``O(m^3)`` direct inverse.
        """
        n_users, m = xa.shape
        if n_users < m:
            small = np.asarray((xa @ xa.T).toarray(), np.float64)
            small[np.diag_indices_from(small)] += l2
            k = sla.cho_solve(sla.cho_factor(small, lower=True), xa.toarray())  # K X, (n_users, m)
            mm = np.asarray(xa.T.astype(np.float32) @ k.astype(np.float32), np.float32)  # (m, m)
            mm /= (1.0 - np.diag(mm)).copy()[None, :]
            mm[np.diag_indices_from(mm)] = 0.0
            return mm
        gram = np.asarray((xa.T @ xa).toarray(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += l2
        # in-place Cholesky inverse of the SPD Gram matrix
        c, _ = sla.cho_factor(gram, lower=True, overwrite_a=True, check_finite=False)
        del gram
        p, info = sla.lapack.dpotri(c, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: inverting the Gram matrix failed (LAPACK info {info})")
        p = np.tril(p)
        p += np.tril(p, -1).T  # dpotri fills the lower triangle only
        p /= -np.diag(p).copy()[None, :]
        p[np.diag_indices_from(p)] = 0.0
        return p.astype(np.float32)

    def _require(self) -> np.ndarray:
        self._check_fitted()
        b = getattr(self, "_b", None)
        if b is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return b

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        b = self._require()
        q = query_matrix(queries, self.n_movies, self._train, self.config.dislike_weight)
        qa = q[:, self._active]
        out = np.full((len(queries), self.n_movies), np.nan, np.float32)
        out[:, self._active] = np.asarray(qa @ b, np.float32)
        empty = np.diff(qa.indptr) == 0
        out[empty] = np.nan
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"b": self._require(), "active": self._active}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        b, active = state["b"].astype(np.float32), state["active"].astype(np.int64)
        if b.shape != (active.size, active.size):
            raise ValueError(f"EASE weights of shape {b.shape} do not fit {active.size} active movies")
        self._b, self._active = b, active
