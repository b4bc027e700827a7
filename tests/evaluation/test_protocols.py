"""Protocols on a planted data set where a test-only oracle ranks perfectly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.evaluation.metrics import ranking_metrics
from movierec.evaluation.protocols import (
    PROTOCOLS,
    Prepared,
    Protocol,
    Result,
    TagConditionedNextItemProtocol,
    UntiedNextItemProtocol,
    feedback_thresholds,
    get_protocol,
    run,
)
from movierec.evaluation.protocols import compare as compare_results
from movierec.models.base import DISLIKE, LIKE, SEEN, Query, Recommender
from movierec.models.popularity import Popularity
from movierec.topn import top_n

N_USERS, N_MOVIES, PER_USER = 40, 150, 15


def planted(seed: int = 0, *, with_tags: bool = False) -> Dataset:
    """Three taste groups, each rating 15 of its own 50 movies; shuffled distinct timestamps.

    Movie ids are ``10 * (index + 1)``, user ids ``index + 1000``. With ``with_tags`` every
    movie carries its own tag ``own<i>`` (applied 3 times) and its group's ``group<g>`` (once).
    """
    rng = np.random.default_rng(seed)
    group = np.arange(N_USERS) % 3
    picks = np.argsort(rng.random((N_USERS, 50)), axis=1)[:, :PER_USER] + 50 * group[:, None]
    user = np.repeat(np.arange(N_USERS), PER_USER)
    ratings = pd.DataFrame(
        {
            "userId": user + 1000,
            "movieId": 10 * (picks.ravel() + 1),
            "rating": rng.integers(1, 11, user.size) / 2.0,
            "timestamp": rng.permutation(user.size) + 10_000,
        }
    )
    genres = np.array(["Action", "Comedy|Drama", "Drama", ""], dtype=object)
    movies = pd.DataFrame(
        {
            "movieId": 10 * (np.arange(N_MOVIES) + 1),
            "title": [f"Movie {i} (2001)" for i in range(N_MOVIES)],
            "genres": genres[np.arange(N_MOVIES) % 4],
        }
    )
    tags = None
    if with_tags:
        ids = np.tile(10 * (np.arange(N_MOVIES) + 1), 4)
        names = [f"own{i}" for i in range(N_MOVIES)] * 3 + [f"group{i // 50}" for i in range(N_MOVIES)]
        tags = pd.DataFrame({"userId": 1000, "movieId": ids, "tag": names, "timestamp": np.arange(ids.size)})
    return Dataset.build("planted", ratings, movies, tags=tags)


@dataclass
class OracleConfig:
    """No settings."""


class Oracle(Recommender):
    """Test-only model: knows the test set. Scores held (train) movies 2, test movies 1, rest 0,
    so it ranks perfectly only if training items are excluded."""

    name = "oracle"
    Config = OracleConfig
    supports_ratings = True

    def __init__(self, truth: Dataset) -> None:
        super().__init__()
        self.truth = truth.interactions(values="rating")
        self.queries: list[Query] = []
        self.valid: Dataset | None = None

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        self.valid = valid

    def _scores(self, users: np.ndarray) -> np.ndarray:
        assert self._train is not None
        held = self._train[users].toarray()
        return (2.0 * (held > 0) + (self.truth[users].toarray() > 0)).astype(np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return self._scores(np.asarray(users))

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        self.queries.extend(queries)
        out = self._scores(np.array([q.user for q in queries]))
        for i, q in enumerate(queries):
            out[i, q.movies] = 3.0  # history scored highest: must be excluded by the protocol
        return out

    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        return np.asarray(self.truth[users, movies], np.float32).ravel()

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        return None


def _run(protocol: Protocol, prepared: Prepared, model: Recommender, ks: tuple[int, ...] = (5, 10)) -> Result:
    return run(
        model,
        protocol,
        prepared,
        fit_rng=np.random.default_rng(0),
        stats_rng=np.random.default_rng(1),
        ks=ks,
        n_resamples=200,
    )


@pytest.fixture(scope="module")
def data() -> Dataset:
    return planted()


def test_registry_of_protocols() -> None:
    assert set(PROTOCOLS) == {
        "rating",
        "topn",
        "topn-sampled",
        "next-item",
        "next-item-tags",
        "next-item-untied",
        "session",
        "session-tags",
    }
    with pytest.raises(ValueError, match="choose one of"):
        get_protocol("nope")


def test_topn_oracle_is_perfect_and_popularity_is_not(data: Dataset) -> None:
    proto = get_protocol("topn")
    prepared = proto.prepare(data, np.random.default_rng(0))
    oracle = _run(proto, prepared, Oracle(prepared.test))
    pop = _run(proto, prepared, Popularity())
    assert oracle.n_users == N_USERS
    for k in (5, 10):
        assert oracle.metrics[f"ndcg@{k}"] == pytest.approx(1.0)
        assert oracle.metrics[f"recall@{k}"] == pytest.approx(1.0)
        assert oracle.metrics[f"hr@{k}"] == pytest.approx(1.0)
        assert oracle.ci[f"ndcg@{k}"] == pytest.approx((1.0, 1.0))
    assert pop.metrics["ndcg@10"] < 0.9
    for key in ("coverage@10", "novelty@10", "popularity@10", "diversity@10", "precision@5", "mrr@10"):
        assert key in pop.metrics
    assert pop.per_user["ndcg@10"].shape == (N_USERS,)
    assert pop.curves["ndcg_at"].shape == (10,)
    assert oracle.fit_seconds >= 0 and oracle.eval_seconds > 0
    cmp = compare_results(oracle, pop, "ndcg@10", np.random.default_rng(0), n_resamples=200)
    assert cmp["mean_diff"] > 0.1 and cmp["ci_low"] > 0


def test_topn_excludes_training_items(data: Dataset) -> None:
    """The oracle scores training items above test items: only exclusion makes it perfect."""
    proto = get_protocol("topn")
    prepared = proto.prepare(data, np.random.default_rng(0))
    oracle = Oracle(prepared.test)
    res = _run(proto, prepared, oracle)
    assert res.metrics["ndcg@10"] == pytest.approx(1.0)
    users = prepared.users
    raw, _ = top_n(oracle.score_users(users), 10)  # the same scores without exclusion
    relevant = sp.csr_matrix(prepared.test.interactions()[users])
    assert np.nanmean(ranking_metrics(raw, relevant, (10,))["ndcg@10"]) < 0.5


def test_topn_same_seed_same_split(data: Dataset) -> None:
    proto = get_protocol("topn")
    a = proto.prepare(data, np.random.default_rng(4))
    b = proto.prepare(data, np.random.default_rng(4))
    np.testing.assert_array_equal(a.test.movie, b.test.movie)


def test_sampled_protocol_draws_only_unseen_movies(data: Dataset) -> None:
    proto = get_protocol("topn-sampled")
    prepared = proto.prepare(data, np.random.default_rng(0))
    cand = prepared.extra["candidates"]
    assert cand.shape == (N_USERS, 100)
    seen = data.interactions().toarray() > 0
    rows = prepared.users[:, None]
    assert not seen[rows, cand[:, 1:]].any(), "a sampled negative was rated by the user"
    np.testing.assert_array_equal(cand[:, 0], prepared.test.movie)
    assert all(len(set(r)) == 100 for r in cand.tolist())
    # the test movie is each user's latest rating
    latest = data.movie[data.user_ptr[1:] - 1]
    np.testing.assert_array_equal(cand[:, 0], latest[prepared.users])
    again = proto.prepare(data, np.random.default_rng(0))
    np.testing.assert_array_equal(cand, again.extra["candidates"])
    oracle = _run(proto, prepared, Oracle(prepared.test), ks=(10,))
    assert oracle.metrics == {"hr@10": 1.0, "ndcg@10": 1.0, "mrr@10": 1.0}
    assert any("sampled" in n for n in oracle.notes)
    assert _run(proto, prepared, Popularity(), ks=(10,)).metrics["ndcg@10"] < 1.0


def test_next_item_queries_hold_the_history_with_feedback(data: Dataset) -> None:
    proto = get_protocol("next-item")
    prepared = proto.prepare(data, np.random.default_rng(0))
    assert prepared.valid is not None and prepared.valid.n_ratings == N_USERS
    oracle = Oracle(prepared.test)
    res = _run(proto, prepared, oracle)
    assert oracle.valid is prepared.valid, "validation split must reach fit() for early stopping"
    assert res.metrics["ndcg@10"] == pytest.approx(1.0) and res.metrics["mrr@10"] == pytest.approx(1.0)
    assert set(res.metrics) == {"hr@5", "ndcg@5", "mrr@5", "hr@10", "ndcg@10", "mrr@10"}
    q = next(q for q in oracle.queries if q.user == 7)
    lo, hi = data.user_ptr[7], data.user_ptr[8]
    np.testing.assert_array_equal(q.movies, data.movie[lo : hi - 1])  # all but the latest, in time order
    r = data.rating[lo : hi - 1]
    expected = np.where(r >= 4.0, LIKE, np.where(r <= 2.0, DISLIKE, SEEN))
    np.testing.assert_array_equal(q.feedback, expected)
    np.testing.assert_array_equal(q.ratings, r)
    pop = _run(proto, prepared, Popularity())
    assert pop.metrics["ndcg@10"] < 1.0


class HigherIdNext(Popularity):
    """Test-only model that exploits the files' tie order: the movie right above the
    history's last one (by index) is next."""

    name = "higher-id-next"

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        idx = np.arange(self.n_movies, dtype=np.float32)
        return np.stack([-np.abs(idx - q.movies[-1] - 1) for q in queries]).astype(np.float32)


