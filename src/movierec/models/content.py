"""Content-based recommender: cosine similarity of sentence embeddings.

Every movie is embedded once from its text (:func:`movie_text`: title, year,
genres, strongest tags, overview) and every tag from its name. A query becomes
one *taste vector*: the recency-weighted mean of liked movies' embeddings,
minus ``dislike_weight`` times the mean of disliked ones, plus the liked tags'
mean (minus disliked tags') and the embedding of the free-text query. Movies
are scored by cosine similarity to it, so a movie nobody rated (cold start)
scores like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from movierec.content.embeddings import Encoder, TextEncoder
from movierec.content.text import MAX_TAGS, movie_text
from movierec.data.dataset import Dataset
from movierec.models.base import LIKE, NotFittedError, Query, Recommender, feedback_from_ratings

log = logging.getLogger(__name__)

__all__ = ["ContentConfig", "ContentRecommender"]


@dataclass
class ContentConfig:
    """Settings of :class:`ContentRecommender`."""

    #: tags listed in each movie's text (strongest first)
    max_tags: int = MAX_TAGS
    #: liked movies' weight halves every ``recency_half_life`` positions back from the latest
    recency_half_life: float = 10.0
    #: weight of the disliked-movie (and disliked-tag) mean subtracted from the taste vector
    dislike_weight: float = 0.5
    #: weight of the liked-tag mean added to the taste vector
    tag_weight: float = 1.0
    #: weight of the free-text query's embedding added to the taste vector
    text_weight: float = 1.0
    #: texts per forward pass of the encoder
    batch_size: int = 64
    #: embedding cache directory; ``""`` = ``Settings().home / "embeddings"``, ``"none"`` = no disk cache
    cache_dir: str = ""
    #: show a progress bar while embedding the catalogue
    progress: bool = False


class ContentRecommender(Recommender):
    """Scores movies by cosine similarity of their text embeddings to the query's taste.

    Parameters
    ----------
    config:
        A :class:`ContentConfig` (defaults if ``None``); ``overrides`` replace its fields.
    encoder:
        Callable mapping ``n`` texts to float32 ``(n, dim)`` unit vectors. Default:
        :class:`TextEncoder` (bundled all-MiniLM-L6-v2, disk-cached), created lazily.
        Tests inject a small deterministic fake.
    """

    name = "content"
    Config = ContentConfig
    supports_tags = True

    def __init__(
        self, config: ContentConfig | None = None, *, encoder: Encoder | None = None, **overrides: Any
    ) -> None:
        super().__init__(config, **overrides)
        self._encoder: Encoder | None = encoder
        self.movie_emb: np.ndarray | None = None
        self.tag_emb: np.ndarray | None = None
        self._train_ratings: Any = None
        self._like_dislike: tuple[float, float] = (4.0, 2.0)
        self._text_cache: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- encoder
    @property
    def encoder(self) -> Encoder:
        """The text encoder (created on first use)."""
        if self._encoder is None:
            cache = self.config.cache_dir
            if cache == "none":
                root: Path | None = None
            elif cache:
                root = Path(cache)
            else:
                from movierec.settings import Settings

                root = Settings().home / "embeddings"
            self._encoder = TextEncoder(root)
        return self._encoder

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        enc = self.encoder
        if isinstance(enc, TextEncoder):
            out = enc.encode(texts, batch_size=self.config.batch_size, progress=self.config.progress)
        else:
            out = enc(list(texts))
        out = np.asarray(out, np.float32)
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise ValueError(f"encoder returned shape {out.shape} for {len(texts)} texts")
        return _normalise(out)

    def _encode_one(self, text: str) -> np.ndarray:
        """Embedding ``(dim,)`` of one short text, remembered for the model's lifetime (bounded)."""
        hit = self._text_cache.get(text)
        if hit is None:
            if len(self._text_cache) >= 1024:
                self._text_cache.clear()
            hit = self._text_cache[text] = self._encode([text])[0]
        return hit

    # ---------------------------------------------------------------- fitting
    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        texts = movie_text(data, max_tags=self.config.max_tags)
        self.movie_emb = self._encode(texts)
        names = [str(t) for t in data.tags.ids]
        self.tag_emb = self._encode(names) if names else np.zeros((0, self.movie_emb.shape[1]), np.float32)
        self._train_ratings = data
        from movierec.models.base import feedback_thresholds

        self._like_dislike = feedback_thresholds(data)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self._emb().shape[1])

    def _emb(self) -> np.ndarray:
        if self.movie_emb is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return self.movie_emb

    def movie_embeddings(self) -> np.ndarray:
        """The movies' unit-length text embeddings, float32 ``(n_movies, dim)`` (a copy)."""
        return np.array(self._emb(), np.float32)

    # ---------------------------------------------------------------- scoring
    def taste(self, query: Query) -> np.ndarray | None:
        """The query's taste vector, float32 ``(dim,)`` (unit norm), or ``None`` if it says nothing."""
        emb = self._emb()
        cfg = self.config
        v = np.zeros(emb.shape[1], np.float64)
        said = False
        liked, disliked = query.liked, query.disliked
        if liked.size:
            age = np.arange(liked.size - 1, -1, -1, dtype=np.float64)
            w = 0.5 ** (age / max(cfg.recency_half_life, 1e-9))
            v += (w / w.sum()) @ emb[liked]
            said = True
        if disliked.size and cfg.dislike_weight:
            v -= cfg.dislike_weight * emb[disliked].mean(axis=0)
            said = True
        if self.tag_emb is not None and self.tag_emb.shape[0]:
            if query.liked_tags.size and cfg.tag_weight:
                v += cfg.tag_weight * self.tag_emb[query.liked_tags].mean(axis=0)
                said = True
            if query.disliked_tags.size and cfg.dislike_weight:
                v -= cfg.dislike_weight * cfg.tag_weight * self.tag_emb[query.disliked_tags].mean(axis=0)
                said = True
        if query.text and query.text.strip() and cfg.text_weight:
            v += cfg.text_weight * self._encode_one(query.text.strip())
            said = True
        norm = float(np.linalg.norm(v))
        if not said or norm < 1e-12:
            return None
        return (v / norm).astype(np.float32)

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        """Cosine similarity of every movie to each query's taste, float32 ``(B, n_movies)``.

        Rows of queries with no liked/disliked movie, tag or text are NaN (the
        ranking layer falls back to popularity).
        """
        emb = self._emb()
        out = np.full((len(queries), emb.shape[0]), np.nan, np.float32)
        for q in queries:
            q.check(self.n_movies, self.n_tags)
        tastes = [self.taste(q) for q in queries]
        rows = [i for i, t in enumerate(tastes) if t is not None]
        if rows:
            t = np.stack([tastes[i] for i in rows])  # type: ignore[misc]
            out[rows] = t @ emb.T
        return out

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores for known user *indices* ``(B,)`` from their time-ordered training ratings.

        Ratings at or above the like threshold count as likes, at or below the
        dislike threshold as dislikes (:func:`~movierec.models.base.feedback_thresholds`);
        if a user has no like, all their movies count as liked.
        """
        data = self._train_ratings
        if data is None:
            return super().score_users(users)
        like, dislike = self._like_dislike
        queries = []
        for u in np.asarray(users, np.int64):  # per user
            movies, ratings = data.history(int(u))
            fb = feedback_from_ratings(ratings, like, dislike)
            if not (fb == LIKE).any():
                fb = np.ones_like(fb)
            queries.append(Query(movies=movies, feedback=fb, user=int(u)))
        return self.score(queries)

    def score_tags(self, queries: Sequence[Query]) -> np.ndarray:
        """Cosine similarity of every tag to each query's taste, float32 ``(B, n_tags)``."""
        self._emb()
        tag_emb = self.tag_emb if self.tag_emb is not None else np.zeros((0, self.dim), np.float32)
        out = np.full((len(queries), tag_emb.shape[0]), np.nan, np.float32)
        for i, q in enumerate(queries):
            t = self.taste(q)
            if t is not None:
                out[i] = tag_emb @ t
        return out

    def similar(self, movie: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` movies most similar in content to movie *index* ``movie``.

        Returns
        -------
        (indices, similarities):
            Int64 ``(n,)`` movie indices (``movie`` itself excluded), best first,
            and their float32 cosine similarities.
        """
        from movierec.topn import top_n

        emb = self._emb()
        if not 0 <= movie < emb.shape[0]:
            raise IndexError(f"movie index out of range 0..{emb.shape[0] - 1}: {movie}")
        idx, vals = top_n((emb @ emb[movie])[None, :], n, exclude=[np.array([movie])])
        keep = idx[0] >= 0
        return idx[0][keep], vals[0][keep]

    def nearest_tags(self, text: str, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Known tags closest in meaning to ``text`` (e.g. a typed tag not in the vocabulary).

        Returns
        -------
        (indices, similarities):
            Int64 tag *indices* ``(<= n,)``, best first, and float32 cosine similarities.
        """
        from movierec.topn import top_n

        self._emb()
        if self.tag_emb is None or not self.tag_emb.shape[0] or not text.strip():
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        sims = self.tag_emb @ self._encode_one(text.strip())
        idx, vals = top_n(sims[None, :], n)
        keep = idx[0] >= 0
        return idx[0][keep], vals[0][keep]

    def explain(self, query: Query, movies: np.ndarray) -> list[str | None]:
        """Name the liked movie each recommended movie is most similar to."""
        emb = self._emb()
        liked = query.liked
        if not liked.size or self.movies is None:
            return [None] * len(movies)
        sims = emb[np.asarray(movies, np.int64)] @ emb[liked].T
        best = liked[np.argmax(sims, axis=1)]
        return [f"similar in content to movie {self.movies.ids[b]}" for b in best]

    # ------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        emb = self._emb()
        tag = self.tag_emb if self.tag_emb is not None else np.zeros((0, emb.shape[1]), np.float32)
        return {"movie_emb": emb, "tag_emb": tag}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        emb = np.asarray(state["movie_emb"], np.float32)
        tag = np.asarray(state["tag_emb"], np.float32)
        if self.movies is not None and emb.shape[0] != len(self.movies):
            raise ValueError(f"movie_emb has {emb.shape[0]} rows for {len(self.movies)} movies")
        if self.tags is not None and tag.shape[0] != len(self.tags):
            raise ValueError(f"tag_emb has {tag.shape[0]} rows for {len(self.tags)} tags")
        self.movie_emb, self.tag_emb = emb, tag


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)
