"""The ``session`` protocol, the page's task: users split into train / validation / test, a
test user's first k likes are a new visitor's session and the rest of their likes the truth;
``session-tags`` gives the session's heaviest tags as liked tags too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from movierec.data import splits
from movierec.data.dataset import Dataset
from movierec.evaluation import metrics as M
from movierec.evaluation.beyond_accuracy import coverage, popularity_percentile
from movierec.evaluation.protocol_base import (
    BATCH_USERS,
    Prepared,
    Protocol,
    ndcg_curve,
    size_key,
    split_size_key,
    train_popularity,
)
from movierec.evaluation.session import clicks_to_relevant, summarise_clicks
from movierec.models.base import LIKE, Query, Recommender, feedback_thresholds
from movierec.topn import top_n, top_per_row

__all__ = ["SessionProtocol", "TagSessionProtocol"]


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
        pop = train_popularity(prepared.train)
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
                per_user[size_key(f"popularity@{k}", size)] = popularity_percentile(ranked, pop, k)
                scalars[size_key(f"coverage@{k}", size)] = coverage(ranked, prepared.data.n_movies, k)
            curves[size_key("rec_popularity", size)] = pop[ranked[ranked >= 0]]
            if size == self.session_sizes[0]:
                curves["ndcg_at"] = ndcg_curve(ranked, relevant, k_max)
        # averages over the sizes, per user (per-user arrays) and overall (scalars)
        for key in [k for k in per_user if k.endswith(f"[k={self.session_sizes[0]}]")]:
            name = split_size_key(key)[0]
            per_user[name] = np.mean([per_user[size_key(name, s)] for s in self.session_sizes], axis=0)
        for key in [k for k in scalars if k.endswith(f"[k={self.session_sizes[0]}]")]:
            name = split_size_key(key)[0]
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
