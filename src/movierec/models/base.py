"""The one scoring contract every model follows.

A model scores a :class:`Query` (an optional known user plus an ordered
history of liked / seen / disliked movies and liked / disliked tags) against
every movie in its vocabulary. Excluding what the query holds, filtering and
taking the top N happen elsewhere, once (:mod:`movierec.ranking`).
"""

from __future__ import annotations

import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.data.ratings import RatingScale
from movierec.data.vocab import Vocabulary
from movierec.evaluation.metrics import ValidationMetric
from movierec.models.configs import with_settings

LIKE, SEEN, DISLIKE = 1, 0, -1


class NotFittedError(RuntimeError):
    """The model was used before :meth:`Recommender.fit` or loading."""


class CannotScoreError(ValueError):
    """The model cannot score this query (e.g. an unknown user for a pure user-factor model)."""


def _as_index_array(values: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integer indices, got dtype {arr.dtype}")
    return arr.astype(np.int64).ravel()


@dataclass(frozen=True)
class Query:
    """What we know about the person we recommend for.

    Attributes
    ----------
    movies:
        Movie *indices* in order, shape ``(n,)`` int64: time order for a
        user's history, importance order for a session (most important last).
    feedback:
        Per movie ``+1`` liked, ``0`` seen (neutral), ``-1`` disliked; shape ``(n,)`` int8.
    ratings:
        Explicit ratings per movie, ``NaN`` where unknown; shape ``(n,)`` float32.
    liked_tags, disliked_tags:
        Tag *indices*, shape ``(m,)`` int64, importance order.
    user:
        Index of a user known to the model's training data, or ``None`` for a new session.
    text:
        Optional free-text taste ("slow-burn dystopia"), used by content models.
    """

    movies: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    feedback: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    ratings: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    liked_tags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    disliked_tags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    user: int | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        movies = _as_index_array(self.movies, "movies")
        feedback = np.asarray(self.feedback, dtype=np.int8).ravel()
        if feedback.size == 0 and movies.size:
            feedback = np.ones(movies.size, np.int8)
        ratings = np.asarray(self.ratings, dtype=np.float32).ravel()
        if ratings.size == 0 and movies.size:
            ratings = np.full(movies.size, np.nan, np.float32)
        if not (movies.size == feedback.size == ratings.size):
            raise ValueError("movies, feedback and ratings must have the same length")
        if feedback.size and not np.isin(feedback, (LIKE, SEEN, DISLIKE)).all():
            raise ValueError("feedback values must be +1 (like), 0 (seen) or -1 (dislike)")
        object.__setattr__(self, "movies", movies)
        object.__setattr__(self, "feedback", feedback)
        object.__setattr__(self, "ratings", ratings)
        object.__setattr__(self, "liked_tags", _as_index_array(self.liked_tags, "liked_tags"))
        object.__setattr__(self, "disliked_tags", _as_index_array(self.disliked_tags, "disliked_tags"))

    @classmethod
    def session(
        cls,
        liked: Sequence[int] | np.ndarray = (),
        disliked: Sequence[int] | np.ndarray = (),
        liked_tags: Sequence[int] | np.ndarray = (),
        disliked_tags: Sequence[int] | np.ndarray = (),
        *,
        text: str | None = None,
    ) -> Query:
        """A new visitor's session: dislikes first, then likes in importance order."""
        liked_a = _as_index_array(liked, "liked")
        disliked_a = _as_index_array(disliked, "disliked")
        return cls(
            movies=np.concatenate([disliked_a, liked_a]),
            feedback=np.concatenate(
                [np.full(disliked_a.size, DISLIKE, np.int8), np.full(liked_a.size, LIKE, np.int8)]
            ),
            liked_tags=_as_index_array(liked_tags, "liked_tags"),
            disliked_tags=_as_index_array(disliked_tags, "disliked_tags"),
            text=text,
        )

    @property
    def liked(self) -> np.ndarray:
        """Liked movie indices in order."""
        return self.movies[self.feedback == LIKE]

    @property
    def disliked(self) -> np.ndarray:
        """Disliked movie indices in order."""
        return self.movies[self.feedback == DISLIKE]

    @property
    def is_empty(self) -> bool:
        return self.movies.size == 0 and self.liked_tags.size == 0 and self.user is None and not self.text

    def check(self, n_movies: int, n_tags: int) -> None:
        """Raise ``IndexError`` if any index is outside the model's vocabularies."""
        for arr, n, what in (
            (self.movies, n_movies, "movie"),
            (self.liked_tags, n_tags, "tag"),
            (self.disliked_tags, n_tags, "tag"),
        ):
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise IndexError(
                    f"{what} index out of range 0..{n - 1}: {arr[(arr < 0) | (arr >= n)][:5].tolist()}"
                )


def feedback_from_ratings(ratings: np.ndarray, like_threshold: float, dislike_threshold: float) -> np.ndarray:
    """Feedback (+1/0/-1, int8) of explicit ``ratings`` (shape ``(n,)``)."""
    fb = np.zeros(ratings.shape, np.int8)
    fb[ratings >= like_threshold] = LIKE
    fb[ratings <= dislike_threshold] = DISLIKE
    return fb


def feedback_thresholds(data: Dataset) -> tuple[float, float]:
    """(like, dislike) rating thresholds for the data set's scale.

    On a 0.5-5 or 1-5 scale this gives like ``>= 4.0`` and dislike ``<= 2.0``;
    other scales are mapped proportionally (75 % and 37.5 % of the range, rounded
    to the scale's step, up and down respectively).
    """
    s = data.scale
    span = s.high - s.low
    like = s.low + math.ceil(0.75 * span / s.step - 1e-9) * s.step
    dislike = s.low + math.floor(0.375 * span / s.step + 1e-9) * s.step
    return float(like), float(dislike)


@dataclass(frozen=True)
class Histories:
    """Every training user's rated movies in time order, with their feedback: the session a
    query naming only a known user stands for, in the sequence-aware models.

    ``movie`` ``(n,)`` int64 movie indices and ``feedback`` ``(n,)`` int8 (+1/0/-1), rows in
    (user, time) order; ``ptr`` ``(n_users + 1,)`` int64: user ``u``'s rows are ``ptr[u]:ptr[u + 1]``.
    """

    movie: np.ndarray
    feedback: np.ndarray
    ptr: np.ndarray


def tags_in_text(text: str | None, tags: Vocabulary | None, max_words: int = 3) -> np.ndarray:
    """Tag *indices* that free text names, ``(m,)`` int64 in order of mention: at each word the
    longest run of up to ``max_words`` words (lower case; letters, digits, ``-`` and ``'``) that
    is a tag of ``tags`` ("a slow dystopia with police" -> dystopia, police)."""
    if not text or tags is None or len(tags) == 0:
        return np.zeros(0, np.int64)
    words = re.findall(r"[a-z0-9][a-z0-9'\-]*", text.lower())[:200]
    runs = [(i, n) for i in range(len(words)) for n in range(min(max_words, len(words) - i), 0, -1)]
    if not runs:
        return np.zeros(0, np.int64)
    phrases = np.array([" ".join(words[i : i + n]) for i, n in runs], dtype=object)
    found = tags.index(phrases, missing="mask")
    out: list[int] = []
    covered = -1  # last word already inside a matched phrase
    for (i, n), t in zip(runs, found, strict=True):
        if t >= 0 and i > covered:
            out.append(int(t))
            covered = i + n - 1
    return np.asarray(list(dict.fromkeys(out)), np.int64)


def with_history(
    queries: Sequence[Query], history: Histories | None, n_movies: int, n_tags: int
) -> list[Query]:
    """``queries`` checked against the vocabularies (``IndexError``); with ``history``, one
    naming only a known user (no movies) becomes that user's history, keeping its tags."""
    out = []
    for q in queries:
        if history is not None and q.movies.size == 0 and q.user is not None:
            if not 0 <= q.user < history.ptr.size - 1:
                raise IndexError(f"user index out of range 0..{history.ptr.size - 2}: {q.user}")
            a, b = history.ptr[q.user], history.ptr[q.user + 1]
            q = Query(
                movies=history.movie[a:b],
                feedback=history.feedback[a:b],
                liked_tags=q.liked_tags,
                disliked_tags=q.disliked_tags,
                user=q.user,
            )
        q.check(n_movies, n_tags)
        out.append(q)
    return out


@dataclass
class FitInfo:
    """What training left behind, saved in the artifact's ``meta.json``."""

    dataset: str = ""
    data_fingerprint: str = ""
    fit_seconds: float = 0.0
    epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Recommender(ABC):
    """Base of every model. Subclasses set ``name`` and ``Config`` and implement
    :meth:`_fit`, :meth:`score` and the state round trip.

    ``fit`` records the vocabularies, so a saved model can map ids without the
    training data. Scores are float32 arrays ``(n_queries, n_movies)``; ``NaN``
    marks movies the model cannot score (the ranking layer falls back to
    popularity for a row with no finite score).
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[Any]]
    #: predicts explicit ratings with :meth:`predict`
    supports_ratings: ClassVar[bool] = False
    #: scores sessions not seen in training
    supports_sessions: ClassVar[bool] = True
    #: has a tag head: :meth:`score_tags` gives scores over tags
    supports_tags: ClassVar[bool] = False

    def __init__(self, config: Any | None = None, **overrides: Any) -> None:
        base = config if config is not None else self.Config()
        self.config = with_settings(base, overrides) if overrides else base
        self.users: Vocabulary | None = None
        self.movies: Vocabulary | None = None
        self.tags: Vocabulary | None = None
        self.scale: RatingScale | None = None
        self.fit_info = FitInfo()
        self._train: sp.csr_matrix | None = None
        #: what validation maximises during :meth:`fit` (set by ``fit``)
        self.valid_metric = ValidationMetric()

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        data: Dataset,
        rng: np.random.Generator | None = None,
        *,
        valid: Dataset | None = None,
        metric: ValidationMetric | None = None,
    ) -> Self:
        """Train on ``data``; ``rng`` drives all randomness (default: seed 0).

        ``valid`` is an optional held-out split (same vocabularies) for early stopping.
        ``metric``: the ranking metric that early stopping and any tuning inside ``fit``
        maximise (default NDCG@10; :class:`~movierec.evaluation.metrics.ValidationMetric`).
        Models never compute a metric of their own; they call :attr:`valid_metric`.
        """
        rng = rng if rng is not None else np.random.default_rng(0)
        self.valid_metric = metric if metric is not None else ValidationMetric()
        self.users, self.movies, self.tags, self.scale = data.users, data.movies, data.tags, data.scale
        self._train = data.interactions()
        start = time.perf_counter()
        self._fit(data, rng, valid)
        self.fit_info.fit_seconds = time.perf_counter() - start
        self.fit_info.dataset = data.name
        self.fit_info.data_fingerprint = data.fingerprint()
        return self

    @abstractmethod
    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None: ...

    @property
    def n_movies(self) -> int:
        if self.movies is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return len(self.movies)

    @property
    def n_tags(self) -> int:
        return len(self.tags) if self.tags is not None else 0

    # ----------------------------------------------------------------- scoring
    @abstractmethod
    def score(self, queries: Sequence[Query]) -> np.ndarray:
        """Scores of every movie for each query, float32 ``(len(queries), n_movies)``."""

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores for known user *indices* ``(B,)`` from their training history.

        The default builds a query per user from the training interactions;
        models with user representations override it.
        """
        if self._train is None:
            raise NotFittedError(f"{self.name}: score_users needs the training data of fit()")
        train = self._train
        queries = [
            Query(movies=train.indices[train.indptr[u] : train.indptr[u + 1]], user=int(u))
            for u in np.asarray(users)
        ]
        return self.score(queries)

    def score_tags(self, queries: Sequence[Query]) -> np.ndarray:
        """Scores over tags ``(len(queries), n_tags)``; only for ``supports_tags`` models."""
        raise NotImplementedError(f"{self.name} has no tag head")

    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """Predicted ratings of user *indices* ``(n,)`` for movie *indices* ``(n,)``, float32."""
        raise NotImplementedError(f"{self.name} does not predict ratings")

    def explain(self, query: Query, movies: np.ndarray) -> list[str | None]:
        """A short reason per recommended movie index, ``None`` where the model has none."""
        return [None] * len(movies)

    def movie_embeddings(self) -> np.ndarray | None:
        """The model's own movie vectors, float32 ``(n_movies, d)``, row ``i`` for movie *index*
        ``i``: the space in which its neighbours are measured, by cosine
        (:func:`movierec.serving.similar.nearest_movies`); ``None`` (the default) for a model
        without any (popularity, item / user kNN, EASE, transitions, the hybrid). A fresh
        array: changing it leaves the model alone.

        Not the sequence models' ``item_vectors`` (their output head, with its bias, for
        maximum-inner-product retrieval). Raises :class:`NotFittedError` before ``fit``/load
        in a model that has them.
        """
        return None

    # -------------------------------------------------------------- persistence
    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays to persist (numeric numpy arrays only)."""

    @abstractmethod
    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`; vocabularies and config are already set."""

    def _check_fitted(self) -> None:
        if self.movies is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
