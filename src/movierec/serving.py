"""The recommendation engine behind the web app: built once at start-up, then
asked for a session's movies and tags, and for movies similar to one movie.

It maps external movie ids / tag names to the model's indices, builds a
:class:`~movierec.models.base.Query`, and leaves exclusion, filters and the
popularity fallback to :func:`movierec.ranking.recommend` (the one place that
does them). It never touches the database: callers pass plain values in and
get plain JSON-ready dicts out, so it can run in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.models.base import Query, Recommender
from movierec.ranking import Catalog, Filters, recommend

log = logging.getLogger(__name__)

__all__ = ["Engine", "SessionLike", "filters_from_dict"]


class SessionLike(Protocol):
    """What the engine reads from a stored session (``storage.sessions.SessionState``)."""

    liked: list[int]
    disliked: list[int]
    liked_tags: list[str]
    disliked_tags: list[str]
    filters: dict[str, Any]


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ m)


def filters_from_dict(raw: Mapping[str, Any] | None, catalog: Catalog) -> tuple[Filters, list[str]]:
    """:class:`Filters` of a session's stored filter dict, and notes on what was ignored.

    Keys: ``min_rating`` (float), ``year_min``, ``year_max`` (int), ``genres``
    (list of names). Genres the catalogue does not know are dropped with a note.
    """
    raw = raw or {}
    notes: list[str] = []
    genres = tuple(str(g) for g in (raw.get("genres") or ()))
    known = tuple(g for g in genres if g in catalog.genre_names)
    if len(known) < len(genres):
        notes.append(f"ignored unknown genre(s): {', '.join(g for g in genres if g not in known)}")

    def _num(key: str, kind: type) -> Any:
        v = raw.get(key)
        return None if v is None else kind(v)

    return (
        Filters(
            min_rating=_num("min_rating", float),
            year_min=_num("year_min", int),
            year_max=_num("year_max", int),
            genres=known,
        ),
        notes,
    )


@dataclass
class Engine:
    """A loaded model plus the per-movie data that filters, reasons and tag suggestions need.

    Attributes
    ----------
    model:
        A fitted :class:`Recommender`; its vocabularies define every index below.
    catalog:
        :class:`Catalog` aligned with ``model.movies`` (``(n_movies,)`` arrays).
    movie_tags:
        CSR ``(n_movies, n_tags)`` float32 over the model's movie and tag indices:
        how strongly each tag applies to each movie.
    titles:
        Display title per movie index, ``(n_movies,)`` object array of str.
    interactions:
        Optional user x movie CSR ``(n_users, n_movies)`` from training, used by
        :meth:`similar` (item co-occurrence); without it, tag profiles are used.
    """

    model: Recommender
    catalog: Catalog
    movie_tags: sp.csr_matrix
    titles: np.ndarray
    interactions: sp.csr_matrix | None = None
    _profiles: sp.csr_matrix = field(init=False, repr=False)
    _item_vectors: sp.csr_matrix = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = self.model.n_movies
        if self.catalog.n_movies != n or self.movie_tags.shape[0] != n or len(self.titles) != n:
            raise ValueError(
                f"engine parts disagree: model has {n} movies, catalog {self.catalog.n_movies}, "
                f"movie_tags {self.movie_tags.shape[0]}, titles {len(self.titles)}"
            )
        self._profiles = _row_normalise(self.movie_tags)
        base = self.interactions.T if self.interactions is not None else self.movie_tags
        self._item_vectors = _row_normalise(sp.csr_matrix(base))

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dataset(cls, model: Recommender, data: Dataset) -> Engine:
        """Engine over ``model`` with catalogue, tags and interactions taken from ``data``.

        ``data`` may hold other movies than the model; rows are aligned by movie id
        (movies the data lacks get empty rows).
        """
        model._check_fitted()
        assert model.movies is not None
        ids = model.movies.ids
        didx = data.movies.index(ids, missing="mask")
        have = didx >= 0
        full = Catalog.from_dataset(data)
        n = len(ids)
        genres = np.zeros((n, full.genres.shape[1]), bool)
        genres[have] = full.genres[didx[have]]
        year = np.zeros(n, np.int32)
        year[have] = full.year[didx[have]]
        mean = np.full(n, np.nan, np.float32)
        mean[have] = full.mean_rating[didx[have]]
        count = np.zeros(n, np.int64)
        count[have] = full.rating_count[didx[have]]
        catalog = Catalog(
            year=year, mean_rating=mean, rating_count=count, genres=genres, genre_names=full.genre_names
        )
        titles = np.full(n, "", dtype=object)
        titles[have] = data.movie_info["display_title"].to_numpy(object)[didx[have]]
        # movie x tag over the model's indices: rows by movie id, columns by tag name
        mt = data.movie_tags.tocoo()
        row_map = np.full(data.n_movies, -1, np.int64)
        row_map[didx[have]] = np.flatnonzero(have)
        tag_vocab = model.tags
        col_map = (
            tag_vocab.index(data.tags.ids, missing="mask")
            if tag_vocab is not None and len(tag_vocab) and len(data.tags)
            else np.full(len(data.tags), -1, np.int64)
        )
        r, c = row_map[mt.row], col_map[mt.col]
        ok = (r >= 0) & (c >= 0)
        movie_tags = sp.csr_matrix((mt.data[ok], (r[ok], c[ok])), shape=(n, model.n_tags), dtype=np.float32)
        inter = data.interactions().tocoo()
        icol = row_map[inter.col]
        iok = icol >= 0
        interactions = sp.csr_matrix(
            (inter.data[iok], (inter.row[iok], icol[iok])), shape=(data.n_users, n), dtype=np.float32
        )
        return cls(
            model=model, catalog=catalog, movie_tags=movie_tags, titles=titles, interactions=interactions
        )

    @classmethod
    def from_rows(cls, model: Recommender, rows: Iterable[Mapping[str, Any]]) -> Engine:
        """Engine over ``model`` from catalogue rows (dicts as the storage layer returns them).

        Each row needs ``movie_id``; optional ``display_title``, ``year``, ``genres``
        (list of str), ``mean_rating``, ``rating_count`` and ``tags`` (list of str, or of
        dicts with ``tag``/``name`` and ``weight``). Genres count as tags too. Movies of the
        model missing from ``rows`` get empty rows (never recommended by filters on year).
        """
        model._check_fitted()
        assert model.movies is not None
        n = model.n_movies
        rows = list(rows)
        ids = np.asarray([int(r["movie_id"]) for r in rows], np.int64)
        idx = model.movies.index(ids, missing="mask") if len(ids) else np.zeros(0, np.int64)
        year = np.zeros(n, np.int32)
        mean = np.full(n, np.nan, np.float32)
        count = np.zeros(n, np.int64)
        titles = np.full(n, "", dtype=object)
        genre_names = sorted({str(g) for r in rows for g in (r.get("genres") or ())})
        gcol = {g: i for i, g in enumerate(genre_names)}
        genres = np.zeros((n, len(genre_names)), bool)
        t_rows: list[int] = []
        t_names: list[str] = []
        t_weights: list[float] = []
        for row, i in zip(rows, idx.tolist(), strict=True):
            if i < 0:
                continue
            year[i] = int(row.get("year") or 0)
            mr = row.get("mean_rating")
            mean[i] = np.nan if mr is None else float(mr)
            count[i] = int(row.get("rating_count") or 0)
            titles[i] = str(row.get("display_title") or row.get("title") or "")
            for g in row.get("genres") or ():
                genres[i, gcol[str(g)]] = True
                t_rows.append(i)
                t_names.append(str(g).strip().lower())
                t_weights.append(1.0)
            for t in row.get("tags") or ():
                if isinstance(t, Mapping):
                    name = str(t.get("tag") or t.get("name") or "")
                    weight = float(t.get("weight") or 1.0)
                else:
                    name, weight = str(t), 1.0
                t_rows.append(i)
                t_names.append(name.strip().lower())
                t_weights.append(weight)
        tag_vocab = model.tags
        if tag_vocab is not None and len(tag_vocab) and t_names:
            cols = tag_vocab.index(np.asarray(t_names, dtype=object), missing="mask")
        else:
            cols = np.full(len(t_names), -1, np.int64)
        r_arr = np.asarray(t_rows, np.int64)
        ok = cols >= 0
        movie_tags = sp.csr_matrix(
            (np.asarray(t_weights, np.float32)[ok], (r_arr[ok], cols[ok])),
            shape=(n, model.n_tags),
            dtype=np.float32,
        )
        movie_tags.sum_duplicates()
        catalog = Catalog(
            year=year, mean_rating=mean, rating_count=count, genres=genres, genre_names=tuple(genre_names)
        )
        return cls(model=model, catalog=catalog, movie_tags=movie_tags, titles=titles)

    # ---------------------------------------------------------------- lookups
    @property
    def genre_names(self) -> tuple[str, ...]:
        return self.catalog.genre_names

    def knows_movie(self, movie_id: int) -> bool:
        """Whether ``movie_id`` (external) is in the model's vocabulary."""
        assert self.model.movies is not None
        return bool(self.model.movies.index([movie_id], missing="mask")[0] >= 0)

    def _movie_indices(self, ids: Sequence[int], notes: list[str], what: str) -> np.ndarray:
        assert self.model.movies is not None
        if not len(ids):
            return np.zeros(0, np.int64)
        idx = self.model.movies.index(np.asarray(ids, np.int64), missing="mask")
        if (idx < 0).any():
            notes.append(
                f"the model does not know {what} movie id(s) {np.asarray(ids)[idx < 0].tolist()}; ignored"
            )
        return idx[idx >= 0]

    def _tag_indices(self, names: Sequence[str], notes: list[str], what: str) -> np.ndarray:
        if not len(names) or self.model.tags is None or not len(self.model.tags):
            if len(names):
                notes.append(f"the model knows no tags; {what} tags ignored")
            return np.zeros(0, np.int64)
        idx = self.model.tags.index(
            np.asarray([n.strip().lower() for n in names], dtype=object), missing="mask"
        )
        if (idx < 0).any():
            notes.append(
                f"unknown {what} tag(s) {[n for n, i in zip(names, idx, strict=True) if i < 0]}; ignored"
            )
        return idx[idx >= 0]

    # -------------------------------------------------------------- recommend
    def recommend(self, state: SessionLike, n: int = 24, n_tags: int = 12) -> dict[str, Any]:
        """Movies and tags for a session.

        Returns
        -------
        dict
            ``movies``: list of ``{movie_id, score, reason}`` best first;
            ``tags``: list of ``{tag, score}``; ``fallback``: whether the
            popularity fallback was used; ``notes``: what was ignored and why.
        """
        notes: list[str] = []
        liked = self._movie_indices(list(state.liked), notes, "liked")
        disliked = self._movie_indices(list(state.disliked), notes, "disliked")
        liked_tags = self._tag_indices(list(state.liked_tags), notes, "liked")
        disliked_tags = self._tag_indices(list(state.disliked_tags), notes, "disliked")
        query = Query.session(liked, disliked, liked_tags, disliked_tags)
        filters, fnotes = filters_from_dict(state.filters, self.catalog)
        notes.extend(fnotes)
        rec = recommend(self.model, [query], n, catalog=self.catalog, filters=filters, n_tags=n_tags)[0]
        assert self.model.movies is not None
        movie_ids = self.model.movies.id(rec.movies)
        reasons = self._reasons(query, rec.movies, rec.fallback)
        movies = [
            {"movie_id": int(m), "score": float(s), "reason": r}
            for m, s, r in zip(movie_ids, rec.movie_scores, reasons, strict=True)
        ]
        if rec.tags.size:
            tag_idx, tag_scores = rec.tags, rec.tag_scores
        else:
            tag_idx, tag_scores = self._tags_from_movies(rec.movies, query, n_tags)
        tags = []
        if self.model.tags is not None and tag_idx.size:
            names = self.model.tags.id(tag_idx)
            tags = [{"tag": str(t), "score": float(s)} for t, s in zip(names, tag_scores, strict=True)]
        return {"movies": movies, "tags": tags, "fallback": rec.fallback, "notes": notes}

    def _tags_from_movies(
        self, movies: np.ndarray, query: Query, n_tags: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tags of the recommended ``movies`` (indices, best first), weighted by rank.

        A movie at rank ``r`` (0-based) weighs ``1 / log2(r + 2)`` (rank, not raw score,
        so models with negative or unbounded scores weigh alike); held tags are excluded.
        """
        if n_tags <= 0 or movies.size == 0 or self.model.n_tags == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        w = (1.0 / np.log2(np.arange(movies.size) + 2.0)).astype(np.float32)
        scores = np.asarray(self._profiles[movies].T @ w).ravel().astype(np.float32)
        held = np.concatenate([query.liked_tags, query.disliked_tags])
        scores[held] = 0.0
        cand = np.flatnonzero(scores > 0)
        if cand.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        order = cand[np.lexsort((cand, -scores[cand]))][:n_tags]
        return order.astype(np.int64), scores[order]

    def _reasons(self, query: Query, movies: np.ndarray, fallback: bool) -> list[str | None]:
        """One short reason per recommended movie index (``movies`` ``(k,)``)."""
        if movies.size == 0:
            return []
        out: list[str | None] = [None] * movies.size
        if fallback or query.is_empty:
            out = ["popular with MovieLens raters"] * movies.size
        else:
            liked = query.liked
            if liked.size:
                # the liked movie with the most similar tag/genre profile; later (more
                # important) likes win near-ties
                sims = np.asarray((self._profiles[movies] @ self._profiles[liked].T).todense())
                sims = sims * (1.0 + 0.01 * np.arange(liked.size))[None, :]
                best = sims.argmax(axis=1)
                for i in range(movies.size):
                    if sims[i, best[i]] > 0:
                        out[i] = f"because you liked {self.titles[liked[best[i]]]}"
            if query.liked_tags.size and self.model.tags is not None:
                sub = np.asarray(self.movie_tags[movies][:, query.liked_tags].todense())
                best = sub.argmax(axis=1)
                for i in range(movies.size):
                    if out[i] is None and sub[i, best[i]] > 0:
                        out[i] = f"tagged “{self.model.tags.id([query.liked_tags[best[i]]])[0]}”"
            if query.liked.size:  # a collaborative match without a shared tag or genre
                fan = f"liked by fans of {self.titles[query.liked[-1]]}"
                out = [r if r is not None else fan for r in out]
        if any(r is None for r in out):
            try:
                explained = self.model.explain(query, movies)
            except Exception:  # a model's explanation must never break recommending
                log.exception("%s.explain failed", self.model.name)
                explained = [None] * movies.size
            out = [r if r is not None else e for r, e in zip(out, explained, strict=True)]
        return out

    # ---------------------------------------------------------------- similar
    def similar(self, movie_id: int, n: int = 12) -> list[dict[str, Any]]:
        """Movies most similar to ``movie_id`` (external id): ``[{movie_id, score}]`` best first.

        With training interactions: their item co-occurrence cosine. Without (an engine
        built from the catalogue database): the sum of two standardised scores, the
        model's scores for a session that liked only this movie and the cosine of tag /
        genre profiles. Swap this method to change how the movie view finds neighbours.
        Raises ``KeyError`` for an unknown movie.
        """
        assert self.model.movies is not None
        i = int(self.model.movies.index([movie_id], missing="mask")[0])
        if i < 0:
            raise KeyError(f"unknown movie id {movie_id}")
        sims = np.asarray((self._item_vectors @ self._item_vectors[i].T).todense()).ravel()
        if self.interactions is None:
            model_scores = self.model.score([Query.session([i])])[0].astype(np.float64)
            sims = _standardise(sims) + _standardise(model_scores)
        else:
            sims[sims <= 0] = -np.inf
        sims[i] = -np.inf
        k = min(n, int(np.isfinite(sims).sum()))
        if k <= 0:
            return []
        order = np.lexsort((np.arange(sims.size), -sims))[:k]
        ids = self.model.movies.id(order)
        return [{"movie_id": int(m), "score": float(sims[j])} for m, j in zip(ids, order, strict=True)]


def _standardise(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over finite entries, ``(n,)`` float64; non-finite become ``-inf``."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    out = np.full(x.shape, -np.inf)
    if ok.any():
        v = x[ok]
        sd = v.std()
        out[ok] = (v - v.mean()) / (sd if sd > 0 else 1.0)
    return out
