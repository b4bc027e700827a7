"""The next-item protocols: each user's last rating is the test, the one before validation,
and the model scores the user's history as a query (``next-item``); the same with the test
movie's heaviest tags given as liked tags (``next-item-tags``), or with ratings of one same
second in a random order (``next-item-untied``).
"""

from __future__ import annotations

import numpy as np

from movierec.data import splits
from movierec.data.dataset import Dataset
from movierec.evaluation import metrics as M
from movierec.evaluation.protocol_base import (
    BATCH_USERS,
    Prepared,
    Protocol,
    ndcg_curve,
    train_popularity,
    user_rows,
)
from movierec.models.base import Query, Recommender, feedback_from_ratings, feedback_thresholds
from movierec.topn import top_n, top_per_row

__all__ = ["NextItemProtocol", "TagConditionedNextItemProtocol", "UntiedNextItemProtocol"]


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
        fallback = np.log1p(train_popularity(prepared.train)).astype(np.float32)
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
        relevant = user_rows(prepared.test.interactions(), users)
        full = M.ranking_metrics(ranked, relevant, ks)
        per_user = {k: v for k, v in full.items() if k.split("@")[0] in ("hr", "ndcg", "mrr")}
        pop = train_popularity(prepared.train)
        curves = {
            "ndcg_at": ndcg_curve(ranked, relevant, k_max),
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


def _rows_of(data: Dataset, part: Dataset) -> np.ndarray:
    """Bool mask ``(data.n_ratings,)``: rows of ``data`` whose (user, movie) pair is in ``part``."""
    key = data.user.astype(np.int64) * data.n_movies + data.movie
    pkey = part.user.astype(np.int64) * data.n_movies + part.movie
    return np.isin(key, pkey)
