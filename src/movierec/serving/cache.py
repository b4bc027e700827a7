"""Caches of the engine: a thread-safe LRU map, and a model whose score rows are remembered."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

import numpy as np

from movierec.models.base import Query, Recommender

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
    """A model's ``score`` / ``score_tags`` rows remembered by :func:`query_key`
    (:class:`movierec.ranking.ScoreRows`, handed to :func:`movierec.ranking.recommend`).

    A session whose filters (or list lengths asked for) change gets a fresh
    ranking with no model call: the raw scores of its movies and tags do not
    depend on the filters, only the ranking does. One instance serves one model
    (an engine's); at most ``maxsize`` rows of each kind are kept (a row is
    ``n_movies`` or ``n_tags`` float32 values).
    """

    def __init__(self, maxsize: int) -> None:
        self._rows: dict[str, LRUCache[Hashable, np.ndarray]] = {
            "movies": LRUCache(maxsize),
            "tags": LRUCache(maxsize),
        }

    def _scores(self, model: Recommender, queries: Sequence[Query], kind: str) -> np.ndarray:
        cache = self._rows[kind]
        keys = [query_key(q) for q in queries]
        rows: list[np.ndarray | None] = [cache.get(k) for k in keys]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            sub = [queries[i] for i in missing]
            fresh = model.score(sub) if kind == "movies" else model.score_tags(sub)
            for j, i in enumerate(missing):
                rows[i] = row = fresh[j].copy()  # not a view that pins the whole batch
                cache.put(keys[i], row)
        width = model.n_movies if kind == "movies" else model.n_tags
        if not rows:
            return np.zeros((0, width), np.float32)
        return np.stack([r for r in rows if r is not None])

    def score(self, model: Recommender, queries: Sequence[Query]) -> np.ndarray:
        return self._scores(model, queries, "movies")

    def score_tags(self, model: Recommender, queries: Sequence[Query]) -> np.ndarray:
        return self._scores(model, queries, "tags")