def test_next_item_untied_takes_away_the_tie_order() -> None:
    """Each user rates 5 consecutive movies in one second: in the files' order the test movie
    is the one above the last in history, which ``HigherIdNext`` finds every time; untied,
    the test movie is a random one of the five."""
    user = np.repeat(np.arange(40), 5)
    first = np.random.default_rng(0).integers(0, 90, 40)
    ratings = pd.DataFrame(
        {"userId": user, "movieId": (first[:, None] + np.arange(5)).ravel(), "rating": 4.0, "timestamp": 7}
    )
    data = Dataset.build("ties", ratings, pd.DataFrame({"movieId": np.arange(100), "title": "m"}))
    files, untied = get_protocol("next-item"), get_protocol("next-item-untied")
    assert isinstance(untied, UntiedNextItemProtocol)
    on_files = _run(files, files.prepare(data, np.random.default_rng(0)), HigherIdNext())
    on_untied = _run(untied, untied.prepare(data, np.random.default_rng(0)), HigherIdNext())
    assert on_files.metrics["mrr@10"] == pytest.approx(1.0)
    assert on_untied.metrics["mrr@10"] < 0.7


class TagReader(Popularity):
    """Test-only model: a movie scores the number of the query's liked tags it carries."""

    name = "tag-reader"

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        assert self._tag_matrix is not None
        given = np.zeros((len(queries), self.n_tags), np.float32)
        for i, q in enumerate(queries):
            given[i, q.liked_tags] = 1.0
        return np.asarray((self._tag_matrix @ given.T).T, np.float32)

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        super()._fit(data, rng, valid)
        self._tag_matrix = (data.movie_tags > 0).astype(np.float32)


