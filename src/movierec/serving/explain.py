"""Why a movie is recommended, and which tags to suggest when the model has no tag head.

Both read the movies' tag / genre profiles (``movie_tags``, rows scaled to unit
length); reasons fall back to the model's own :meth:`~movierec.models.base.Recommender.explain`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from movierec.models.base import Query, Recommender
from movierec.ranking import Recommendations

log = logging.getLogger(__name__)


def row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ m)


@dataclass
class Explainer:
    """Reasons and tag suggestions for one model over its catalogue.

    ``movie_tags``: CSR ``(n_movies, n_tags)`` float32, how strongly each tag applies to each
    movie (model indices); ``titles``: display title per movie index.
    """

    model: Recommender
    movie_tags: sp.csr_matrix
    titles: np.ndarray
    profiles: sp.csr_matrix = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.profiles = row_normalise(self.movie_tags)

    def tags_from_movies(
        self, movies: np.ndarray, query: Query, n_tags: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tags of the recommended ``movies`` (indices, best first), weighted by rank.

        A movie at rank ``r`` (0-based) weighs ``1 / log2(r + 2)`` (rank, not raw score,
        so models with negative or unbounded scores weigh alike); held tags are excluded.
        """
        if n_tags <= 0 or movies.size == 0 or self.model.n_tags == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        w = (1.0 / np.log2(np.arange(movies.size) + 2.0)).astype(np.float32)
        scores = np.asarray(self.profiles[movies].T @ w).ravel().astype(np.float32)
        held = np.concatenate([query.liked_tags, query.disliked_tags])
        scores[held] = 0.0
        cand = np.flatnonzero(scores > 0)
        if cand.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        order = cand[np.lexsort((cand, -scores[cand]))][:n_tags]
        return order.astype(np.int64), scores[order]

    def liked_similarity(
        self, queries: Sequence[Query], recs: Sequence[Recommendations]
    ) -> list[np.ndarray | None]:
        """Per query, the tag/genre profile cosine ``(k, n_liked)`` float of its recommended
        movies against its liked movies (``None`` where :meth:`reasons` needs none).

        One sparse product for the whole batch: slicing the profiles query by query
        was half the cost of a batch of recommendations.
        """
        out: list[np.ndarray | None] = [None] * len(queries)
        need = [
            i
            for i, (q, r) in enumerate(zip(queries, recs, strict=True))
            if r.movies.size and q.liked.size and not r.fallback
        ]
        if not need:
            return out
        movies = np.concatenate([recs[i].movies for i in need])
        liked = np.concatenate([queries[i].liked for i in need])
        sims = (self.profiles[movies] @ self.profiles[liked].T).toarray()
        a = b = 0
        for i in need:
            k, n = recs[i].movies.size, queries[i].liked.size
            out[i] = sims[a : a + k, b : b + n]
            a, b = a + k, b + n
        return out

    def reasons(
        self, query: Query, movies: np.ndarray, fallback: bool, sims: np.ndarray | None
    ) -> list[str | None]:
        """One short reason per recommended movie index (``movies`` ``(k,)``); ``sims``:
        :meth:`liked_similarity`'s block for this query."""
        if movies.size == 0:
            return []
        out: list[str | None] = [None] * movies.size
        if fallback or query.is_empty:
            out = ["popular with MovieLens raters"] * movies.size
        else:
            liked = query.liked
            if liked.size and sims is not None:
                # the liked movie with the most similar tag/genre profile; later (more
                # important) likes win near-ties
                sims = sims * (1.0 + 0.01 * np.arange(liked.size))[None, :]
                best = sims.argmax(axis=1)
                shared = (sims[np.arange(movies.size), best] > 0).tolist()
                for i, (yes, who) in enumerate(zip(shared, liked[best].tolist(), strict=True)):
                    if yes:
                        out[i] = f"because you liked {self.titles[who]}"
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
