"""The recommendation engine behind the web app: built once at start-up, then
asked for a session's movies and tags, and for movies similar to one movie.

It maps external movie ids / tag names to the model's indices, builds a
:class:`~movierec.models.base.Query`, and leaves exclusion, filters and the
popularity fallback to :func:`movierec.ranking.recommend` (the one place that
does them). It never touches the database: callers pass plain values in and
get plain JSON-ready dicts out, so it can run in a worker thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np
import scipy.sparse as sp

from movierec.asking import (
    TOP_M,
    Question,
    QuestionSpace,
    apply_answer,
    candidate_questions,
    choose_question,
    question_space,
)
from movierec.data.dataset import Dataset
from movierec.models.base import Query, Recommender
from movierec.ranking import Catalog, Filters, Recommendations, Retrieval, recommend, supports_retrieval
from movierec.retrieval import MipsConfig

log = logging.getLogger(__name__)

__all__ = [
    "ANN_MIN_MOVIES",
    "CARD_FIELDS",
    "CHANGE_ITEMS",
    "Engine",
    "LRUCache",
    "SessionLike",
    "filters_from_dict",
    "session_key",
]

#: Default catalogue size from which :class:`Engine` ranks through an ANN index.
ANN_MIN_MOVIES = 200_000

#: Catalogue columns a movie card shows (``service.schemas.Movie`` less score and reason).
CARD_FIELDS = (
    "movie_id",
    "title",
    "display_title",
    "year",
    "genres",
    "mean_rating",
    "rating",
    "rating_count",
    "poster_path",
    "overview",
)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """A thread-safe least-recently-used map of at most ``maxsize`` entries (0 = cache nothing).

    :meth:`get_or_compute` runs the computation outside the lock, so two threads
    missing the same key at once may both compute it (the results are equal).
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        """The value cached under ``key`` (now most recently used), or ``None``."""
        with self._lock:
            if key not in self._data:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` under ``key`` (dropping the least recently used beyond ``maxsize``)."""
        if not self.maxsize:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        """The value cached under ``key``, or ``compute()`` (then cached)."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
        value = compute()
        self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def query_key(query: Query) -> Hashable:
    """Everything a model's scores for ``query`` depend on (movies, feedback, tags, user), hashable."""
    return (
        query.movies.tobytes(),
        query.feedback.tobytes(),
        query.liked_tags.tobytes(),
        query.disliked_tags.tobytes(),
        query.user,
    )


class RememberedScores:
    """``model`` with its ``score`` / ``score_tags`` rows remembered by :func:`query_key`.

    A session whose filters (or list lengths asked for) change gets a fresh
    ranking with no model call: the raw scores of its movies and tags do not
    depend on the filters, only the ranking does. Every other attribute is the
    model's. At most ``maxsize`` rows of each kind are kept (a row is
    ``n_movies`` or ``n_tags`` float32 values).
    """

    def __init__(self, model: Recommender, maxsize: int) -> None:
        self._model = model
        self._rows: dict[str, LRUCache[Hashable, np.ndarray]] = {
            "movies": LRUCache(maxsize),
            "tags": LRUCache(maxsize),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _scores(self, queries: Sequence[Query], kind: str) -> np.ndarray:
        cache = self._rows[kind]
        keys = [query_key(q) for q in queries]
        rows: list[np.ndarray | None] = [cache.get(k) for k in keys]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            sub = [queries[i] for i in missing]
            fresh = self._model.score(sub) if kind == "movies" else self._model.score_tags(sub)
            for j, i in enumerate(missing):
                rows[i] = row = fresh[j].copy()  # not a view that pins the whole batch
                cache.put(keys[i], row)
        width = self._model.n_movies if kind == "movies" else self._model.n_tags
        if not rows:
            return np.zeros((0, width), np.float32)
        return np.stack([r for r in rows if r is not None])

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        return self._scores(queries, "movies")

    def score_tags(self, queries: Sequence[Query]) -> np.ndarray:
        return self._scores(queries, "tags")


class SessionLike(Protocol):
    """What the engine reads from a stored session (``storage.sessions.SessionState``); a
    ``favourites`` sequence of movie ids, when there is one, is left out of the answers."""

    @property
    def liked(self) -> Sequence[int]: ...
    @property
    def disliked(self) -> Sequence[int]: ...
    @property
    def liked_tags(self) -> Sequence[str]: ...
    @property
    def disliked_tags(self) -> Sequence[str]: ...
    @property
    def filters(self) -> Mapping[str, Any]: ...


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ m)


def _favourites(state: SessionLike) -> Sequence[int]:
    return getattr(state, "favourites", None) or ()


def session_key(state: SessionLike) -> tuple[Hashable, ...]:
    """Everything in a session that its recommendations depend on, as a hashable key.

    Two sessions with equal keys get equal recommendations from one engine, so the key is
    the session's state version (favourites count: they are left out of the answers).
    """
    return (
        tuple(int(m) for m in _favourites(state)),
        tuple(int(m) for m in state.liked),
        tuple(int(m) for m in state.disliked),
        tuple(str(t) for t in state.liked_tags),
        tuple(str(t) for t in state.disliked_tags),
        json.dumps(state.filters or {}, sort_keys=True, default=str),
    )


#: how an answer's change (:meth:`Engine.answer_change`) becomes session items, in this order:
#: (item kind, key of the change, feedback)
CHANGE_ITEMS: tuple[tuple[Literal["movie", "tag"], str, Literal["like", "dislike"]], ...] = (
    ("movie", "dislike_movies", "dislike"),
    ("movie", "like_movies", "like"),
    ("tag", "dislike_tags", "dislike"),
    ("tag", "like_tags", "like"),
)


def changed_filters(filters: Mapping[str, Any] | None, change: Mapping[str, Any]) -> dict[str, Any]:
    """A session's filters after an answer's change: its year bounds and genres, where set."""
    out = dict(filters or {})
    for key in ("year_min", "year_max"):
        if change.get(key) is not None:
            out[key] = change[key]
    if change.get("genres"):
        out["genres"] = list(change["genres"])
    return out


def filters_from_dict(raw: Mapping[str, Any] | None, catalog: Catalog) -> tuple[Filters, list[str]]:
    """:class:`Filters` of a session's stored filter dict, and notes on what was ignored.

    Keys: ``min_rating`` (float), ``year_min``, ``year_max`` (int), ``genres``
    (list of names). Genres the catalogue does not know are dropped with a note. (A ``text``
    key, the taste in words, is no filter: the engine hands it to the model's query.)
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
    cards:
        Optional movie cards by external movie id (the :data:`CARD_FIELDS` of each
        catalogue row, ``genres`` a list), so that the web app builds its answers
        without a database read; ``None`` when built from a :class:`Dataset`.
    cache_size:
        Most results :meth:`recommend` and :meth:`similar` each remember (0: none).
        Results depend only on the engine and their arguments, so the cache never
        goes stale; a new engine (a reloaded model) starts empty.
    ann_min_movies:
        From this many movies on, and when the model offers ``query_vectors`` /
        ``item_vectors``, the engine builds an approximate nearest-neighbour index at
        construction and :meth:`recommend` takes its top N from it (exact re-scoring of
        the candidates) instead of scoring every movie; ``0`` never does. Without FAISS
        it logs a warning and scores exactly.
    ann_config:
        How to build that index (default ``MipsConfig()``: IVF).
    ann_candidates:
        Candidates per query before exclusions and filters (``None``: ``max(4 * n, 100)``).
    """

    model: Recommender
    catalog: Catalog
    movie_tags: sp.csr_matrix
    titles: np.ndarray
    interactions: sp.csr_matrix | None = None
    cards: dict[int, dict[str, Any]] | None = None
    cache_size: int = 2048
    #: raw model score rows remembered per session content (see :class:`RememberedScores`)
    score_cache_size: int = 256
    ann_min_movies: int = ANN_MIN_MOVIES
    ann_config: MipsConfig | None = None
    ann_candidates: int | None = None
    _retrieval: Retrieval | None = field(init=False, repr=False)
    _profiles: sp.csr_matrix = field(init=False, repr=False)
    _item_vectors: sp.csr_matrix = field(init=False, repr=False)
    _movie_pos: dict[int, int] = field(init=False, repr=False)
    _tag_pos: dict[str, int] = field(init=False, repr=False)
    _recommended: LRUCache[Hashable, dict[str, Any]] = field(init=False, repr=False)
    _similar: LRUCache[Hashable, list[dict[str, Any]]] = field(init=False, repr=False)
    _scoring: RememberedScores = field(init=False, repr=False)

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
        assert self.model.movies is not None
        # plain dicts: a lookup of a few ids costs microseconds, not a pandas indexer call
        self._movie_pos = {int(m): i for i, m in enumerate(self.model.movies.ids.tolist())}
        tags = self.model.tags
        self._tag_pos = {str(t): i for i, t in enumerate(tags.ids.tolist())} if tags is not None else {}
        self._recommended = LRUCache(self.cache_size)
        self._similar = LRUCache(self.cache_size)
        self._scoring = RememberedScores(self.model, self.score_cache_size)
        self._retrieval = self._build_retrieval()
        self._question_space: QuestionSpace | None = None

    def _build_retrieval(self) -> Retrieval | None:
        """The ANN index for :meth:`recommend`, or ``None`` (small catalogue, no vectors, no FAISS)."""
        if self.ann_min_movies < 0:
            raise ValueError(f"ann_min_movies must be >= 0 (0 disables the index), got {self.ann_min_movies}")
        n = self.model.n_movies
        if not self.ann_min_movies or n < self.ann_min_movies or not supports_retrieval(self.model):
            return None
        start = time.perf_counter()
        try:
            retrieval = Retrieval.build(
                self.model,
                self.ann_config,
                rng=np.random.default_rng(0),  # the same model always gets the same index
                n_candidates=self.ann_candidates,
            )
        except ImportError as exc:
            log.warning("%s; scoring all %d movies exactly instead of through an ANN index", exc, n)
            return None
        log.info(
            "built a %s ANN index over %d movies in %.2f s",
            retrieval.index.config.kind,
            n,
            time.perf_counter() - start,
        )
        return retrieval

    @property
    def retrieval(self) -> Retrieval | None:
        """The ANN index :meth:`recommend` ranks through, or ``None`` when it scores every movie."""
        return self._retrieval

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dataset(
        cls,
        model: Recommender,
        data: Dataset,
        *,
        ann_min_movies: int = ANN_MIN_MOVIES,
        ann_config: MipsConfig | None = None,
        ann_candidates: int | None = None,
    ) -> Engine:
        """Engine over ``model`` with catalogue, tags and interactions taken from ``data``.

        ``data`` may hold other movies than the model; rows are aligned by movie id
        (movies the data lacks get empty rows). The ``ann_*`` options are the attributes.
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
        rating = np.full(n, np.nan, np.float32)
        rating[have] = full.rating[didx[have]]
        count = np.zeros(n, np.int64)
        count[have] = full.rating_count[didx[have]]
        catalog = Catalog(
            year=year,
            mean_rating=mean,
            rating=rating,
            rating_count=count,
            genres=genres,
            genre_names=full.genre_names,
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
            model=model,
            catalog=catalog,
            movie_tags=movie_tags,
            titles=titles,
            interactions=interactions,
            ann_min_movies=ann_min_movies,
            ann_config=ann_config,
            ann_candidates=ann_candidates,
        )

    @classmethod
    def from_rows(
        cls,
        model: Recommender,
        rows: Iterable[Mapping[str, Any]],
        *,
        ann_min_movies: int = ANN_MIN_MOVIES,
        ann_config: MipsConfig | None = None,
        ann_candidates: int | None = None,
    ) -> Engine:
        """Engine over ``model`` from catalogue rows (dicts as the storage layer returns them).

        Each row needs ``movie_id``; optional ``display_title``, ``year``, ``genres``
        (list of str), ``mean_rating``, ``rating`` (the shrunk mean; ``mean_rating`` if absent),
        ``rating_count`` and ``tags`` (list of str, or of
        dicts with ``tag``/``name`` and ``weight``). Genres count as tags too. Movies of the
        model missing from ``rows`` get empty rows (never recommended by filters on year).
        The ``ann_*`` options are the attributes.
        """
        model._check_fitted()
        assert model.movies is not None
        n = model.n_movies
        rows = list(rows)
        ids = np.asarray([int(r["movie_id"]) for r in rows], np.int64)
        idx = model.movies.index(ids, missing="mask") if len(ids) else np.zeros(0, np.int64)
        year = np.zeros(n, np.int32)
        mean = np.full(n, np.nan, np.float32)
        rating = np.full(n, np.nan, np.float32)
        count = np.zeros(n, np.int64)
        titles = np.full(n, "", dtype=object)
        genre_names = sorted({str(g) for r in rows for g in (r.get("genres") or ())})
        gcol = {g: i for i, g in enumerate(genre_names)}
        genres = np.zeros((n, len(genre_names)), bool)
        t_rows: list[int] = []
        t_names: list[str] = []
        t_weights: list[float] = []
        cards = {int(r["movie_id"]): {k: r.get(k) for k in CARD_FIELDS if r.get(k) is not None} for r in rows}
        for row, i in zip(rows, idx.tolist(), strict=True):
            if i < 0:
                continue
            year[i] = int(row.get("year") or 0)
            mr = row.get("mean_rating")
            mean[i] = np.nan if mr is None else float(mr)
            shrunk = row.get("rating", mr)
            rating[i] = np.nan if shrunk is None else float(shrunk)
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
            year=year,
            mean_rating=mean,
            rating=rating,
            rating_count=count,
            genres=genres,
            genre_names=tuple(genre_names),
        )
        return cls(
            model=model,
            catalog=catalog,
            movie_tags=movie_tags,
            titles=titles,
            cards=cards,
            ann_min_movies=ann_min_movies,
            ann_config=ann_config,
            ann_candidates=ann_candidates,
        )

    # ---------------------------------------------------------------- lookups
    @property
    def genre_names(self) -> tuple[str, ...]:
        return self.catalog.genre_names

    def knows_movie(self, movie_id: int) -> bool:
        """Whether ``movie_id`` (external) is in the model's vocabulary."""
        return int(movie_id) in self._movie_pos

    def _movie_indices(self, ids: Sequence[int], notes: list[str], what: str) -> np.ndarray:
        idx = np.asarray([self._movie_pos.get(int(m), -1) for m in ids], np.int64)
        if (idx < 0).any():
            notes.append(
                f"the model does not know {what} movie id(s) {np.asarray(ids)[idx < 0].tolist()}; ignored"
            )
        return idx[idx >= 0]

    def _tag_indices(self, names: Sequence[str], notes: list[str], what: str) -> np.ndarray:
        if not len(names) or not self._tag_pos:
            if len(names):
                notes.append(f"the model knows no tags; {what} tags ignored")
            return np.zeros(0, np.int64)
        idx = np.asarray([self._tag_pos.get(n.strip().lower(), -1) for n in names], np.int64)
        if (idx < 0).any():
            notes.append(
                f"unknown {what} tag(s) {[n for n, i in zip(names, idx, strict=True) if i < 0]}; ignored"
            )
        return idx[idx >= 0]

    # -------------------------------------------------------------- recommend
    def recommend(self, state: SessionLike, n: int = 24, n_tags: int = 12) -> dict[str, Any]:
        """Movies and tags for a session (remembered by :func:`session_key`, ``n`` and ``n_tags``).

        Returns
        -------
        dict
            ``movies``: list of ``{movie_id, score, reason}`` best first;
            ``tags``: list of ``{tag, score}``; ``fallback``: whether the
            popularity fallback was used; ``notes``: what was ignored and why.
            A fresh copy each call: the caller may change it.
        """
        return self.recommend_many([(state, n, n_tags)])[0]

    def recommend_cached(
        self, state: SessionLike, n: int = 24, n_tags: int = 12, *, copy: bool = True
    ) -> dict[str, Any] | None:
        """:meth:`recommend`'s answer if it is remembered, else ``None`` (costs microseconds:
        the web app calls it on the event loop and sends only misses to a worker thread).

        ``copy=False`` returns the remembered answer itself, for callers that only read it.
        """
        rec = self._recommended.get((session_key(state), int(n), int(n_tags)))
        return None if rec is None or not copy else _copy_rec(rec)

    def remember(self, state: SessionLike, n: int, n_tags: int, answer: dict[str, Any]) -> None:
        """Keep ``answer`` as :meth:`recommend`'s answer for ``(state, n, n_tags)`` (an answer
        computed elsewhere: by this engine's twin in the web app's scoring process)."""
        self._recommended.put((session_key(state), int(n), int(n_tags)), answer)

    def recommend_many(
        self, requests: Sequence[tuple[SessionLike, int, int]], *, copy: bool = True
    ) -> list[dict[str, Any]]:
        """:meth:`recommend` for several ``(state, n, n_tags)`` at once, in that order.

        Remembered answers are reused; the rest are scored by the model in one
        batch per distinct ``(n, n_tags)`` (much cheaper per session than one
        call each: the web app batches concurrent requests through here).
        ``copy=False``: the remembered answers themselves, for callers that only read them.
        """
        keys: list[tuple[Hashable, int, int]] = [(session_key(st), int(n), int(k)) for st, n, k in requests]
        out: dict[int, dict[str, Any]] = {}
        todo: dict[tuple[Hashable, int, int], list[int]] = {}  # equal sessions are scored once
        for i, key in enumerate(keys):
            hit = self._recommended.get(key)
            if hit is not None:
                out[i] = hit
            else:
                todo.setdefault(key, []).append(i)
        groups: dict[tuple[int, int], list[tuple[Hashable, int, int]]] = {}
        for key in todo:
            groups.setdefault((key[1], key[2]), []).append(key)
        for (n, n_tags), group in groups.items():
            answers = self._recommend_batch([requests[todo[key][0]][0] for key in group], n, n_tags)
            for key, answer in zip(group, answers, strict=True):
                self._recommended.put(key, answer)
                for i in todo[key]:
                    out[i] = answer
        return [_copy_rec(out[i]) if copy else out[i] for i in range(len(requests))]

    # -------------------------------------------------------------- questions
    @property
    def question_space(self) -> QuestionSpace:
        """What questions are built from (:class:`movierec.asking.QuestionSpace`), made once."""
        if self._question_space is None:
            n_people = len(self.model.users or ())
            self._question_space = question_space(self.catalog, self.movie_tags, self._tag_pos, n_people)
        return self._question_space

    def question(
        self, state: SessionLike, avoid: Sequence[tuple[str, Sequence[int | str]]] = ()
    ) -> dict[str, Any] | None:
        """The question to ask this session next (:mod:`movierec.asking`), ``None`` if there is
        nothing left to ask. ``avoid``: questions (kind, values) not to ask again.

        Returns ``{"kind", "prompt", "values", "options": [{"label", ...}], "gain",
        "probabilities"}``; ``values`` (movie ids, tag names, a year or a genre) and an answer
        go back to :meth:`answer_change`.
        """
        query, filters, _ = self._query(state)
        rec = recommend(
            self._scoring,  # type: ignore[arg-type]
            [query],
            TOP_M,
            catalog=self.catalog,
            filters=filters,
            retrieval=self._retrieval,
        )[0]
        f = state.filters or {}
        asked = []
        for kind, values in avoid:
            try:
                asked.append(Question(kind, self._question_options(kind, values), (), 0.0))  # type: ignore[arg-type]
            except ValueError:
                continue  # a question about something this model does not know: nothing to avoid
        chosen = choose_question(
            candidate_questions(
                rec.movies,
                self.question_space,
                held_movies=query.movies.tolist(),
                held_tags=np.concatenate([query.liked_tags, query.disliked_tags]).tolist(),
                asked=asked,
                year_filtered=f.get("year_min") is not None or f.get("year_max") is not None,
                genre_filtered=bool(f.get("genres")),
            )
        )
        return None if chosen is None else self._question_out(chosen)

    def _question_options(self, kind: str, values: Sequence[int | str]) -> tuple[int | str, ...]:
        """A question's options as indices (movies, tags) or as they are (a year, a genre)."""
        if kind == "movies":
            idx = [self._movie_pos.get(int(v), -1) for v in values]
            if len(idx) != 2 or min(idx) < 0:
                raise ValueError(f"a movie question names two movies the model knows; got {list(values)}")
            return tuple(idx)
        if kind == "tags":
            tags = [self._tag_pos.get(str(v).strip().lower(), -1) for v in values]
            if len(tags) != 2 or min(tags) < 0:
                raise ValueError(f"a tag question names two tags the model knows; got {list(values)}")
            return tuple(tags)
        if kind == "era":
            if len(values) != 1 or not 1800 <= int(values[0]) <= 2200:
                raise ValueError(f"an era question names one year (1800-2200); got {list(values)}")
            return (int(values[0]),)
        if kind == "genre":
            if len(values) != 1 or str(values[0]) not in self.catalog.genre_names:
                raise ValueError(f"a genre question names one genre of {list(self.catalog.genre_names)}")
            return (str(values[0]),)
        raise ValueError(f"unknown question kind {kind!r}; one of movies, tags, era, genre")

    def _question_out(self, q: Question) -> dict[str, Any]:
        assert self.model.movies is not None
        if q.kind == "movies":
            ids = [int(self.model.movies.ids[int(i)]) for i in q.options]
            names = [self._movie_label(int(i)) for i in q.options]
            values: list[int | str] = list(ids)
            options = [{"label": n, "movie_id": m} for n, m in zip(names, ids, strict=True)]
            prompt = f"More like {names[0]} or more like {names[1]}?"
        elif q.kind == "tags":
            assert self.model.tags is not None
            tags = [str(self.model.tags.ids[int(i)]) for i in q.options]
            values = list(tags)
            options = [{"label": f"#{t}", "tag": t} for t in tags]
            prompt = f"In the mood for #{tags[0]} or #{tags[1]}?"
        elif q.kind == "era":
            year = int(q.options[0])
            values = [year]
            options = [
                {"label": f"Before {year}", "year_max": year - 1},
                {"label": f"{year} or later", "year_min": year},
            ]
            prompt = f"Older or newer: before {year}, or {year} and after?"
        else:
            genre = str(q.options[0])
            values = [genre]
            options = [{"label": f"Yes, {genre}", "genre": genre}, {"label": f"No {genre}", "genre": genre}]
            prompt = f"In the mood for {genre}?"
        return {
            "kind": q.kind,
            "prompt": prompt,
            "values": values,
            "options": options,
            "gain": round(q.gain, 4),
            "probabilities": [round(m, 4) for m in q.masses],
        }

    def _movie_label(self, i: int) -> str:
        year = int(self.catalog.year[i])
        return f"{self.titles[i]} ({year})" if year else str(self.titles[i])

    def movie_label(self, movie_id: int) -> str:
        """ "Title (year)" of a movie the model knows (external id)."""
        return self._movie_label(self._movie_pos[int(movie_id)])

    def answer_change(self, kind: str, values: Sequence[int | str], answer: int | str) -> dict[str, Any]:
        """What ``answer`` to the question ``(kind, values)`` does to a session, in ids: keys
        ``like_movies``, ``dislike_movies`` (movie ids), ``like_tags``, ``dislike_tags`` (names),
        ``year_min``, ``year_max``, ``genres``. Raises ``ValueError`` for a question or an
        answer that is not one (:func:`movierec.asking.apply_answer` documents the effects)."""
        options = self._question_options(kind, values)
        genre_tag = self._tag_pos.get(str(options[0]).lower()) if kind == "genre" else None
        change = apply_answer(Question(kind, options, (), 0.0), answer, genre_tag=genre_tag)  # type: ignore[arg-type]
        assert self.model.movies is not None
        tag_ids = self.model.tags.ids if self.model.tags is not None else np.zeros(0, object)

        def tag_name(i: int) -> str:
            return str(tag_ids[i])

        return {
            "like_movies": [int(self.model.movies.ids[i]) for i in change.like_movies],
            "dislike_movies": [int(self.model.movies.ids[i]) for i in change.dislike_movies],
            "like_tags": [tag_name(i) for i in change.like_tags],
            "dislike_tags": [tag_name(i) for i in change.dislike_tags],
            "year_min": change.year_min,
            "year_max": change.year_max,
            "genres": list(change.genres),
        }

    def _query(self, state: SessionLike) -> tuple[Query, Filters, list[str]]:
        """The model's query for a session, its filters (saved movies left out) and notes on
        what was ignored."""
        nt: list[str] = []
        liked = self._movie_indices(list(state.liked), nt, "liked")
        disliked = self._movie_indices(list(state.disliked), nt, "disliked")
        liked_tags = self._tag_indices(list(state.liked_tags), nt, "liked")
        disliked_tags = self._tag_indices(list(state.disliked_tags), nt, "disliked")
        text = (state.filters or {}).get("text")  # the taste in words, kept with the filters
        query = Query.session(
            liked, disliked, liked_tags, disliked_tags, text=text if isinstance(text, str) else None
        )
        f, fnotes = filters_from_dict(state.filters, self.catalog)
        saved = self._movie_indices(list(_favourites(state)), [], "saved")  # unknown ones: no note
        return (
            query,
            (dataclasses.replace(f, exclude=tuple(saved.tolist())) if saved.size else f),
            nt + fnotes,
        )

    def _recommend_batch(self, states: Sequence[SessionLike], n: int, n_tags: int) -> list[dict[str, Any]]:
        """Uncached answers for ``states``: one model call for the whole batch."""
        queries: list[Query] = []
        filters: list[Filters] = []
        notes: list[list[str]] = []
        for state in states:
            q, f, nt = self._query(state)
            queries.append(q)
            filters.append(f)
            notes.append(nt)
        recs = recommend(
            self._scoring,  # type: ignore[arg-type]  # the model, its score rows remembered
            queries,
            n,
            catalog=self.catalog,
            filters=filters,
            n_tags=n_tags,
            retrieval=self._retrieval,
        )
        sims = self._liked_similarity(queries, recs)
        return [
            self._answer(q, rec, nt, n_tags, sim)
            for q, rec, nt, sim in zip(queries, recs, notes, sims, strict=True)
        ]

    def _answer(
        self, query: Query, rec: Recommendations, notes: list[str], n_tags: int, sims: np.ndarray | None
    ) -> dict[str, Any]:
        """The JSON-ready answer for one query's :class:`Recommendations` (ids, reasons, tags)."""
        assert self.model.movies is not None
        movie_ids = self.model.movies.id(rec.movies)
        reasons = self._reasons(query, rec.movies, rec.fallback, sims)
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

    def _liked_similarity(
        self, queries: Sequence[Query], recs: Sequence[Recommendations]
    ) -> list[np.ndarray | None]:
        """Per query, the tag/genre profile cosine ``(k, n_liked)`` float of its recommended
        movies against its liked movies (``None`` where :meth:`_reasons` needs none).

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
        sims = (self._profiles[movies] @ self._profiles[liked].T).toarray()
        a = b = 0
        for i in need:
            k, n = recs[i].movies.size, queries[i].liked.size
            out[i] = sims[a : a + k, b : b + n]
            a, b = a + k, b + n
        return out

    def _reasons(
        self, query: Query, movies: np.ndarray, fallback: bool, sims: np.ndarray | None
    ) -> list[str | None]:
        """One short reason per recommended movie index (``movies`` ``(k,)``); ``sims``:
        :meth:`_liked_similarity`'s block for this query."""
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

        Remembered per ``(movie_id, n)``; a fresh list of fresh dicts each call.

        With training interactions: their item co-occurrence cosine. Without (an engine
        built from the catalogue database): the sum of two standardised scores, the
        model's scores for a session that liked only this movie and the cosine of tag /
        genre profiles. Swap this method to change how the movie view finds neighbours.
        Raises ``KeyError`` for an unknown movie.
        """
        if int(movie_id) not in self._movie_pos:
            raise KeyError(f"unknown movie id {movie_id}")
        found = self._similar.get_or_compute(
            (int(movie_id), int(n)), lambda: self._find_similar(int(movie_id), n)
        )
        return [dict(f) for f in found]

    def _find_similar(self, movie_id: int, n: int) -> list[dict[str, Any]]:
        assert self.model.movies is not None
        i = self._movie_pos[movie_id]
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


def _copy_rec(rec: dict[str, Any]) -> dict[str, Any]:
    """A copy of a remembered :meth:`Engine.recommend` answer that the caller may change."""
    return {
        "movies": [dict(m) for m in rec["movies"]],
        "tags": [dict(t) for t in rec["tags"]],
        "fallback": rec["fallback"],
        "notes": list(rec["notes"]),
    }


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
