"""The ``session`` protocol: new visitors' first k likes against the rest of their likes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from movierec.cli.evaluate import register
from movierec.data.dataset import Dataset
from movierec.evaluation.protocols import (
    Prepared,
    Result,
    SessionProtocol,
    TagSessionProtocol,
    get_protocol,
    run,
)
from movierec.evaluation.report import format_table, json_lines
from movierec.models.base import LIKE, Query, Recommender
from movierec.models.knn import ItemKNN
from movierec.models.popularity import Popularity

N_USERS, PER_USER, POOL = 60, 24, 40


def _tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Three taste groups; user ``u`` first rates its own starter movie ``u`` (5 stars), then
    23 movies of its group's pool of 40, mostly liked, at distinct times. Every movie carries
    its group's tag; user 0 tags its starter, so a split must drop that when user 0 is held out."""
    rng = np.random.default_rng(seed)
    group = np.arange(N_USERS) % 3
    picks = (
        np.argsort(rng.random((N_USERS, POOL)), axis=1)[:, : PER_USER - 1] + N_USERS + POOL * group[:, None]
    )
    movies = np.concatenate([np.arange(N_USERS)[:, None], picks], axis=1)
    user = np.repeat(np.arange(N_USERS), PER_USER)
    rating = np.where(rng.random((N_USERS, PER_USER)) < 0.8, 4.5, 2.0)
    rating[:, 0] = 5.0
    n_movies = N_USERS + 3 * POOL
    ratings = pd.DataFrame(
        {
            "userId": user + 1,
            "movieId": movies.ravel() + 1,
            "rating": rating.ravel(),
            "timestamp": (np.arange(user.size) % PER_USER) * 10 + 1_000_000 + user * 1000,
        }
    )
    grp = np.concatenate([group, np.repeat(np.arange(3), POOL)])
    info = pd.DataFrame(
        {
            "movieId": np.arange(1, n_movies + 1),
            "title": [f"Film {i} (1995)" for i in range(n_movies)],
            "genres": np.array(["Action", "Comedy", "Drama"], dtype=object)[grp],
        }
    )
    tags = pd.DataFrame(
        {
            "userId": np.r_[np.full(n_movies, 999), 1],
            "movieId": np.r_[np.arange(1, n_movies + 1), 1],
            "tag": [f"group{g}" for g in grp] + ["starter"],
            "timestamp": np.arange(n_movies + 1),
        }
    )
    return ratings, info, tags


@pytest.fixture(scope="module")
def data() -> Dataset:
    ratings, info, tags = _tables()
    return Dataset.build("visitors", ratings, info, tags=tags)


@dataclass
class _NoConfig:
    """No settings."""


class SessionOracle(Recommender):
    """Test-only: knows every test visitor's likes and recognises a visitor by the session's
    first movie (their unique starter). Scores the truth 1, the session's own movies 3 (the
    protocol must exclude them), everything else 0."""

    name = "oracle"
    Config = _NoConfig

    def __init__(self, likes: dict[int, np.ndarray], n_movies: int) -> None:
        super().__init__()
        self.likes, self.n = likes, n_movies
        self.queries: list[Query] = []

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        return None

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        self.queries.extend(queries)
        out = np.zeros((len(queries), self.n), np.float32)
        for i, q in enumerate(queries):
            mine = self.likes.get(int(q.movies[0]), np.zeros(0, np.int64)) if q.movies.size else []
            out[i, mine] = 1.0
            out[i, q.movies] = 3.0
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        return None


class SessionBlind(Recommender):
    """Test-only: ignores the session; every row holds the popularity model's scores."""

    name = "blind"
    Config = _NoConfig

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        self.pop = Popularity().fit(data, rng).score([Query()])[0]
        self.sizes: set[int] = set()

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        self.sizes |= {q.movies.size for q in queries}
        return np.tile(self.pop, (len(queries), 1))

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        return None


def _run(prepared: Prepared, model: Recommender, protocol: SessionProtocol | None = None) -> Result:
    return run(
        model,
        protocol or SessionProtocol(),
        prepared,
        fit_rng=np.random.default_rng(0),
        stats_rng=np.random.default_rng(1),
        n_resamples=200,
    )


@pytest.fixture(scope="module")
def prepared(data: Dataset) -> Prepared:
    return SessionProtocol().prepare(data, np.random.default_rng(0))


def test_split_is_by_user_and_drops_held_out_users_tags(data: Dataset, prepared: Prepared) -> None:
    train_users = set(np.unique(prepared.train.user))
    test_users = set(np.unique(prepared.test.user))
    valid_users = set(np.unique(prepared.extra["valid"].user))
    assert not train_users & test_users and not train_users & valid_users and not test_users & valid_users
    assert len(test_users) == round(0.2 * N_USERS) and len(valid_users) == round(0.1 * N_USERS)
    assert set(prepared.users) == test_users  # every test user has more than 10 likes here
    held = np.array(sorted(test_users | valid_users))
    assert not set(prepared.train.tag_events["user_id"]) & set(data.users.ids[held].tolist())
    starter = data.tags.index(np.array(["starter"], dtype=object))[0]
    user0_held = 0 in held
    assert (prepared.train.movie_tags[0, starter] == 0) == user0_held


