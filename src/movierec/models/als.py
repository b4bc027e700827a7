"""Implicit-feedback ALS (Hu, Koren & Volinsky, 2008) through the ``implicit`` library.

Every training rating is an interaction with confidence ``alpha``; missing
pairs have preference 0 and confidence 1. The ``implicit`` CPU solver does the
work; this class adapts it to the scoring contract: known users use their
learned factors, new sessions are folded in with ``recalculate_user`` (a
closed-form least-squares solve with the movie factors fixed), where a
disliked movie enters as preference 0 with confidence ``1 + alpha * dislike_weight``
(an unobserved movie has confidence 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from movierec.data.dataset import Dataset
from movierec.models.base import NotFittedError, Query, Recommender
from movierec.models.knn import query_matrix

__all__ = ["ALS", "ALSConfig"]


@dataclass
class ALSConfig:
    """Settings of :class:`ALS`."""

    #: latent factors per user and movie
    factors: int = 64
    #: ridge penalty on the factors (``implicit``'s ``regularization``)
    regularization: float = 0.01
    #: confidence of an observed interaction (``implicit``'s ``alpha``)
    alpha: float = 1.0
    #: alternating passes
    iterations: int = 15
    #: solver threads (0: all cores; keep it small on shared machines)
    threads: int = 2
    #: weight of a disliked movie in a session (confidence that it is *not* liked)
    dislike_weight: float = 1.0


def _implicit_model(cfg: ALSConfig, random_state: int | None) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit warns when BLAS may start its own threads
        return AlternatingLeastSquares(
            factors=cfg.factors,
            regularization=cfg.regularization,
            alpha=cfg.alpha,
            iterations=cfg.iterations,
            num_threads=cfg.threads,
            random_state=random_state,
        )


class ALS(Recommender):
    """Implicit ALS: score = user factors . movie factors.

    A query with movies is folded in from them; a query holding only a known
    ``user`` index uses that user's learned factors.
    """

    name = "als"
    Config = ALSConfig

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        from threadpoolctl import threadpool_limits

        cfg = self.config
        if cfg.factors < 1 or cfg.iterations < 1 or cfg.regularization < 0 or cfg.alpha <= 0:
            raise ValueError(f"invalid ALS settings: {cfg}")
        x = data.interactions()
        x.data[:] = 1.0
        model = _implicit_model(cfg, int(rng.integers(0, 2**31 - 1)))
        with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS threads would oversubscribe
            model.fit(x, show_progress=False)
        self._model = model
        self.fit_info.epochs = cfg.iterations

    def _require(self) -> Any:
        self._check_fitted()
        model = getattr(self, "_model", None)
        if model is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return model

    @property
    def user_factors(self) -> np.ndarray:
        """``(n_users, factors)`` float32."""
        return np.asarray(self._require().user_factors, np.float32)

    @property
    def item_factors(self) -> np.ndarray:
        """``(n_movies, factors)`` float32."""
        return np.asarray(self._require().item_factors, np.float32)

    def movie_embeddings(self) -> np.ndarray:
        """The movie factors, float32 ``(n_movies, factors)`` (a copy of :attr:`item_factors`)."""
        return np.array(self.item_factors, np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        u = np.asarray(users, np.int64)
        uf = self.user_factors
        if u.size and (u.min() < 0 or u.max() >= uf.shape[0]):
            raise IndexError(f"user index out of range 0..{uf.shape[0] - 1}")
        return np.asarray(uf[u] @ self.item_factors.T, np.float32)

    def fold_in(self, queries: Sequence[Query]) -> np.ndarray:
        """Factors ``(len(queries), factors)`` float32 of sessions from their movies."""
        model = self._require()
        cfg = self.config
        q = query_matrix(queries, self.n_movies, None, cfg.dislike_weight)
        # implicit scales values by alpha and reads a negative value v as preference 0 with
        # confidence |v|, of which 1 is the baseline every unobserved movie has already
        q.data[q.data < 0] = -(1.0 + cfg.alpha * cfg.dislike_weight) / cfg.alpha
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            f = model.recalculate_user(np.arange(len(queries)), q)
        return np.asarray(f, np.float32).reshape(len(queries), -1)

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        self._require()
        out = np.full((len(queries), self.n_movies), np.nan, np.float32)
        known = [i for i, q in enumerate(queries) if q.user is not None and q.movies.size == 0]
        if known:
            out[known] = self.score_users(np.asarray([queries[i].user for i in known], np.int64))
        sessions = [i for i, q in enumerate(queries) if q.movies.size]
        if sessions:
            f = self.fold_in([queries[i] for i in sessions])
            out[sessions] = f @ self.item_factors.T
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        model = _implicit_model(self.config, None)
        model.user_factors = np.ascontiguousarray(state["user_factors"], np.float32)
        model.item_factors = np.ascontiguousarray(state["item_factors"], np.float32)
        self._model = model
