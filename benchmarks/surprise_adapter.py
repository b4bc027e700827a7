"""Surprise's rating models behind movierec's ``Recommender`` contract, for the benchmarks.

Only what the ``rating`` protocol uses: ``fit`` and ``predict``. Needs the ``bench`` extra
(``pip install -e '.[bench]'``: ``scikit-surprise``). Surprise predicts pair by pair
(its own loop, in Cython); this adapter is a measuring stick, never served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from movierec.data.dataset import Dataset
from movierec.models.base import CannotScoreError, NotFittedError, Query, Recommender

#: name -> (Surprise class name, its keyword arguments); KNNBaseline as Surprise's docs
#: recommend it (pearson_baseline similarity, item-based)
ALGORITHMS: dict[str, tuple[str, dict[str, Any]]] = {
    "surprise-svd": ("SVD", {}),
    "surprise-svdpp": ("SVDpp", {"cache_ratings": True}),
    "surprise-knnbaseline": (
        "KNNBaseline",
        {"sim_options": {"name": "pearson_baseline", "user_based": False}, "verbose": False},
    ),
}


@dataclass
class SurpriseConfig:
    """Which Surprise algorithm (a key of :data:`ALGORITHMS`)."""

    algorithm: str = "surprise-svdpp"


class SurpriseRating(Recommender):
    """A Surprise algorithm fitted on the training rows, predicting the protocol's pairs."""

    name: ClassVar[str] = "surprise"
    Config = SurpriseConfig
    supports_ratings = True
    supports_sessions = False

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        import pandas as pd
        import surprise

        cls_name, kwargs = ALGORITHMS[self.config.algorithm]
        cls = getattr(surprise, cls_name)
        if cls_name != "KNNBaseline":
            kwargs = {**kwargs, "random_state": int(rng.integers(0, 2**31 - 1))}
        frame = pd.DataFrame({"u": data.user, "i": data.movie, "r": data.rating})
        reader = surprise.Reader(rating_scale=(data.scale.low, data.scale.high))
        trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
        self._algo = cls(**kwargs)
        self._algo.fit(trainset)

    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        algo = getattr(self, "_algo", None)
        if algo is None:
            raise NotFittedError("fit the Surprise model first")
        pairs = zip(np.asarray(users).tolist(), np.asarray(movies).tolist(), strict=True)
        return np.array([algo.predict(u, m, clip=True).est for u, m in pairs], np.float32)

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        raise CannotScoreError("the Surprise adapter only predicts ratings")

    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError("the Surprise adapter is not saved")

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError("the Surprise adapter is not saved")