def test_oracle_scores_one_at_every_size_and_sessions_are_anonymous(prepared: Prepared) -> None:
    proto = SessionProtocol()
    likes = proto.likes(prepared)
    truth = {int(lk[0]): lk for lk in likes}
    oracle = SessionOracle(truth, prepared.data.n_movies)
    res = _run(prepared, oracle)
    for name in ("ndcg@24", "recall@24", "hr@24"):
        assert res.metrics[name] == pytest.approx(1.0)
        for size in proto.session_sizes:
            assert res.by_k[size][name] == pytest.approx(1.0)
    sized = [q for q in oracle.queries if q.movies.size and q.movies[0] in truth]
    assert all(q.user is None for q in oracle.queries)
    assert {q.movies.size for q in sized} >= set(proto.session_sizes)
    for q in sized:  # each session is the user's first likes in time order, all liked
        lk = truth[int(q.movies[0])]
        assert np.array_equal(q.movies, lk[: q.movies.size]) and (q.feedback == LIKE).all()
        assert q.liked_tags.size == 0


def test_a_model_that_ignores_the_session_scores_like_popularity(prepared: Prepared) -> None:
    model = SessionBlind()
    blind = _run(prepared, model)
    pop = _run(prepared, Popularity())
    assert model.sizes >= {1, 3, 5, 10}
    for key, values in pop.per_user.items():
        np.testing.assert_allclose(blind.per_user[key], values, err_msg=key)
    knn = _run(prepared, ItemKNN())
    # the groups are only visible through the session: a model that reads it wins
    assert knn.metrics["ndcg@24"] > pop.metrics["ndcg@24"] + 0.1


def test_report_has_sizes_clicks_and_paired_differences(prepared: Prepared) -> None:
    pop = _run(prepared, Popularity())
    knn = _run(prepared, ItemKNN())
    assert set(pop.by_k) == {1, 3, 5, 10}
    for values in pop.by_k.values():
        assert {"ndcg@24", "recall@24", "hr@24", "popularity@24", "coverage@24"} <= set(values)
    clicks = knn.per_user["clicks@10"]
    assert clicks.shape == (len(prepared.users),) and ((clicks >= 0) & (clicks <= 11)).all()
    assert 0.0 <= knn.metrics["found_by_3"] <= 1.0 and "clicks_median" in knn.metrics
    # the averaged figure is the mean over the sizes
    assert knn.metrics["ndcg@24"] == pytest.approx(np.mean([knn.by_k[s]["ndcg@24"] for s in (1, 3, 5, 10)]))
    first, second = (json.loads(line) for line in json_lines([pop, knn]))
    assert set(first["metrics"]["by_k"]) == {"1", "3", "5", "10"} and "paired" not in first
    diff = second["paired"]["ndcg@24"]
    assert diff["mean_diff"] == pytest.approx(knn.metrics["ndcg@24"] - pop.metrics["ndcg@24"], abs=1e-6)
    assert diff["ci_low"] > 0
    table = format_table([pop, knn], ci=True)
    assert "by session size k" in table and "paired differences against pop" in table


def test_tag_variant_gives_the_sessions_heaviest_tags(prepared: Prepared) -> None:
    proto = get_protocol("session-tags")
    assert isinstance(proto, TagSessionProtocol)
    likes = proto.likes(prepared)
    oracle = SessionOracle({int(lk[0]): lk for lk in likes}, prepared.data.n_movies)
    res = _run(prepared, oracle, proto)
    assert res.metrics["ndcg@24"] == pytest.approx(1.0)
    tags = prepared.data.tags
    for q in oracle.queries:  # a session's movies are all of its user's group g
        g = int(q.movies[0]) % 3  # the starter movie of user u is movie index u, of group u % 3
        names = set(tags.ids[q.liked_tags].tolist())
        assert 2 <= len(names) <= 3 and {f"group{g}", ("action", "comedy", "drama")[g]} <= names
    assert "clicks@10" not in res.per_user


def test_validation_users_are_neither_train_nor_test(prepared: Prepared) -> None:
    proto = SessionProtocol()
    val = proto.validation(prepared)
    assert not set(val.users) & set(prepared.users)
    assert not set(val.users) & set(np.unique(prepared.train.user))
    assert val.train is prepared.train and len(val.users) > 0


def test_bad_arguments(data: Dataset) -> None:
    with pytest.raises(ValueError, match="split"):
        SessionProtocol().prepare(data, np.random.default_rng(0), split="u1")
    few = data.subset(data.rating < 4.0)  # nobody has more than 10 likes
    with pytest.raises(ValueError, match="more than 10 likes"):
        SessionProtocol().prepare(few, np.random.default_rng(0))


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer in sub-command mode
        """Unused."""

    return app


def test_cli_evaluates_the_session_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ratings, info, tags = _tables()
    root = tmp_path / "set"
    root.mkdir()
    ratings.to_csv(root / "ratings.csv", index=False)
    info.to_csv(root / "movies.csv", index=False)
    tags.to_csv(root / "tags.csv", index=False)
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "home"))
    args = ["evaluate", "-d", str(root), "--protocol", "session", "--models", "pop,itemknn"]
    result = CliRunner().invoke(_cli(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines()]
    assert [x["model"] for x in lines] == ["pop", "itemknn"]
    for line in lines:
        assert {"ndcg@24", "recall@24", "hr@24", "by_k"} <= set(line["metrics"])
        assert set(line["metrics"]["by_k"]) == {"1", "3", "5", "10"}
        assert "ndcg@24" in line["ci"]
    assert lines[1]["paired"]["ndcg@24"]["mean_diff"] > 0
    table = CliRunner().invoke(_cli(), args)
    assert table.exit_code == 0, table.output
    assert "paired differences against pop" in table.output and "by session size k" in table.output
