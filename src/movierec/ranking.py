"""Candidate selection and top-N: the only place that excludes what a query
already holds, applies filters and falls back to popularity.

For a large catalogue, :func:`recommend` can take its top N from an approximate
nearest-neighbour index instead of scoring every movie (:class:`Retrieval`, for
models that offer ``query_vectors`` / ``item_vectors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Protocol

import numpy as np

from movierec.data.dataset import Dataset
from movierec.models.base import Query, Recommender
from movierec.retrieval import MipsConfig, MipsIndex, candidates_then_rescore
from movierec.topn import top_n

__all__ = [
    "Catalog",
    "Filters",
    "Recommendations",
    "Retrieval",
    "ScoreRows",
    "recommend",
    "supports_retrieval",
]


@dataclass(frozen=True)
class Catalog:
    """Per-movie arrays that filters and fallbacks need, aligned with a movie vocabulary.

    Attributes
    ----------
    year:
        Release year per movie index, ``(n_movies,)`` int32, 0 if unknown.
    mean_rating:
        Mean rating, ``(n_movies,)`` float32, NaN if unrated.
    rating:
        The shrunk mean rating (:func:`movierec.data.ratings.shrunk_mean`), ``(n_movies,)``
        float32, NaN if unrated: what the minimum-rating filter and the page use.
    rating_count:
        Number of ratings, ``(n_movies,)`` int64.
    genres:
        Boolean membership ``(n_movies, n_genres)``.
    genre_names:
        Column names of ``genres``.
    """

    year: np.ndarray
    mean_rating: np.ndarray
    rating: np.ndarray
    rating_count: np.ndarray
    genres: np.ndarray
    genre_names: tuple[str, ...]

    @classmethod
    def from_dataset(cls, data: Dataset) -> Catalog:
        names = tuple(data.genre_names)
        col = {g: i for i, g in enumerate(names)}
        genres = np.zeros((data.n_movies, len(names)), dtype=bool)
        rows = [i for i, gs in enumerate(data.movie_info["genres"]) for _ in gs]
        cols = [col[g] for gs in data.movie_info["genres"] for g in gs]
        genres[rows, cols] = True
        return cls(
            year=data.movie_info["year"].to_numpy(np.int32),
            mean_rating=np.asarray(data.movie_mean_rating, np.float32),
            rating=np.asarray(data.movie_rating, np.float32),
            rating_count=np.asarray(data.movie_popularity, np.int64),
            genres=genres,
            genre_names=names,
        )

    @property
    def n_movies(self) -> int:
        return int(self.year.shape[0])

    @cached_property
    def popularity_scores(self) -> np.ndarray:
        """The fallback ranking: rating count, ties broken by mean rating; float32 ``(n_movies,)``.

        Computed once per catalogue (the arrays must not change afterwards)."""
        mean = np.nan_to_num(self.mean_rating, nan=0.0)
        return (np.log1p(self.rating_count) + 1e-3 * mean).astype(np.float32)


@dataclass(frozen=True)
class Filters:
    """Constraints on recommended movies; ``None`` means no constraint.

    ``genres`` keeps movies having any of the named genres; ``min_rating``
    applies to the shrunk mean rating (:attr:`Catalog.rating`: a film with two 5-star
    ratings stays under 4), ``min_count`` to the number of ratings.
    """

    min_rating: float | None = None
    min_count: int = 0
    year_min: int | None = None
    year_max: int | None = None
    genres: tuple[str, ...] = ()
    #: movie indices never shown (a visitor's saved movies: they have them already)
    exclude: tuple[int, ...] = ()

    def mask(self, catalog: Catalog) -> np.ndarray | None:
        """Allowed movies as a bool array ``(n_movies,)``, or ``None`` if nothing is filtered."""
        if self == Filters():
            return None
        ok = np.ones(catalog.n_movies, dtype=bool)
        if self.min_rating is not None:
            ok &= np.nan_to_num(catalog.rating, nan=-np.inf) >= self.min_rating
        if self.min_count:
            ok &= catalog.rating_count >= self.min_count
        if self.year_min is not None:
            ok &= catalog.year >= self.year_min
        if self.year_max is not None:
            ok &= (catalog.year <= self.year_max) & (catalog.year > 0)
        if self.genres:
            unknown = [g for g in self.genres if g not in catalog.genre_names]
            if unknown:
                raise ValueError(f"unknown genre(s) {unknown}; known: {list(catalog.genre_names)}")
            cols = [catalog.genre_names.index(g) for g in self.genres]
            ok &= catalog.genres[:, cols].any(axis=1)
        if self.exclude:
            ok[np.asarray(self.exclude, np.int64)] = False
        return ok


def supports_retrieval(model: Recommender) -> bool:
    """Whether ``model`` offers ``query_vectors(queries)`` and ``item_vectors()`` whose inner
    product equals its movie scores up to a per-query constant (e.g. the sequence models);
    a model whose scores have a further positive term says so with ``retrieval_exact = False``
    (a sequence model with a transition prior) and is scored exactly."""
    return (
        callable(getattr(model, "query_vectors", None))
        and callable(getattr(model, "item_vectors", None))
        and bool(getattr(model, "retrieval_exact", True))
    )


@dataclass(frozen=True)
class Retrieval:
    """An approximate nearest-neighbour index over a model's movie vectors, so that
    :func:`recommend` ranks a large catalogue without scoring every movie.

    Attributes
    ----------
    index:
        :class:`~movierec.retrieval.MipsIndex` built from ``item_vectors``.
    item_vectors:
        ``(n_movies, dim)`` float32, row = movie *index*: the model's ``item_vectors()``,
        used to re-score the index's candidates exactly.
    n_candidates:
        Candidates per query before exclusions and filters (``None``:
        :func:`~movierec.retrieval.candidates_then_rescore`'s default, ``max(4 * n, 100)``).
    """

    index: MipsIndex
    item_vectors: np.ndarray
    n_candidates: int | None = None

    def __post_init__(self) -> None:
        items = self.item_vectors
        if items.dtype != np.float32 or items.shape != (self.index.n_items, self.index.dim):
            raise ValueError(
                f"item_vectors must be float32 of shape ({self.index.n_items}, {self.index.dim}) "
                f"like the index, got {items.dtype} {items.shape}"
            )
        if self.n_candidates is not None and self.n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1 or None, got {self.n_candidates}")

    @classmethod
    def build(
        cls,
        model: Recommender,
        config: MipsConfig | None = None,
        *,
        rng: np.random.Generator | None = None,
        n_candidates: int | None = None,
    ) -> Retrieval:
        """Index a fitted ``model``'s ``item_vectors()`` (needs FAISS: ``ImportError`` without it).

        ``config`` defaults to ``MipsConfig()`` (IVF); ``rng`` picks the k-means sample
        (default ``np.random.default_rng(0)``, so a model always gets the same index).
        """
        model._check_fitted()
        if not supports_retrieval(model):
            raise TypeError(f"{model.name}: the model offers no query_vectors / item_vectors to index")
        items = np.ascontiguousarray(model.item_vectors(), dtype=np.float32)  # type: ignore[attr-defined]
        if items.shape[0] != model.n_movies:
            raise ValueError(f"item_vectors has {items.shape[0]} rows for a model of {model.n_movies} movies")
        return cls(MipsIndex.build(items, config, rng=rng), items, n_candidates)


class ScoreRows(Protocol):
    """Somewhere a model's score rows come from instead of calling it each time (a cache)."""

    def score(self, model: Recommender, queries: Sequence[Query]) -> np.ndarray: ...

    def score_tags(self, model: Recommender, queries: Sequence[Query]) -> np.ndarray: ...


@dataclass(frozen=True)
class Recommendations:
    """Top-N result for one query: movie and tag indices with scores."""

    movies: np.ndarray
    movie_scores: np.ndarray
    tags: np.ndarray
    tag_scores: np.ndarray
    fallback: bool


def recommend(
    model: Recommender,
    queries: Sequence[Query],
    n: int,
    *,
    catalog: Catalog | None = None,
    filters: Filters | Sequence[Filters] | None = None,
    n_tags: int = 0,
    retrieval: Retrieval | None = None,
    remembered: ScoreRows | None = None,
) -> list[Recommendations]:
    """Recommend for each query: score, drop held movies and tags, filter, take the top N.

    ``filters`` applies to every query, or (a sequence) one per query; the model
    scores all queries in one batch either way. Empty queries (and rows the model
    cannot score) get the catalogue's popularity ranking, filtered the same way.

    With ``retrieval`` (a :class:`Retrieval` built from this model), non-empty queries
    are ranked by :func:`~movierec.retrieval.candidates_then_rescore` on the model's
    ``query_vectors`` instead of scoring every movie: the same exclusions and filters,
    the same order (exact scores of the candidates, ties by lower index), but the
    returned ``movie_scores`` are inner products, i.e. the model's scores up to a
    per-query constant (for the sequence models: logits rather than log-probabilities),
    and a movie the index misses is not returned (recall < 1 for ``"ivf"``/``"hnsw"``).
    Tag scores come from ``model.score_tags``, or, if the model has it, from
    ``model.query_vectors_and_tags(queries) -> (query_vectors, tag_scores)``, which should
    give both from one pass of its network (the sequence models' ``score_tags`` also
    computes every movie's score, the cost retrieval is there to avoid).

    ``remembered`` (the web engine's :class:`~movierec.serving.cache.RememberedScores`)
    answers the model's ``score`` / ``score_tags`` calls, from rows it keeps where it can.
    """
    model._check_fitted()
    for q in queries:
        q.check(model.n_movies, model.n_tags)
    needs_model = [i for i, q in enumerate(queries) if not q.is_empty]
    fallback = catalog.popularity_scores if catalog is not None else None
    want_tags = bool(n_tags) and model.supports_tags and bool(needs_model)
    model_tags: np.ndarray | None = None  # tag scores the retrieval path got with the query vectors
    if retrieval is not None:
        idx, vals, used_fallback, model_tags = _retrieve(
            model, queries, n, retrieval, catalog, filters, fallback, want_tags
        )
    else:
        scores = np.full((len(queries), model.n_movies), np.nan, np.float32)
        if needs_model:
            asked = [queries[i] for i in needs_model]
            scores[needs_model] = model.score(asked) if remembered is None else remembered.score(model, asked)
        allowed = _allowed(filters, catalog, len(queries))
        used_fallback = np.asarray(np.isnan(scores).all(axis=1), dtype=bool)
        idx, vals = top_n(scores, n, exclude=[q.movies for q in queries], allowed=allowed, fallback=fallback)
    tag_idx = np.zeros((len(queries), 0), np.int64)
    tag_vals = np.zeros((len(queries), 0), np.float32)
    if want_tags:
        tscores = np.full((len(queries), model.n_tags), np.nan, np.float32)
        tscores[needs_model] = (
            model_tags
            if model_tags is not None
            else (model.score_tags if remembered is None else partial(remembered.score_tags, model))(
                [queries[i] for i in needs_model]
            )
        )
        held = [np.concatenate([q.liked_tags, q.disliked_tags]) for q in queries]
        tag_idx, tag_vals = top_n(tscores, n_tags, exclude=held)
    out = []
    for i in range(len(queries)):
        keep = idx[i] >= 0
        tkeep = np.asarray(tag_idx[i] >= 0)
        out.append(
            Recommendations(
                movies=idx[i][keep],
                movie_scores=vals[i][keep],
                tags=tag_idx[i][tkeep],
                tag_scores=tag_vals[i][tkeep],
                fallback=bool(used_fallback[i]),
            )
        )
    return out


def _retrieve(
    model: Recommender,
    queries: Sequence[Query],
    n: int,
    retrieval: Retrieval,
    catalog: Catalog | None,
    filters: Filters | Sequence[Filters] | None,
    fallback: np.ndarray | None,
    want_tags: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`recommend`'s movie top-N through ``retrieval``.

    Returns indices ``(B, n)`` int64 (``-1`` padded), scores ``(B, n)`` float32, whether
    each row used the fallback ``(B,)`` bool, and, when ``want_tags`` and the model offers
    ``query_vectors_and_tags`` (query vectors and tag scores from one pass of its network),
    the tag scores ``(n_nonempty, n_tags)`` of the non-empty queries, else ``None``.
    """
    if not supports_retrieval(model):
        raise TypeError(f"{model.name}: retrieval needs a model with query_vectors / item_vectors")
    if retrieval.index.n_items != model.n_movies:
        raise ValueError(
            f"the retrieval index holds {retrieval.index.n_items} movies, the model {model.n_movies}: "
            "build it from this model"
        )
    b = len(queries)
    idx = np.full((b, n), -1, np.int64)
    vals = np.full((b, n), -np.inf, np.float32)
    empty = np.asarray([q.is_empty for q in queries], dtype=bool)
    scored = np.flatnonzero(~empty)
    sub = [queries[i] for i in scored.tolist()]
    qv = np.zeros((0, retrieval.index.dim), np.float32)
    tags: np.ndarray | None = None
    both = getattr(model, "query_vectors_and_tags", None)
    if sub and want_tags and callable(both):
        qv, tags = both(sub)
    elif sub:
        qv = model.query_vectors(sub)  # type: ignore[attr-defined]
    qv = np.asarray(qv, np.float32)
    pos = np.full(b, -1, np.int64)
    pos[scored] = np.arange(scored.size)
    adjustment = getattr(model, "dislike_adjustment", None)  # score terms beyond the inner product
    for rows, mask in _filter_groups(filters, catalog, b):
        model_rows = rows[~empty[rows]]
        if model_rows.size and n > 0:
            group = [queries[i] for i in model_rows.tolist()]
            adjust = None
            if callable(adjustment) and any(q.disliked.size or q.disliked_tags.size for q in group):

                def adjust(r: np.ndarray, cand: np.ndarray, group: list[Query] = group) -> np.ndarray:
                    return np.asarray(adjustment([group[i] for i in r.tolist()], cand), np.float32)

            idx[model_rows], vals[model_rows] = candidates_then_rescore(
                retrieval.index,
                qv[pos[model_rows]],
                retrieval.item_vectors,
                n,
                None if retrieval.n_candidates is None else max(retrieval.n_candidates, n),
                exclude=[q.movies for q in group],
                allowed_mask=mask,
                adjust=adjust,
            )
        pop_rows = rows[empty[rows]]
        if pop_rows.size:
            idx[pop_rows], vals[pop_rows] = top_n(
                np.full((pop_rows.size, model.n_movies), np.nan, np.float32),
                n,
                exclude=[queries[i].movies for i in pop_rows.tolist()],
                allowed=mask,
                fallback=fallback,
            )
    return idx, vals, empty, tags


def _filter_groups(
    filters: Filters | Sequence[Filters] | None, catalog: Catalog | None, n_queries: int
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Queries that share an allowed-movie mask: ``(query positions (k,) int64, mask (n_movies,) or None)``."""
    everyone = np.arange(n_queries, dtype=np.int64)
    if filters is None or catalog is None:
        return [(everyone, None)]
    if isinstance(filters, Filters):
        return [(everyone, filters.mask(catalog))]
    per_query = list(filters)
    if len(per_query) != n_queries:
        raise ValueError(f"got {len(per_query)} filters for {n_queries} queries; give one per query")
    rows: dict[Filters, list[int]] = {}
    for i, f in enumerate(per_query):
        rows.setdefault(f, []).append(i)
    return [(np.asarray(r, np.int64), f.mask(catalog)) for f, r in rows.items()]


def _allowed(
    filters: Filters | Sequence[Filters] | None, catalog: Catalog | None, n_queries: int
) -> np.ndarray | None:
    """The allowed-movie mask of ``filters``: ``(n_movies,)``, ``(n_queries, n_movies)`` or ``None``."""
    if filters is None or catalog is None:
        return None
    if isinstance(filters, Filters):
        return filters.mask(catalog)
    per_query = list(filters)
    if len(per_query) != n_queries:
        raise ValueError(f"got {len(per_query)} filters for {n_queries} queries; give one per query")
    if len(set(per_query)) <= 1:
        return per_query[0].mask(catalog) if per_query else None
    masks = {f: f.mask(catalog) for f in set(per_query)}
    out = np.ones((n_queries, catalog.n_movies), dtype=bool)
    for i, f in enumerate(per_query):
        m = masks[f]
        if m is not None:
            out[i] = m
    return out
