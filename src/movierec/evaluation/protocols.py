"""Named, reproducible evaluation protocols.

A protocol does two things: :meth:`Protocol.prepare` splits a data set once
(the same split for every model compared), and :meth:`Protocol.evaluate`
scores one fitted model on that split and returns per-user metric arrays.
:func:`run` ties them together with fitting, timing and bootstrap CIs and
returns a :class:`Result`.

=================  ===========================================================
``rating``         random 10 % of rows (or an ml-100k canonical split); RMSE, MAE
``topn``           every rating positive; per-user random 20 % test; full ranking
                   over all movies minus the user's training items
``topn-sampled``   NCF protocol: latest interaction vs 99 sampled unseen movies;
                   *only* for comparison with papers
``next-item``      last rating test, the one before validation; the model scores
                   the user's history as a query
``next-item-tags`` the same, with the test movie's heaviest tags given as the
                   session's liked tags ("what I want next")
``next-item-untied`` next-item with each user's ratings of one same second in a
                   random (seeded) order instead of the files' movie-id order
``session``        the page's task: users split into train / validation / test;
                   a test user's first k likes (k = 1, 3, 5, 10) are a new
                   visitor's session, the rest of their likes the truth;
                   NDCG / recall / HR at 24, coverage, popularity, and the
                   clicks a simulated visitor needs (``clicks-to-relevant``)
``session-tags``   the same, the session's 3 heaviest tags given as liked tags
=================  ===========================================================

Protocols with session sizes (``session``) report per-user metrics averaged over
the sizes under the plain names (``ndcg@24``) and each size's figures under
``name[k=3]`` keys, gathered in :attr:`Result.by_k`.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from movierec.data import splits
from movierec.data.dataset import Dataset
from movierec.evaluation import metrics as M
from movierec.evaluation.session import clicks_to_relevant, summarise_clicks
from movierec.models.base import (
    LIKE,
    CannotScoreError,
    Query,
    Recommender,
    feedback_from_ratings,
    feedback_thresholds,
)
from movierec.topn import top_n, top_per_row

__all__ = [
    "PROTOCOLS",
    "NextItemProtocol",
    "Prepared",
    "Protocol",
    "RatingProtocol",
    "Result",
    "SampledTopNProtocol",
    "SessionProtocol",
    "TagConditionedNextItemProtocol",
    "TagSessionProtocol",
    "TopNProtocol",
    "UnsupportedError",
    "UntiedNextItemProtocol",
    "compare",
    "feedback_thresholds",
    "get_protocol",
    "run",
]

#: users scored per call of ``score_users`` / ``score``
BATCH_USERS = 512


class UnsupportedError(ValueError):
    """The model cannot be evaluated under this protocol (e.g. no rating predictions)."""


@dataclass
class Prepared:
    """A split made once by :meth:`Protocol.prepare` and shared by all models.

    Attributes
    ----------
    data:
        The full data set.
    train, test:
        Disjoint parts of ``data`` (same vocabularies).
    valid:
        Validation part for early stopping, or ``None``.
    users:
        Evaluated user *indices*, shape ``(n_eval,)`` int64, ascending.
    extra:
        Protocol-specific arrays (e.g. sampled candidates).
    """

    data: Dataset
    train: Dataset
    test: Dataset
    valid: Dataset | None = None
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    split: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """One model evaluated under one protocol.

    Attributes
    ----------
    metrics:
        Mean per metric; keys lower-case with ``@k`` (``ndcg@10``, ``rmse``, ``coverage@10``).
    per_user:
        Per-user values, each shape ``(len(users),)`` float64 aligned with ``users``
        (NaN where a user has no value).
    users:
        User *indices* of the rows of ``per_user``, shape ``(n_eval,)`` int64.
    ci:
        95 % bootstrap interval ``(low, high)`` per metric that has per-user (or per-row) values.
    by_k:
        Per session size ``k`` (protocols with sizes: ``session``), the mean of each metric
        at that size; ``metrics`` then holds the average over the sizes.
    curves:
        Extras for reports: ``ndcg_at`` (NDCG@k for k = 1..max(ks)), ``rec_popularity``
        (training rating count of every recommended movie, top max(ks) of every user).
    supported:
        ``False`` when the model cannot do the protocol; ``message`` says why.
    notes:
        Caveats printed with the result (e.g. that a sampled protocol is only for paper comparison).
    """

    protocol: str
    dataset: str
    model: str
    metrics: dict[str, float] = field(default_factory=dict)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0
    n_users: int = 0
    split: str = ""
    seed: int = 0
    supported: bool = True
    message: str = ""
    notes: list[str] = field(default_factory=list)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    by_k: dict[int, dict[str, float]] = field(default_factory=dict)

    def to_dict(self, *, with_ci: bool = True) -> dict[str, Any]:
        """JSON-able summary (no per-user arrays)."""
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "dataset": self.dataset,
            "model": self.model,
            "metrics": {k: _round(v) for k, v in self.metrics.items()},
            "fit_seconds": round(self.fit_seconds, 3),
            "eval_seconds": round(self.eval_seconds, 3),
            "n_users": self.n_users,
            "split": self.split,
            "seed": self.seed,
            "supported": self.supported,
        }
        if self.by_k:
            out["metrics"]["by_k"] = {
                str(size): {k: _round(v) for k, v in values.items()} for size, values in self.by_k.items()
            }
        if with_ci:
            out["ci"] = {k: [_round(lo), _round(hi)] for k, (lo, hi) in self.ci.items()}
        if self.message:
            out["message"] = self.message
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def _round(x: float) -> float | None:
    return None if not math.isfinite(x) else round(float(x), 6)


# ------------------------------------------------------------------ helpers


def _rows(m: sp.csr_matrix, users: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix(m[users])


def _train_popularity(train: Dataset) -> np.ndarray:
    """Distinct training users per movie, ``(n_movies,)`` int64 (ratings are unique per pair)."""
    return np.asarray(train.movie_popularity, np.int64)


def _genre_features(data: Dataset) -> sp.csr_matrix:
    """Binary movie x genre matrix ``(n_movies, n_genres)`` float32."""
    names = data.genre_names
    col = {g: i for i, g in enumerate(names)}
    genres = data.movie_info["genres"]
    counts = np.fromiter((len(g) for g in genres), np.int64, len(genres))
    cols = np.fromiter((col[g] for gs in genres for g in gs), np.int64, int(counts.sum()))
    rows = np.repeat(np.arange(len(genres)), counts)
    return sp.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, cols)), shape=(data.n_movies, max(len(names), 1))
    )


def _rank_full(
    model: Recommender,
    users: np.ndarray,
    n: int,
    exclude: sp.csr_matrix,
    fallback: np.ndarray,
) -> np.ndarray:
    """Top-``n`` movie indices ``(len(users), n)`` int64 from ``score_users``, excluding ``exclude`` rows."""
    out = np.full((len(users), n), -1, np.int64)
    for start in range(0, len(users), BATCH_USERS):
        batch = users[start : start + BATCH_USERS]
        scores = model.score_users(batch)
        out[start : start + len(batch)], _ = top_n(
            scores, n, exclude=exclude[start : start + len(batch)], fallback=fallback
        )
    return out


def _ndcg_curve(ranked: np.ndarray, relevant: sp.csr_matrix, k_max: int) -> np.ndarray:
    """Mean NDCG@k for k = 1..k_max, shape ``(k_max,)``."""
    hits = M.hits_matrix(ranked[:, :k_max], relevant)
    n_rel = M.count_relevant(relevant)
    keep = n_rel > 0
    return np.array([float(np.nanmean(M.ndcg(hits[keep], n_rel[keep], k))) for k in range(1, k_max + 1)])


def _beyond_accuracy(
    ranked: np.ndarray, prepared: Prepared, ks: tuple[int, ...]
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-user novelty / popularity / diversity and global coverage at each k."""
    pop = _train_popularity(prepared.train)
    n_train_users = max(int(np.count_nonzero(np.diff(prepared.train.user_ptr))), 1)
    pop = np.minimum(pop, n_train_users)
    feats = _genre_features(prepared.data)
    per_user: dict[str, np.ndarray] = {}
    scalars: dict[str, float] = {}
    for k in ks:
        scalars[f"coverage@{k}"] = M.coverage(ranked, prepared.data.n_movies, k)
        per_user[f"novelty@{k}"] = M.novelty(ranked, pop, n_train_users, k)
        per_user[f"popularity@{k}"] = M.popularity_percentile(ranked, pop, k)
        per_user[f"diversity@{k}"] = M.intra_list_diversity(ranked, feats, k)
    return per_user, scalars


