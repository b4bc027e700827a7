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

This module holds the rating and top-N protocols, the registry (:data:`PROTOCOLS`) and
:func:`run`; the shared base (:class:`Protocol`, :class:`Prepared`, :class:`Result`) is in
:mod:`movierec.evaluation.protocol_base`, the next-item protocols in
:mod:`movierec.evaluation.next_item` and the session protocols in
:mod:`movierec.evaluation.session_protocol`; all are importable from here.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp

from movierec.data import splits
from movierec.data.dataset import Dataset
from movierec.evaluation import metrics as M
from movierec.evaluation.beyond_accuracy import coverage, intra_list_diversity, novelty, popularity_percentile
from movierec.evaluation.next_item import (
    NextItemProtocol,
    TagConditionedNextItemProtocol,
    UntiedNextItemProtocol,
)
from movierec.evaluation.protocol_base import (
    BATCH_USERS,
    Prepared,
    Protocol,
    Result,
    UnsupportedError,
    ndcg_curve,
    split_size_key,
    train_popularity,
    user_rows,
)
from movierec.evaluation.session_protocol import SessionProtocol, TagSessionProtocol
from movierec.evaluation.statistics import bootstrap_ci, paired_comparison
from movierec.models.base import CannotScoreError, Recommender, feedback_thresholds
from movierec.topn import top_n

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

# ------------------------------------------------------------------ helpers


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


def _beyond_accuracy(
    ranked: np.ndarray, prepared: Prepared, ks: tuple[int, ...]
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-user novelty / popularity / diversity and global coverage at each k."""
    pop = train_popularity(prepared.train)
    n_train_users = max(int(np.count_nonzero(np.diff(prepared.train.user_ptr))), 1)
    pop = np.minimum(pop, n_train_users)
    feats = _genre_features(prepared.data)
    per_user: dict[str, np.ndarray] = {}
    scalars: dict[str, float] = {}
    for k in ks:
        scalars[f"coverage@{k}"] = coverage(ranked, prepared.data.n_movies, k)
        per_user[f"novelty@{k}"] = novelty(ranked, pop, n_train_users, k)
        per_user[f"popularity@{k}"] = popularity_percentile(ranked, pop, k)
        per_user[f"diversity@{k}"] = intra_list_diversity(ranked, feats, k)
    return per_user, scalars


# ---------------------------------------------------------------- protocols


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
        exclude = user_rows(prepared.train.interactions(), users)
        relevant = user_rows(prepared.test.interactions(), users)
        fallback = np.log1p(train_popularity(prepared.train)).astype(np.float32)
        ranked = _rank_full(model, users, k_max, exclude, fallback)
        per_user = M.ranking_metrics(ranked, relevant, ks)
        extra, scalars = _beyond_accuracy(ranked, prepared, ks)
        per_user.update(extra)
        pop = train_popularity(prepared.train)
        curves = {
            "ndcg_at": ndcg_curve(ranked, relevant, k_max),
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
        seen = user_rows(data.interactions(), users)
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
        return per_user, {}, {"ndcg_at": ndcg_curve(ranked, relevant, k_max)}


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
        name, size = split_size_key(key)
        if size is None:
            result.metrics[key] = value
        else:
            result.by_k.setdefault(size, {})[name] = value
    if protocol.name == "rating":
        lo, hi = bootstrap_ci(curves["sq_err"], stats_rng, n_resamples)[1:]
        result.ci["rmse"] = (math.sqrt(lo), math.sqrt(hi))
        result.ci["mae"] = bootstrap_ci(curves["abs_err"], stats_rng, n_resamples)[1:]
    else:
        for key, values in per_user.items():
            if np.any(~np.isnan(values)):
                result.ci[key] = bootstrap_ci(values, stats_rng, n_resamples)[1:]
        result.curves = curves
    return result


def compare(
    a: Result, b: Result, metric: str, rng: np.random.Generator, n_resamples: int = 1000
) -> dict[str, float]:
    """Paired comparison of two results on their common users for ``metric``.

    Returns :func:`movierec.evaluation.statistics.paired_comparison`'s dict
    (``mean_diff`` is ``a - b``, with CI and a sign-flip p-value).
    """
    if a.protocol != b.protocol or a.dataset != b.dataset:
        raise ValueError(f"results are not comparable: {a.protocol}/{a.dataset} vs {b.protocol}/{b.dataset}")
    if metric not in a.per_user or metric not in b.per_user:
        raise ValueError(f"metric {metric!r} has no per-user values in both results")
    common, ia, ib = np.intersect1d(a.users, b.users, return_indices=True)
    if common.size == 0:
        raise ValueError("the results share no users")
    return paired_comparison(a.per_user[metric][ia], b.per_user[metric][ib], rng, n_resamples)
