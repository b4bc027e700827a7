"""Hybrid of a collaborative model and the content model, weighted per movie.

Both score sets are normalised per query (z-score over the finite scores, or
rank percentiles), then mixed per movie with the collaborative weight
``w = n / (n + k)``, ``n`` the movie's number of training ratings: content
decides for rarely rated movies (and alone for movies nobody rated, the cold
start), the collaborative model for well-known ones. ``k`` is fixed or chosen
on validation data.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from movierec.content.embeddings import Encoder
from movierec.data.dataset import Dataset
from movierec.models.base import CannotScoreError, NotFittedError, Query, Recommender
from movierec.models.configs import config_from_dict
from movierec.models.content import ContentConfig, ContentRecommender

log = logging.getLogger(__name__)

__all__ = ["Hybrid", "HybridConfig", "normalise_scores"]

#: candidate values of ``k`` tried when tuning on validation data
K_GRID = (1.0, 5.0, 20.0, 100.0, 500.0, 1e9)
#: validation users sampled when tuning ``k``
TUNE_USERS = 500


@dataclass
class HybridConfig:
    """Settings of :class:`Hybrid`."""

    #: registered name of the collaborative model; ``"itemknn"`` falls back to ``"pop"``
    #: when not available in this install (the name actually used is stored after fit)
    collab: str = "itemknn"
    #: config fields of the collaborative model (filled with all its fields after fit)
    collab_config: dict[str, Any] = field(default_factory=dict)
    #: config fields of the :class:`~movierec.models.content.ContentRecommender`
    content_config: dict[str, Any] = field(default_factory=dict)
    #: collaborative weight per movie is ``n / (n + k)``, ``n`` its training ratings
    k: float = 20.0
    #: when fit gets validation data, choose ``k`` from :data:`K_GRID` by the validation metric (NDCG@10 unless ``fit`` is told otherwise)
    tune_k: bool = True
    #: per-query score normalisation before mixing: ``"zscore"`` or ``"rank"``
    normalise: str = "zscore"


def normalise_scores(scores: np.ndarray, how: str = "zscore") -> np.ndarray:
    """Per-row normalised scores, float32 ``(B, n)``; NaN stays NaN.

    ``"zscore"``: (s - mean) / std over the row's finite entries (0 if the row is
    constant). ``"rank"``: rank percentile in [0, 1] among the finite entries
    (ties get their mean rank).
    """
    s = np.asarray(scores, np.float64)
    finite = np.isfinite(s)
    out = np.full(s.shape, np.nan, np.float64)
    if how == "zscore":
        n = finite.sum(axis=1, keepdims=True)
        x = np.where(finite, s, 0.0)
        mean = x.sum(axis=1, keepdims=True) / np.maximum(n, 1)
        var = (np.where(finite, s - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / np.maximum(n, 1)
        std = np.sqrt(var)
        z = np.where(std > 1e-12, (s - mean) / np.where(std > 1e-12, std, 1.0), 0.0)
        out = np.where(finite, z, np.nan)
    elif how == "rank":
        from scipy.stats import rankdata

        x = np.where(finite, s, -np.inf)
        ranks = rankdata(x, axis=1)  # -inf (non-finite) rank lowest
        n_bad = (~finite).sum(axis=1, keepdims=True)
        n_ok = finite.sum(axis=1, keepdims=True)
        pct = (ranks - n_bad - 1) / np.maximum(n_ok - 1, 1)
        out = np.where(finite, pct, np.nan)
    else:
        raise ValueError(f"normalise must be 'zscore' or 'rank', got {how!r}")
    return out.astype(np.float32)


class Hybrid(Recommender):
    """Collaborative scores for well-known movies, content scores for the rest.

    Parameters
    ----------
    config:
        A :class:`HybridConfig`; ``overrides`` replace its fields.
    encoder:
        Text encoder handed to the content part (see :class:`ContentRecommender`).
    """

    name = "hybrid"
    Config = HybridConfig
    supports_tags = True

    def __init__(
        self, config: HybridConfig | None = None, *, encoder: Encoder | None = None, **overrides: Any
    ) -> None:
        super().__init__(config, **overrides)
        self._encoder = encoder
        self.collab: Recommender | None = None
        self.content: ContentRecommender | None = None
        self.rating_count: np.ndarray | None = None

    # ---------------------------------------------------------------- parts
    def _collab_class(self) -> type[Recommender]:
        from movierec.models.registry import UnknownModelError, model_class

        name = self.config.collab
        if name in ("hybrid", "content"):
            raise ValueError(f"HybridConfig.collab must be a collaborative model, got {name!r}")
        try:
            return model_class(name)
        except (UnknownModelError, ImportError):
            if name != "itemknn":
                raise
            log.warning("hybrid: itemknn is not available; using popularity as the collaborative part")
            self.config = dataclasses.replace(self.config, collab="pop", collab_config={})
            return model_class("pop")

    def _make_parts(self) -> tuple[Recommender, ContentRecommender]:
        cls = self._collab_class()
        # through the settings machinery: nested sub-configs (train, push, prior) and flat names
        # saved before the nesting both come back as dataclasses, on the model's own defaults
        collab = cls(**self.config.collab_config)
        content = ContentRecommender(
            config_from_dict(ContentConfig, self.config.content_config), encoder=self._encoder
        )
        return collab, content

    def _parts(self) -> tuple[Recommender, ContentRecommender]:
        if self.collab is None or self.content is None or self.rating_count is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return self.collab, self.content

    @property
    def collab_weight(self) -> np.ndarray:
        """Weight of the collaborative score per movie, float32 ``(n_movies,)`` in [0, 1]."""
        self._parts()
        assert self.rating_count is not None
        n = self.rating_count.astype(np.float64)
        return (n / (n + max(self.config.k, 1e-12))).astype(np.float32)

    # ---------------------------------------------------------------- fitting
    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        collab, content = self._make_parts()
        collab.fit(data, rng, valid=valid, metric=self.valid_metric)
        content.fit(data, rng, valid=valid, metric=self.valid_metric)
        self.collab, self.content = collab, content
        self.rating_count = np.asarray(data.movie_popularity, np.int64)
        self.config = dataclasses.replace(
            self.config,
            collab_config=dataclasses.asdict(collab.config),
            content_config=dataclasses.asdict(content.config),
        )
        if valid is not None and self.config.tune_k and valid.n_ratings:
            self._tune_k(data, valid, rng)

    def _tune_k(self, train: Dataset, valid: Dataset, rng: np.random.Generator) -> None:
        from movierec.topn import top_n

        collab, content = self._parts()
        users = np.unique(valid.user).astype(np.int64)
        if users.size > TUNE_USERS:
            users = np.sort(rng.choice(users, TUNE_USERS, replace=False))
        zc = normalise_scores(collab.score_users(users), self.config.normalise)
        zt = normalise_scores(content.score_users(users), self.config.normalise)
        exclude = train.interactions()[users]
        relevant = valid.interactions()[users]
        best_k, best = self.config.k, -np.inf
        metric = self.valid_metric
        for k in K_GRID:
            self.config = dataclasses.replace(self.config, k=k)
            ranked, _ = top_n(self._mix(zc, zt), metric.k, exclude=exclude)
            value = metric(ranked, relevant)
            log.info("hybrid: k=%g validation %s %.4f", k, metric.label, value)
            if value > best:
                best_k, best = k, value
        self.config = dataclasses.replace(self.config, k=best_k)
        self.fit_info.extra["hybrid_k"] = best_k
        self.fit_info.extra[f"hybrid_valid_{metric.label}"] = best

    # ---------------------------------------------------------------- scoring
    def _mix(self, zc: np.ndarray, zt: np.ndarray) -> np.ndarray:
        w = self.collab_weight[None, :]
        mixed = w * zc + (1.0 - w) * zt
        mixed = np.where(np.isnan(zc), zt, np.where(np.isnan(zt), zc, mixed))
        return mixed.astype(np.float32)

    def combine(self, collab_scores: np.ndarray, content_scores: np.ndarray) -> np.ndarray:
        """Mix raw ``(B, n_movies)`` score sets of the two parts; float32 ``(B, n_movies)``.

        Where one part has no finite score (NaN) the other decides alone; a row
        NaN in both stays NaN.
        """
        how = self.config.normalise
        return self._mix(normalise_scores(collab_scores, how), normalise_scores(content_scores, how))

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        collab, content = self._parts()
        try:
            c = collab.score(queries)
        except CannotScoreError:
            c = np.full((len(queries), self.n_movies), np.nan, np.float32)
        return self.combine(c, content.score(queries))

    def score_users(self, users: np.ndarray) -> np.ndarray:
        collab, content = self._parts()
        return self.combine(collab.score_users(users), content.score_users(users))

    def score_tags(self, queries: Sequence[Query]) -> np.ndarray:
        return self._parts()[1].score_tags(queries)

    def similar(self, movie: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Content neighbours of movie *index* ``movie`` (see :meth:`ContentRecommender.similar`)."""
        return self._parts()[1].similar(movie, n)

    def nearest_tags(self, text: str, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Known tags nearest to ``text`` (see :meth:`ContentRecommender.nearest_tags`)."""
        return self._parts()[1].nearest_tags(text, n)

    def explain(self, query: Query, movies: np.ndarray) -> list[str | None]:
        collab, content = self._parts()
        a, b = collab.explain(query, movies), content.explain(query, movies)
        return [x if x is not None else y for x, y in zip(a, b, strict=True)]

    # ------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        collab, content = self._parts()
        assert self.rating_count is not None
        out = {"rating_count": self.rating_count}
        out.update({f"collab.{k}": v for k, v in collab.state().items()})
        out.update({f"content.{k}": v for k, v in content.state().items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        collab, content = self._make_parts()
        for part, prefix in ((collab, "collab."), (content, "content.")):
            part.users, part.movies, part.tags, part.scale = self.users, self.movies, self.tags, self.scale
            part.load_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        self.collab, self.content = collab, content
        self.rating_count = np.asarray(state["rating_count"], np.int64)