def test_next_item_tags_gives_the_test_movies_tags() -> None:
    tagged = planted(with_tags=True)
    plain, given = get_protocol("next-item"), get_protocol("next-item-tags")
    assert isinstance(given, TagConditionedNextItemProtocol)
    prepared = given.prepare(tagged, np.random.default_rng(0))
    reader = TagReader()
    with_tags = _run(given, prepared, reader)
    without = _run(plain, plain.prepare(tagged, np.random.default_rng(0)), TagReader())
    assert with_tags.metrics["hr@5"] == pytest.approx(1.0)  # the test movie's own tag is among its 3 heaviest
    assert without.metrics["hr@5"] < 0.5


def test_rating_protocol(data: Dataset) -> None:
    proto = get_protocol("rating")
    prepared = proto.prepare(data, np.random.default_rng(0))
    assert prepared.test.n_ratings == round(0.1 * data.n_ratings)
    res = _run(proto, prepared, Oracle(prepared.test))
    assert res.metrics == {"rmse": 0.0, "mae": 0.0}
    assert res.ci["rmse"] == (0.0, 0.0)
    unsupported = _run(proto, prepared, Popularity())
    assert not unsupported.supported and "ratings" in unsupported.message
    assert unsupported.metrics == {}
    assert unsupported.to_dict()["supported"] is False


def test_feedback_thresholds_follow_the_scale(data: Dataset) -> None:
    assert feedback_thresholds(data) == (4.0, 2.0)
    ratings = pd.DataFrame({"userId": [1], "movieId": [1], "rating": [3], "timestamp": [0]})
    five = Dataset.build("five", ratings, pd.DataFrame({"movieId": [1], "title": ["x"]}))
    assert feedback_thresholds(five) == (4.0, 2.0)


def test_compare_needs_matching_results(data: Dataset) -> None:
    proto = get_protocol("topn")
    prepared = proto.prepare(data, np.random.default_rng(0))
    a = _run(proto, prepared, Popularity())
    b = _run(
        get_protocol("next-item"),
        get_protocol("next-item").prepare(data, np.random.default_rng(0)),
        Popularity(),
    )
    with pytest.raises(ValueError, match="not comparable"):
        compare_results(a, b, "ndcg@10", np.random.default_rng(0))
    with pytest.raises(ValueError, match="per-user"):
        compare_results(a, a, "coverage@10", np.random.default_rng(0))


def test_unscorable_rows_fall_back_to_popularity(data: Dataset) -> None:
    """A model that returns all-NaN rows still gets full lists (popularity fallback)."""

    class Blank(Oracle):
        def score_users(self, users: np.ndarray) -> np.ndarray:
            return np.full((len(users), self.n_movies), np.nan, np.float32)

    proto = get_protocol("topn")
    prepared = proto.prepare(data, np.random.default_rng(0))
    res = _run(proto, prepared, Blank(prepared.test))
    assert res.metrics["coverage@10"] == pytest.approx(10 / N_MOVIES, abs=0.1)
    assert res.metrics["ndcg@10"] >= 0