# ---------------------------------------------------------------- protocols


class Protocol(ABC):
    """A named evaluation protocol."""

    name: ClassVar[str]
    #: what the protocol measures, one line
    description: ClassVar[str] = ""
    #: caveats attached to every result
    notes: ClassVar[tuple[str, ...]] = ()
    #: ranking cut-offs used when the caller names none
    default_ks: ClassVar[tuple[int, ...]] = (10, 20)

    @abstractmethod
    def prepare(self, data: Dataset, rng: np.random.Generator, *, split: str | None = None) -> Prepared:
        """Split ``data`` once; the result is shared by every model evaluated."""

    def check(self, model: Recommender) -> None:
        """Raise :class:`UnsupportedError` if ``model`` cannot be evaluated here."""
        return None

    @abstractmethod
    def evaluate(
        self, model: Recommender, prepared: Prepared, ks: tuple[int, ...]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
        """Score a fitted model: (per-user arrays aligned with ``prepared.users``,
        scalar metrics without per-user values, curves for reports)."""


class RatingProtocol(Protocol):
    """Rating prediction: RMSE and MAE of :meth:`Recommender.predict` on held-out rows."""

    name = "rating"
    description = "rating prediction on a random 10% of rows (or a canonical ml-100k split)"
    test_ratio = 0.1

    def prepare(self, data: Dataset, rng: np.random.Generator, *, split: str | None = None) -> Prepared:
        if split:
            train, test = splits.canonical(data, split)
        else:
            train, test = splits.random_holdout(data, self.test_ratio, rng)
        users = np.unique(test.user).astype(np.int64)
        return Prepared(data, train, test, users=users, split=split or f"random {self.test_ratio:.0%}")

    def check(self, model: Recommender) -> None:
        if not model.supports_ratings:
            raise UnsupportedError(f"{model.name} does not predict ratings (supports_ratings is False)")

    def evaluate(
        self, model: Recommender, prepared: Prepared, ks: tuple[int, ...]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
        test = prepared.test
        pred = np.asarray(model.predict(test.user.astype(np.int64), test.movie.astype(np.int64)), np.float64)
        if pred.shape != (test.n_ratings,):
            raise ValueError(
                f"{model.name}.predict returned shape {pred.shape}, expected ({test.n_ratings},)"
            )
        pred = np.clip(pred, test.scale.low, test.scale.high)
        err = pred - test.rating
        pos = np.searchsorted(prepared.users, test.user)
        n = np.bincount(pos, minlength=len(prepared.users))
        se = np.bincount(pos, weights=err**2, minlength=len(prepared.users))
        ae = np.bincount(pos, weights=np.abs(err), minlength=len(prepared.users))
        per_user = {"rmse": np.sqrt(se / n), "mae": ae / n}
        scalars = {"rmse": M.rmse(pred, test.rating), "mae": M.mae(pred, test.rating)}
        return per_user, scalars, {"sq_err": err**2, "abs_err": np.abs(err)}


class TopNProtocol(Protocol):
    """Full-catalogue top-N ranking with every rating counted as a positive."""

    name = "topn"
    description = "full ranking over all movies minus training items; per-user random 20% test"
    test_ratio = 0.2

    def prepare(self, data: Dataset, rng: np.random.Generator, *, split: str | None = None) -> Prepared:
        if split:
            train, test = splits.canonical(data, split)
        else:
            train, test = splits.per_user_holdout(data, self.test_ratio, rng)
        users = np.unique(test.user).astype(np.int64)
        return Prepared(data, train, test, users=users, split=split or f"per-user {self.test_ratio:.0%}")

    def evaluate(
        self, model: Recommender, prepared: Prepared, ks: tuple[int, ...]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
        users = prepared.users
        k_max = max(ks)
        exclude = _rows(prepared.train.interactions(), users)
        relevant = _rows(prepared.test.interactions(), users)
        fallback = np.log1p(_train_popularity(prepared.train)).astype(np.float32)
        ranked = _rank_full(model, users, k_max, exclude, fallback)
        per_user = M.ranking_metrics(ranked, relevant, ks)
        extra, scalars = _beyond_accuracy(ranked, prepared, ks)
        per_user.update(extra)
        pop = _train_popularity(prepared.train)
        curves = {
            "ndcg_at": _ndcg_curve(ranked, relevant, k_max),
            "rec_popularity": pop[ranked[ranked >= 0]],
        }
        return per_user, scalars, curves


class SampledTopNProtocol(Protocol):
    """The NCF protocol: rank each user's latest movie among 99 sampled unseen movies."""

    name = "topn-sampled"
    description = "latest interaction ranked against 99 sampled never-rated movies (NCF protocol)"
    notes = (
        "sampled metrics: the test movie is ranked among 99 random unseen movies, not the whole "
        "catalogue; only for comparison with papers that use this protocol",
    )
    n_negatives = 99

    def prepare(self, data: Dataset, rng: np.random.Generator, *, split: str | None = None) -> Prepared:
        if split:
            raise ValueError("topn-sampled uses a leave-latest-out split; --split is not allowed")
        train, _, test = splits.temporal_leave_last(data, n_valid=0, n_test=1)
        users = test.user.astype(np.int64)  # one test row per user, ascending
        seen = _rows(data.interactions(), users)
        n_free = data.n_movies - np.diff(seen.indptr)
        if len(users) and n_free.min() < self.n_negatives:
            raise ValueError(
                f"topn-sampled needs {self.n_negatives} never-rated movies per user; "
                f"a user has only {int(n_free.min())}"
            )
        negatives = np.empty((len(users), self.n_negatives), np.int64)
        for start in range(0, len(users), BATCH_USERS):
            sl = slice(start, start + BATCH_USERS)
            block = seen[sl]
            keys = rng.random((block.shape[0], data.n_movies), dtype=np.float32)
            rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
            keys[rows, block.indices] = np.inf  # never sample a rated movie
            negatives[sl] = np.argpartition(keys, self.n_negatives - 1, axis=1)[:, : self.n_negatives]
        candidates = np.concatenate([test.movie.astype(np.int64)[:, None], negatives], axis=1)
        return Prepared(
            data, train, test, users=users, split="leave latest out", extra={"candidates": candidates}
        )

    def evaluate(
        self, model: Recommender, prepared: Prepared, ks: tuple[int, ...]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
        users = prepared.users
        cand: np.ndarray = prepared.extra["candidates"]  # (n_users, 100), the test movie first
        k_max = min(max(ks), cand.shape[1])
        ranked = np.full((len(users), k_max), -1, np.int64)
        for start in range(0, len(users), BATCH_USERS):
            sl = slice(start, start + BATCH_USERS)
            scores = np.asarray(model.score_users(users[sl]), np.float32)
            c = cand[sl]
            s = np.take_along_axis(scores, c, axis=1)
            s = np.where(np.isnan(s), -np.inf, s)
            order = np.lexsort((c, -s), axis=1)[:, :k_max]  # score desc, ties by movie index
            ranked[sl] = np.take_along_axis(c, order, axis=1)
        relevant = sp.csr_matrix(
            (np.ones(len(users), np.float32), (np.arange(len(users)), cand[:, 0])),
            shape=(len(users), prepared.data.n_movies),
        )
        ks_ok = tuple(k for k in ks if k <= k_max)
        full = M.ranking_metrics(ranked, relevant, ks_ok)
        per_user = {k: v for k, v in full.items() if k.split("@")[0] in ("hr", "ndcg", "mrr")}
        return per_user, {}, {"ndcg_at": _ndcg_curve(ranked, relevant, k_max)}


class NextItemProtocol(Protocol):
    """Next-item prediction from the user's history, scored as a query."""

    name = "next-item"
    description = "last rating per user is test, the one before validation; history scored as a query"

    def prepare(self, data: Dataset, rng: np.random.Generator, *, split: str | None = None) -> Prepared:
        if split:
            raise ValueError("next-item uses a temporal leave-last-out split; --split is not allowed")
        train, valid, test = splits.temporal_leave_last(data, n_valid=1, n_test=1)
        users = test.user.astype(np.int64)
        history = data.subset(~_rows_of(data, test), f"{data.name}:history")
        return Prepared(
            data,
            train,
            test,
            valid=valid,
            users=users,
            split="temporal leave-last (1 valid, 1 test)",
            extra={"history": history},
        )

    def evaluate(
        self, model: Recommender, prepared: Prepared, ks: tuple[int, ...]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
        users = prepared.users
        hist: Dataset = prepared.extra["history"]
        like, dislike = feedback_thresholds(prepared.data)
        feedback = feedback_from_ratings(np.asarray(hist.rating), like, dislike)
        ptr = hist.user_ptr
        k_max = max(ks)
        fallback = np.log1p(_train_popularity(prepared.train)).astype(np.float32)
        ranked = np.full((len(users), k_max), -1, np.int64)
        for start in range(0, len(users), BATCH_USERS):
            batch = users[start : start + BATCH_USERS]
            given = self.given_tags(prepared, batch)
            queries = [
                Query(
                    movies=hist.movie[ptr[u] : ptr[u + 1]],
                    feedback=feedback[ptr[u] : ptr[u + 1]],
                    ratings=hist.rating[ptr[u] : ptr[u + 1]],
                    liked_tags=tags,
                    user=int(u),
                )
                for u, tags in zip(batch, given, strict=True)
            ]
            scores = model.score(queries)
            ranked[start : start + len(batch)], _ = top_n(
                scores, k_max, exclude=[q.movies for q in queries], fallback=fallback
            )
        relevant = _rows(prepared.test.interactions(), users)
        full = M.ranking_metrics(ranked, relevant, ks)
        per_user = {k: v for k, v in full.items() if k.split("@")[0] in ("hr", "ndcg", "mrr")}
        pop = _train_popularity(prepared.train)
        curves = {
            "ndcg_at": _ndcg_curve(ranked, relevant, k_max),
            "rec_popularity": pop[ranked[ranked >= 0]],
        }
        return per_user, {}, curves

    def validation(self, prepared: Prepared) -> Prepared:
        """The same split with the *validation* item as the one to predict, from each user's
        training history; no validation set is handed to ``fit`` (a sequence model then
        early-stops on its own holdout). For tuning: the test item is never looked at."""
        if prepared.valid is None:
            raise ValueError("next-item validation needs a split with a validation item")
        return Prepared(
            prepared.data,
            prepared.train,
            prepared.valid,
            users=prepared.valid.user.astype(np.int64),
            split=f"{prepared.split}, validation item scored",
            extra={"history": prepared.train},
        )

    def given_tags(self, prepared: Prepared, users: np.ndarray) -> list[np.ndarray]:
        """Liked tag *indices* each query carries (none here)."""
        return [np.zeros(0, np.int64)] * len(users)


class TagConditionedNextItemProtocol(NextItemProtocol):
    """Next-item prediction where the visitor also names what they want: the test
    movie's ``n_tags`` heaviest tags are given as the session's liked tags."""

    name = "next-item-tags"
    description = "next-item, with the test movie's 3 heaviest tags given as the session's liked tags"
    n_tags = 3

    def given_tags(self, prepared: Prepared, users: np.ndarray) -> list[np.ndarray]:
        data, test = prepared.data, prepared.test
        target = np.full(data.n_users, -1, np.int64)
        target[test.user.astype(np.int64)] = test.movie
        heaviest = top_per_row(data.movie_tags, self.n_tags)  # padded with n_tags
        return [heaviest[t][heaviest[t] < data.n_tags] if t >= 0 else heaviest[0][:0] for t in target[users]]


class UntiedNextItemProtocol(NextItemProtocol):
    """``next-item`` on :func:`movierec.data.splits.shuffle_ties` data: the ratings a user
    gave in one same second come in a random order (drawn from the protocol's seed), so
    no model can score by learning that, within a second, the next movie id is higher."""

    name = "next-item-untied"
    description = "next-item with each user's ratings of one same second in a random order"

    def prepare(self, data: Dataset, rng: np.random.Generator, *, split: str | None = None) -> Prepared:
        return super().prepare(splits.shuffle_ties(data, rng), rng, split=split)


def size_key(metric: str, size: int) -> str:
    """Key of ``metric`` at session size ``size`` in per-user and scalar dicts: ``"ndcg@24[k=3]"``."""
    return f"{metric}[k={size}]"


def _split_size_key(key: str) -> tuple[str, int | None]:
    """``"ndcg@24[k=3]"`` -> ``("ndcg@24", 3)``; a plain key -> ``(key, None)``."""
    if key.endswith("]") and "[k=" in key:
        name, _, size = key[:-1].rpartition("[k=")
        return name, int(size)
    return key, None


def _indicator(rows: Sequence[np.ndarray], n_cols: int) -> sp.csr_matrix:
    """Binary CSR ``(len(rows), n_cols)`` float32 with row ``i`` set at the indices ``rows[i]``."""
    lens = np.array([r.size for r in rows], np.int64)
    cols = np.concatenate(rows) if len(rows) else np.zeros(0, np.int64)
    return sp.csr_matrix(
        (np.ones(lens.sum(), np.float32), (np.repeat(np.arange(len(rows)), lens), cols)),
        shape=(len(rows), n_cols),
    )


class SessionProtocol(Protocol):
    """The page's task: a new visitor with a handful of likes.

    Users are split into train / validation / test (:func:`movierec.data.splits.user_holdout`,
    after :func:`~movierec.data.splits.shuffle_ties` so that the order within one second
    is not the files' movie-id order), so test visitors are never seen in training. A
    test user's first ``k`` liked movies in time order (``k`` in :attr:`session_sizes`)
    are scored as an anonymous session (``Query(user=None)``; the model folds it in as
    the page would) and the rest of their likes are the truth; full ranking over all
    movies minus the session's. Only test users with more than ``max(session_sizes)``
    likes are evaluated, so every size scores the same users.

    Each user's metrics at each size are kept (``ndcg@24[k=3]``) and averaged over the
    sizes (``ndcg@24``). ``session`` also simulates each test visitor clicking Like
    (:func:`movierec.evaluation.session.clicks_to_relevant`, own movies = the first
    ``max(session_sizes)`` likes, targets = the rest): ``clicks@10`` per user (``11`` =
    not found in 10 clicks), the median and the share found within 3 clicks.

    Models are fitted on the training users only, without a validation set (its users
    are kept in ``prepared.extra["valid"]`` for tuning: :meth:`validation`).
    """

    name = "session"
    description = (
        "new visitors: users split 70/10/20; a test user's first k likes (k=1,3,5,10) are the "
        "session, the rest of their likes the truth"
    )
    #: the page shows 24 movies
    default_ks = (24,)
    #: session sizes (first ``k`` likes)
    session_sizes: tuple[int, ...] = (1, 3, 5, 10)
    valid_ratio = 0.1
    test_ratio = 0.2
    #: the session's heaviest tags given as liked tags (0: none)
    n_tags = 0
    #: simulate clicking visitors (``clicks@10``)
    clicks = True
    #: cut-off and click budget of the simulation
    clicks_k = 10

    def prepare(self, data: Dataset, rng: np.random.Generator, *, split: str | None = None) -> Prepared:
        if split:
            raise ValueError(f"{self.name} splits users at random; --split is not allowed")
        untied = splits.shuffle_ties(data, rng)
        train, valid, test = splits.user_holdout(untied, self.valid_ratio, self.test_ratio, rng)
        users = self._eligible(test)
        prepared = Prepared(
            untied,
            train,
            test,
            users=users,
            split=(
                f"users {1 - self.valid_ratio - self.test_ratio:.0%} train / {self.valid_ratio:.0%} valid / "
                f"{self.test_ratio:.0%} test, first k likes as the session"
            ),
            extra={"valid": valid, "seed": int(rng.integers(0, 2**31))},
        )
        if users.size == 0:
            raise ValueError(
                f"{self.name}: no test user has more than {max(self.session_sizes)} likes in {data.name!r}"
            )
        return prepared

    def validation(self, prepared: Prepared) -> Prepared:
        """The same split with the *validation* users as the evaluated visitors (for tuning;
        the test users are never looked at)."""
        valid: Dataset = prepared.extra["valid"]
        return Prepared(
            prepared.data,
            prepared.train,
            valid,
            users=self._eligible(valid),
            split=prepared.split.replace("test, first", "test (validation users scored), first"),
            extra=dict(prepared.extra),
        )

    def _eligible(self, part: Dataset) -> np.ndarray:
        """User indices ``(n,)`` int64 of ``part`` with more than ``max(session_sizes)`` likes."""
        like, _ = feedback_thresholds(part)
        likes = np.bincount(part.user[part.rating >= like], minlength=part.n_users)
        return np.flatnonzero(likes > max(self.session_sizes)).astype(np.int64)

    def likes(self, prepared: Prepared) -> list[np.ndarray]:
        """Per evaluated user, their liked movie indices in time order, each ``(n_i,)`` int64."""
        part = prepared.test
        like, _ = feedback_thresholds(prepared.data)
        ptr = part.user_ptr
        out = []
        for u in prepared.users:  # per user: one slice each
            rows = slice(ptr[u], ptr[u + 1])
            out.append(part.movie[rows][part.rating[rows] >= like].astype(np.int64))
        return out

    def session_tags(self, prepared: Prepared, sessions: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The ``n_tags`` heaviest tags (training tag weights) over each session's movies."""
        if not self.n_tags:
            return [np.zeros(0, np.int64)] * len(sessions)
        tags = prepared.train.movie_tags
        weight = sp.csr_matrix(_indicator(sessions, tags.shape[0]) @ tags)
        heaviest = top_per_row(weight, self.n_tags)  # padded with n_tags
        return [row[row < tags.shape[1]] for row in heaviest]

    def evaluate(
        self, model: Recommender, prepared: Prepared, ks: tuple[int, ...]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
        users = prepared.users
        likes = self.likes(prepared)
        k_max = max(ks)
        pop = _train_popularity(prepared.train)
        fallback = np.log1p(pop).astype(np.float32)
        per_user: dict[str, np.ndarray] = {}
        scalars: dict[str, float] = {}
        curves: dict[str, np.ndarray] = {}
        for size in self.session_sizes:
            sessions = [lk[:size] for lk in likes]
            given = self.session_tags(prepared, sessions)
            ranked = np.full((len(users), k_max), -1, np.int64)
            for start in range(0, len(users), BATCH_USERS):
                sl = slice(start, start + BATCH_USERS)
                queries = [
                    Query(movies=m, feedback=np.full(m.size, LIKE, np.int8), liked_tags=t)
                    for m, t in zip(sessions[sl], given[sl], strict=True)
                ]
                ranked[sl], _ = top_n(model.score(queries), k_max, exclude=sessions[sl], fallback=fallback)
            relevant = _indicator([lk[size:] for lk in likes], prepared.data.n_movies)
            full = M.ranking_metrics(ranked, relevant, ks)
            for key, values in full.items():
                if key.split("@")[0] in ("hr", "recall", "ndcg"):
                    per_user[size_key(key, size)] = values
            for k in ks:
                per_user[size_key(f"popularity@{k}", size)] = M.popularity_percentile(ranked, pop, k)
                scalars[size_key(f"coverage@{k}", size)] = M.coverage(ranked, prepared.data.n_movies, k)
            curves[size_key("rec_popularity", size)] = pop[ranked[ranked >= 0]]
            if size == self.session_sizes[0]:
                curves["ndcg_at"] = _ndcg_curve(ranked, relevant, k_max)
        # averages over the sizes, per user (per-user arrays) and overall (scalars)
        for key in [k for k in per_user if k.endswith(f"[k={self.session_sizes[0]}]")]:
            name = _split_size_key(key)[0]
            per_user[name] = np.mean([per_user[size_key(name, s)] for s in self.session_sizes], axis=0)
        for key in [k for k in scalars if k.endswith(f"[k={self.session_sizes[0]}]")]:
            name = _split_size_key(key)[0]
            scalars[name] = float(np.mean([scalars[size_key(name, s)] for s in self.session_sizes]))
        if self.clicks:
            clicks = clicks_to_relevant(
                model,
                [lk[: max(self.session_sizes)] for lk in likes],
                [lk[max(self.session_sizes) :] for lk in likes],
                np.random.default_rng(prepared.extra.get("seed", 0)),
                k=self.clicks_k,
                max_clicks=self.clicks_k,
                fallback=fallback,
            )
            per_user[f"clicks@{self.clicks_k}"] = clicks.astype(np.float64)
            summary = summarise_clicks(clicks, self.clicks_k)
            scalars["clicks_median"] = summary["median_clicks"]
            scalars["found_by_3"] = summary["found_by_3"]
        return per_user, scalars, curves


class TagSessionProtocol(SessionProtocol):
    """``session`` with the 3 heaviest tags of the session's movies given as liked tags."""

    name = "session-tags"
    description = "session, with the 3 heaviest tags of the session's movies given as liked tags"
    n_tags = 3
    clicks = False


def _rows_of(data: Dataset, part: Dataset) -> np.ndarray:
    """Bool mask ``(data.n_ratings,)``: rows of ``data`` whose (user, movie) pair is in ``part``."""
    key = data.user.astype(np.int64) * data.n_movies + data.movie
    pkey = part.user.astype(np.int64) * data.n_movies + part.movie
    return np.isin(key, pkey)


PROTOCOLS: dict[str, type[Protocol]] = {
    p.name: p
    for p in (
        RatingProtocol,
        TopNProtocol,
        SampledTopNProtocol,
        NextItemProtocol,
        TagConditionedNextItemProtocol,
        UntiedNextItemProtocol,
        SessionProtocol,
        TagSessionProtocol,
    )
}


def get_protocol(name: str) -> Protocol:
    """A new protocol object by name; :class:`ValueError` listing the names otherwise."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]()


# ----------------------------------------------------------------- running


def run(
    model: Recommender,
    protocol: Protocol,
    prepared: Prepared,
    *,
    fit_rng: np.random.Generator,
    stats_rng: np.random.Generator,
    ks: tuple[int, ...] | None = None,
    model_name: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Result:
    """Fit ``model`` on ``prepared.train`` (validation passed for early stopping) and evaluate it.

    A model that cannot do the protocol gives a :class:`Result` with
    ``supported=False`` and a message instead of raising.
    """
    ks = tuple(sorted({int(k) for k in (protocol.default_ks if ks is None else ks)}))
    if not ks or ks[0] < 1:
        raise ValueError(f"cut-offs must be positive integers, got {ks}")
    result = Result(
        protocol=protocol.name,
        dataset=prepared.data.name,
        model=model_name or model.name,
        split=prepared.split,
        seed=seed,
        n_users=len(prepared.users),
        notes=list(protocol.notes),
    )
    try:
        protocol.check(model)
    except UnsupportedError as exc:
        result.supported, result.message = False, str(exc)
        return result
    start = time.perf_counter()
    model.fit(prepared.train, fit_rng, valid=prepared.valid)
    result.fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    try:
        per_user, scalars, curves = protocol.evaluate(model, prepared, ks)
    except (NotImplementedError, CannotScoreError) as exc:
        result.supported, result.message = False, f"{model.name} cannot be evaluated: {exc}"
        return result
    result.eval_seconds = time.perf_counter() - start
    result.users = prepared.users
    result.per_user = per_user
    means = {k: float(np.nanmean(v)) if np.any(~np.isnan(v)) else math.nan for k, v in per_user.items()}
    for key, value in {**means, **scalars}.items():
        name, size = _split_size_key(key)
        if size is None:
            result.metrics[key] = value
        else:
            result.by_k.setdefault(size, {})[name] = value
    if protocol.name == "rating":
        lo, hi = M.bootstrap_ci(curves["sq_err"], stats_rng, n_resamples)[1:]
        result.ci["rmse"] = (math.sqrt(lo), math.sqrt(hi))
        result.ci["mae"] = M.bootstrap_ci(curves["abs_err"], stats_rng, n_resamples)[1:]
    else:
        for key, values in per_user.items():
            if np.any(~np.isnan(values)):
                result.ci[key] = M.bootstrap_ci(values, stats_rng, n_resamples)[1:]
        result.curves = curves
    return result


def compare(
    a: Result, b: Result, metric: str, rng: np.random.Generator, n_resamples: int = 1000
) -> dict[str, float]:
    """Paired comparison of two results on their common users for ``metric``.

    Returns :func:`movierec.evaluation.metrics.paired_comparison`'s dict
    (``mean_diff`` is ``a - b``, with CI and a sign-flip p-value).
    """
    if a.protocol != b.protocol or a.dataset != b.dataset:
        raise ValueError(f"results are not comparable: {a.protocol}/{a.dataset} vs {b.protocol}/{b.dataset}")
    if metric not in a.per_user or metric not in b.per_user:
        raise ValueError(f"metric {metric!r} has no per-user values in both results")
    common, ia, ib = np.intersect1d(a.users, b.users, return_indices=True)
    if common.size == 0:
        raise ValueError("the results share no users")
    return M.paired_comparison(a.per_user[metric][ia], b.per_user[metric][ib], rng, n_resamples)
