"""Most-rated movies: the reference floor and the fallback for empty sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from movierec.data.dataset import Dataset
from movierec.models.base import Query, Recommender


@dataclass
class PopularityConfig:
    """Settings of :class:`Popularity`."""

    #: ``"count"`` ranks by number of ratings; ``"rating"`` by a damped mean rating
    #: (mean shrunk towards the global mean with ``damping`` pseudo-ratings).
    by: str = "count"
    #: pseudo-ratings of the global mean added to every movie when ``by="rating"``
    damping: float = 10.0


class Popularity(Recommender):
    """Scores every movie by its popularity in training, the same for every query."""

    name = "pop"
    Config = PopularityConfig

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        count = data.movie_popularity.astype(np.float64)
        if self.config.by == "count":
            mean = np.nan_to_num(data.movie_mean_rating, nan=0.0)
            scores = np.log1p(count) + 1e-3 * mean
        elif self.config.by == "rating":
            mu = float(data.rating.mean()) if data.n_ratings else 0.0
            sums = np.bincount(data.movie, weights=data.rating, minlength=data.n_movies)
            scores = (sums + self.config.damping * mu) / (count + self.config.damping)
        else:
            raise ValueError(f"PopularityConfig.by must be 'count' or 'rating', got {self.config.by!r}")
        self._scores = scores.astype(np.float32)

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        self._check_fitted()
        return np.tile(self._scores, (len(queries), 1))

    def score_users(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.tile(self._scores, (len(np.asarray(users)), 1))

    def state(self) -> dict[str, np.ndarray]:
        return {"scores": self._scores}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._scores = state["scores"].astype(np.float32)
