"""Tests of the session recommenders (``sequence`` LSTM and ``sequence-attn`` transformer).

Known answer: :func:`markov_sequences` walks ``i -> i+1``, movie ``i`` carries
tag ``tag{i % n_tags}``; the models must learn the chain, react to tags, to
order and to dislikes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from contract import ModelContract
from movierec.data import splits
from movierec.data.dataset import Dataset
from movierec.data.ratings import FIVE_STARS
from movierec.data.synthetic import markov_sequences, synthetic_movies
from movierec.models.artifacts import load_model, save_model
from movierec.models.base import Query
from movierec.models.configs import with_settings
from movierec.models.sequence import SequenceAttention, SequenceConfig, SequenceLSTM, parse_reason
from movierec.ranking import Catalog, recommend

N_MOVIES, N_TAGS = 20, 4
TINY: dict[str, Any] = {
    "embed_dim": 16,
    "hidden_dim": 32,
    "max_len": 8,
    "dropout": 0.0,
    "threads": 1,
    "batch_size": 128,
    # the Markov sets have uniform popularity: nothing for a popularity start to add, and these
    # small nets' thresholds were calibrated from a plain start
    "init_popularity": False,
    # the network alone on one next-movie target per window: these tests pin what the encoder
    # learns; the default objective (every position, the set term, likes-only inputs, the
    # transition prior) has its own tests below
    "all_positions": False,
    "future_weight": 0.0,
    "likes_only_share": 0.0,
    "transition_prior": False,
    # scores are inner products plus the dislike terms (retrieval reproduces them); the pull has
    # its own test
    "liked_tag_pull": 0.0,
    # train every epoch on every example: these tests pin what the network learns, not which
    # epoch a 12-step chain's holdout happens to restore (the holdout has its own test below)
    "holdout": False,
}
CLASSES = {"lstm": SequenceLSTM, "attn": SequenceAttention}


def tiny(cls: type[SequenceLSTM], **overrides: Any) -> SequenceLSTM:
    return cls(**{**TINY, "epochs": 16, "lr": 1e-2, "patience": 0, **overrides})


class TestLSTMContract(ModelContract):
    make = staticmethod(lambda: SequenceLSTM(**{**TINY, "batch_size": 64}, epochs=15, lr=1e-2, patience=0))
    quality = "checkerboard"


class TestAttentionContract(ModelContract):
    make = staticmethod(
        lambda: SequenceAttention(**{**TINY, "batch_size": 64}, epochs=15, lr=1e-2, patience=0)
    )
    # at this tiny size the transformer still puts 1-2 of 400 checkerboard picks in the wrong half;
    # its quality is checked on the Markov chain below (chain, order, tags, dislikes)
    quality = None


@pytest.fixture(scope="module")
def markov() -> Dataset:
    return markov_sequences(150, N_MOVIES, 12, np.random.default_rng(0), n_tags=N_TAGS, dislike_rate=0.15)


@pytest.fixture(scope="module", params=list(CLASSES))
def fitted(request: pytest.FixtureRequest, markov: Dataset) -> SequenceLSTM:
    return tiny(CLASSES[request.param]).fit(markov, np.random.default_rng(1))


def tag_index(model: SequenceLSTM, k: int) -> int:
    assert model.tags is not None
    return int(model.tags.index(np.array([f"tag{k}"], dtype=object))[0])


def test_learns_the_chain(fitted: SequenceLSTM) -> None:
    scores = fitted.score([Query.session(liked=[i]) for i in range(N_MOVIES)])
    top3 = np.argsort(-scores, axis=1)[:, :3]
    hits = np.mean([(i + 1) % N_MOVIES in top3[i] for i in range(N_MOVIES)])
    assert hits >= 0.8, f"next movie in the top 3 for only {hits:.0%} of movies"
    assert scores.dtype == np.float32 and scores.shape == (N_MOVIES, N_MOVIES)


def test_order_matters_the_last_like_weighs_most(fitted: SequenceLSTM) -> None:
    """Over 10 pairs of likes, both orders: the last like's successor mostly beats the first's."""
    pairs = [(i, (i + 7) % N_MOVIES) for i in range(0, N_MOVIES, 2)]
    fwd = fitted.score([Query.session(liked=[i, j]) for i, j in pairs])
    rev = fitted.score([Query.session(liked=[j, i]) for i, j in pairs])
    assert not np.allclose(fwd, rev)
    wins = [
        int(f[(j + 1) % N_MOVIES] > f[(i + 1) % N_MOVIES])
        + int(r[(i + 1) % N_MOVIES] > r[(j + 1) % N_MOVIES])
        for (i, j), f, r in zip(pairs, fwd, rev, strict=True)
    ]
    assert sum(wins) >= 0.8 * 2 * len(pairs), wins


def test_liked_tag_shifts_towards_its_movies(fitted: SequenceLSTM) -> None:
    # after movie 3 the chain's next movie (4) carries tag0 and holds most of the mass already:
    # the other tags must pull mass towards their movies
    for k in range(1, N_TAGS):
        with_tag = np.flatnonzero(np.arange(N_MOVIES) % N_TAGS == k)
        base, tagged = np.exp(
            fitted.score(
                [Query.session(liked=[3]), Query.session(liked=[3], liked_tags=[tag_index(fitted, k)])]
            )
        )
        assert tagged[with_tag].sum() > base[with_tag].sum(), f"tag{k} did not raise its movies"


def test_tags_only_session(fitted: SequenceLSTM, markov: Dataset) -> None:
    t = tag_index(fitted, 2)
    q = Query.session(liked_tags=[t])
    probs = np.exp(fitted.score([q])[0])
    with_tag = np.arange(N_MOVIES) % N_TAGS == 2
    assert probs[with_tag].sum() > with_tag.mean(), "a tags-only session must favour the tag's movies"
    rec = recommend(fitted, [q], 5, catalog=Catalog.from_dataset(markov), n_tags=3)[0]
    assert not rec.fallback and len(rec.movies) == 5
    assert t not in rec.tags and len(rec.tags) == 3


def test_tag_head_predicts_next_movies_tag(fitted: SequenceLSTM) -> None:
    tags = fitted.score_tags([Query.session(liked=[i]) for i in range(N_MOVIES)])
    assert tags.shape == (N_MOVIES, fitted.n_tags) and tags.dtype == np.float32
    user_tags = [tag_index(fitted, k) for k in range(N_TAGS)]
    best = np.asarray(user_tags)[np.argmax(tags[:, user_tags], axis=1)]
    expected = [tag_index(fitted, (i + 1) % N_TAGS) for i in range(N_MOVIES)]
    assert np.mean(best == expected) >= 0.6  # chance: 0.25


@pytest.fixture(scope="module")
def two_tastes() -> Dataset:
    """Even users like (5) even movies and dislike (1) odd ones; odd users the reverse."""
    rng = np.random.default_rng(4)
    n_users, n_movies, n_like, n_dislike = 80, 20, 6, 3
    own = rng.random((n_users, n_movies // 2)).argsort(axis=1)
    users = np.repeat(np.arange(n_users), n_like + n_dislike)
    parity = users % 2
    half = np.concatenate([own[:, :n_like], own[:, n_like : n_like + n_dislike]], axis=1).ravel()
    liked = np.tile(np.r_[np.ones(n_like, bool), np.zeros(n_dislike, bool)], n_users)
    movies = 2 * half + np.where(liked, parity, 1 - parity)
    ratings = pd.DataFrame(
        {
            "userId": users + 1,
            "movieId": movies + 1,
            "rating": np.where(liked, 5.0, 1.0),
            "timestamp": rng.permutation(users.size),
        }
    )
    return Dataset.build("two-tastes", ratings, synthetic_movies(n_movies, rng), scale=FIVE_STARS)


def assert_dislike_sinks_the_odd_taste(model: SequenceLSTM) -> None:
    """The same session, movie 3 liked vs disliked: 3 and the other odd movies (its taste) must drop."""
    odd = np.arange(1, 20, 2)
    as_like, as_dislike = model.score(
        [Query(movies=[3, 4], feedback=[1, 1]), Query(movies=[3, 4], feedback=[-1, 1])]
    )
    assert as_dislike[3] < as_like[3]
    assert np.exp(as_dislike[odd]).sum() < np.exp(as_like[odd]).sum()


@pytest.mark.parametrize("neighbours", [0, 5])
def test_dislike_lowers_the_movie_and_its_neighbours(neighbours: int, two_tastes: Dataset) -> None:
    # what the LSTM learned (dislike input step + unlikelihood): the structural push is off here
    # and tested on its own below, for both encoders. (The tiny transformer alone sinks the
    # disliked movie in only 3 of 6 seeds: the push is what makes a dislike dependable.)
    model = tiny(SequenceLSTM, dislike_neighbours=neighbours, dislike_push=0.0).fit(
        two_tastes, np.random.default_rng(0)
    )
    assert_dislike_sinks_the_odd_taste(model)


def test_empty_session_falls_back_to_popularity(fitted: SequenceLSTM, markov: Dataset) -> None:
    catalog = Catalog.from_dataset(markov)
    rec = recommend(fitted, [Query()], 5, catalog=catalog)[0]
    assert rec.fallback
    np.testing.assert_array_equal(rec.movies, np.argsort(-catalog.popularity_scores, kind="stable")[:5])


def test_unknown_indices_are_rejected(fitted: SequenceLSTM) -> None:
    with pytest.raises(IndexError, match="movie index out of range"):
        fitted.score([Query.session(liked=[N_MOVIES])])
    with pytest.raises(IndexError, match="tag index out of range"):
        fitted.score_tags([Query.session(liked_tags=[fitted.n_tags])])
    with pytest.raises(IndexError, match="user index out of range"):
        fitted.score([Query(user=10_000)])


def test_known_user_uses_time_ordered_history(fitted: SequenceLSTM, markov: Dataset) -> None:
    movies, ratings = markov.history(5)
    fb = np.where(ratings >= 4, 1, np.where(ratings <= 2, -1, 0))
    np.testing.assert_array_equal(
        fitted.score_users(np.array([5])), fitted.score([Query(movies=movies, feedback=fb)])
    )


def test_save_load_identical(fitted: SequenceLSTM, tmp_path: Path) -> None:
    qs = [
        Query.session(liked=[1, 2], disliked=[7], liked_tags=[tag_index(fitted, 1)]),
        Query.session(liked=[3]),
    ]
    loaded = load_model(save_model(fitted, tmp_path / fitted.name))
    assert type(loaded) is type(fitted)
    np.testing.assert_array_equal(loaded.score(qs), fitted.score(qs))
    np.testing.assert_array_equal(loaded.score_tags(qs), fitted.score_tags(qs))


def test_int8_heads_score_like_the_float_heads(fitted: SequenceLSTM, tmp_path: Path) -> None:
    """``int8_heads`` quantises only the heads the scores come from: the chain is still learnt,
    scores stay close to the float ones, and new weights (``load_state``) get a new int8 copy."""
    qs = [Query.session(liked=[i], liked_tags=[tag_index(fitted, i % N_TAGS)]) for i in range(N_MOVIES)]
    ref, ref_tags = fitted.score(qs), fitted.score_tags(qs)
    model = load_model(save_model(fitted, tmp_path / fitted.name))
    model.config.int8_heads = True
    got, got_tags = model.score(qs), model.score_tags(qs)
    assert got.dtype == np.float32 and got.shape == ref.shape and got_tags.shape == ref_tags.shape
    assert not np.array_equal(got, ref)  # it did run the int8 heads
    # int8 rounding errors grow with the scores' range (and differ between CPUs' int8 kernels):
    # every score within 3% of that range, the typical one within 1%
    for q8, f32 in ((got, ref), (got_tags, ref_tags)):
        scale = float(np.abs(f32).max())
        np.testing.assert_allclose(q8, f32, atol=0.03 * scale)
        assert float(np.abs(q8 - f32).mean()) < 0.01 * scale
    top3 = np.argsort(-got, axis=1)[:, :3]
    assert np.mean([(i + 1) % N_MOVIES in top3[i] for i in range(N_MOVIES)]) >= 0.8
    assert model._scoring_net() is model._scoring_net()  # made once per set of weights
    # other weights: the int8 copy follows them
    other = {k: v * 0.5 if k == "net.movie_head.weight" else v for k, v in model.state().items()}
    model.load_state(other)
    halved = model.score(qs)
    model.config.int8_heads = False
    np.testing.assert_allclose(halved, model.score(qs), atol=0.1)
    assert not np.allclose(halved, got, atol=0.1)
    # training and the retrieval vectors stay float32
    assert model.state()["net.movie_head.weight"].dtype == np.float32


def test_explain_names_the_most_similar_like(fitted: SequenceLSTM) -> None:
    q = Query.session(liked=[2, 11])
    reasons = fitted.explain(q, np.array([3, 12]))
    assert all(r is not None and r.startswith("because you liked") for r in reasons)
    assert {parse_reason(r) for r in reasons} <= {2, 11}
    assert fitted.explain(Query.session(liked_tags=[0]), np.array([3])) == [None]


@pytest.mark.parametrize("kind", list(CLASSES))
def test_same_seed_same_model_other_seed_differs(kind: str, markov: Dataset) -> None:
    q = [Query.session(liked=[1, 2])]
    runs = [tiny(CLASSES[kind], epochs=2).fit(markov, np.random.default_rng(s)).score(q) for s in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_validation_split_and_set_target(markov: Dataset) -> None:
    train, valid, _ = splits.temporal_leave_last(markov)
    model = tiny(SequenceLSTM, future_weight=1.0, likes_only_share=0.5, patience=2).fit(
        train, np.random.default_rng(0), valid=valid
    )
    assert model.fit_info.extra["valid_source"] == "given"
    history = model.fit_info.history
    assert all("valid" in row for row in history)
    assert max(row["valid"] for row in history) > 0.5  # NDCG@10 of the next movie
    scores = model.score([Query.session(liked=[i]) for i in range(N_MOVIES)])
    top5 = np.argsort(-scores, axis=1)[:, :5]
    assert np.mean([(i + 1) % N_MOVIES in top5[i] for i in range(N_MOVIES)]) >= 0.5  # chance: 0.25


def test_user_disjoint_validation_falls_back_to_every_users_last_like(markov: Dataset) -> None:
    """Validation rows of users unseen in training cannot be continued: early stopping then holds
    out every training user's last like (with an earlier rating) instead of switching off."""
    train, valid, _ = splits.user_holdout(markov, 0.2, 0.1, np.random.default_rng(0))
    model = tiny(SequenceLSTM, epochs=2, holdout=True).fit(train, np.random.default_rng(0), valid=valid)
    n_train_users = np.count_nonzero(np.diff(train.user_ptr))
    assert model.fit_info.extra["valid_source"] == "holdout"
    assert 0.9 * n_train_users <= model.fit_info.extra["n_valid"] <= n_train_users
    assert all("valid" in row for row in model.fit_info.history)
    off = tiny(SequenceLSTM, epochs=1, holdout=False).fit(train, np.random.default_rng(0))
    assert off.fit_info.extra["valid_source"] == "none"


def test_bad_config_is_rejected(markov: Dataset) -> None:
    with pytest.raises(ValueError, match="encoder"):
        SequenceLSTM(encoder="gru", epochs=1).fit(markov)
    with pytest.raises(ValueError, match="max_len"):
        SequenceLSTM(max_len=1, epochs=1).fit(markov)
    with pytest.raises(ValueError, match="likes_only_share"):
        SequenceLSTM(likes_only_share=1.5, epochs=1).fit(markov)
    with pytest.raises(ValueError, match="future_weight"):
        SequenceLSTM(future_weight=-1.0, epochs=1).fit(markov)


def test_retrieval_vectors_reproduce_the_scores(fitted: SequenceLSTM) -> None:
    queries = [Query.session(liked=[1, 2]), Query.session(liked=[5], liked_tags=[tag_index(fitted, 1)])]
    inner = fitted.query_vectors(queries) @ fitted.item_vectors().T
    gap = fitted.score(queries) - inner  # the softmax normaliser: one constant per row
    assert inner.shape == (2, N_MOVIES)
    np.testing.assert_allclose(gap, np.broadcast_to(gap[:, :1], gap.shape), atol=1e-4)


# ------------------------------------------------------------- structural dislike push
def with_push(
    model: SequenceLSTM, push: float, space: str = "head", agg: str = "max", floor: float = 0.0
) -> SequenceLSTM:
    """A shallow copy of ``model`` (same network) with other push settings."""
    out = copy.copy(model)
    out.config = with_settings(
        model.config,
        dict(
            dislike_push=push,
            dislike_push_space=space,
            dislike_push_agg=agg,
            dislike_push_floor=floor,
        ),
    )
    return out


def expected_penalty(
    model: SequenceLSTM, disliked: list[int], space: str, agg: str, floor: float = 0.0
) -> np.ndarray:
    """``agg_d relu(cos(e_j, e_d) - floor) / (1 - floor)`` over ``disliked``, in numpy, ``(n_movies,)``."""
    assert model.net is not None
    net = model.net
    emb = (net.movie_head.weight if space == "head" else net.movie_emb.weight[:N_MOVIES]).detach().numpy()
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = np.maximum(unit[disliked] @ unit.T - floor, 0.0) / (1.0 - floor)  # (D, n_movies)
    return sim.max(0) if agg == "max" else sim.mean(0)


@pytest.mark.parametrize(
    ("space", "agg", "floor"),
    [("head", "max", 0.0), ("input", "max", 0.0), ("head", "mean", 0.0), ("input", "max", 0.3)],
)
def test_dislike_push_lowers_the_movies_like_the_disliked_one(
    fitted: SequenceLSTM, space: str, agg: str, floor: float
) -> None:
    disliked, strength = [3, 11], 2.0
    q = [Query.session(liked=[5, 6], disliked=disliked)]
    base = with_push(fitted, 0.0).score(q)[0].astype(np.float64)
    pushed = with_push(fitted, strength, space, agg, floor).score(q)[0].astype(np.float64)
    penalty = expected_penalty(fitted, disliked, space, agg, floor)
    # log-softmax of (logit - strength * penalty): the change is -strength * penalty up to one constant
    change = pushed - base
    np.testing.assert_allclose(
        change + strength * penalty, np.full(N_MOVIES, change[0] + strength * penalty[0]), atol=1e-4
    )
    # so the movies nearest to a dislike drop the most, and a disliked movie itself by the full strength
    # relative to a movie unlike every dislike
    unlike = int(np.argmin(penalty))
    if agg == "max":
        assert penalty[3] == pytest.approx(1.0, abs=1e-5) and penalty[11] == pytest.approx(1.0, abs=1e-5)
        assert change[3] - change[unlike] == pytest.approx(-strength * (1.0 - penalty[unlike]), abs=1e-4)
    nearest = np.argsort(-penalty)[:5]
    nearest = nearest[penalty[nearest] > penalty[unlike] + 0.05]
    assert nearest.size >= 2 and (change[nearest] < change[unlike]).all()


def test_dislike_push_uses_the_most_recent_dislikes(fitted: SequenceLSTM) -> None:
    keep = fitted.config.max_len - 1  # 7 with TINY
    disliked = list(range(keep + 3))  # the first 3 fall out
    q = [Query.session(liked=[15], disliked=disliked)]
    change = with_push(fitted, 1.0).score(q)[0].astype(np.float64) - with_push(fitted, 0.0).score(q)[0]
    penalty = expected_penalty(fitted, disliked[-keep:], "head", "max")
    np.testing.assert_allclose(change + penalty, np.full(N_MOVIES, change[0] + penalty[0]), atol=1e-4)


def test_dislike_push_leaves_queries_without_dislikes_bit_identical(fitted: SequenceLSTM) -> None:
    alone = [Query.session(liked=[1, 2], liked_tags=[tag_index(fitted, 1)])]
    mixed = [alone[0], Query.session(liked=[4], disliked=[5])]
    off, on = with_push(fitted, 0.0), with_push(fitted, 4.0, "input", "mean")
    np.testing.assert_array_equal(on.score(alone), off.score(alone))
    np.testing.assert_array_equal(on.score_tags(alone), off.score_tags(alone))
    a, b = off.score(mixed), on.score(mixed)
    np.testing.assert_array_equal(b[0], a[0])  # a row without dislikes, batched with one that has them
    assert not np.allclose(b[1], a[1])


def test_dislike_push_survives_save_load(fitted: SequenceLSTM, tmp_path: Path) -> None:
    model = with_push(fitted, 1.5, "input", "mean", 0.1)
    q = [Query.session(liked=[2], disliked=[7, 9])]
    loaded = load_model(save_model(model, tmp_path / "pushed"))
    assert isinstance(loaded.config, SequenceConfig)
    cfg = loaded.config.push
    assert (cfg.dislike_push, cfg.dislike_push_space, cfg.dislike_push_agg, cfg.dislike_push_floor) == (
        1.5,
        "input",
        "mean",
        0.1,
    )
    np.testing.assert_array_equal(loaded.score(q), model.score(q))
    assert not np.allclose(loaded.score(q), fitted.score(q))


def test_dislike_push_changes_bypass_the_score_cache(fitted: SequenceLSTM) -> None:
    model = with_push(fitted, 0.0)
    q = [Query.session(liked=[2], disliked=[7])]
    before = model.score(q)
    model.config = with_settings(model.config, dict(dislike_push=3.0))
    assert not np.allclose(model.score(q), before)  # same Query objects, new push: not the cached run


def test_dislike_push_bad_settings_are_rejected(fitted: SequenceLSTM, markov: Dataset) -> None:
    q = [Query.session(liked=[2], disliked=[7])]
    with pytest.raises(ValueError, match="dislike_push_space"):
        with_push(fitted, 1.0, space="tied").score(q)
    with pytest.raises(ValueError, match="dislike_push_agg"):
        with_push(fitted, 1.0, agg="sum").score(q)
    with pytest.raises(ValueError, match="dislike_push must be"):
        with_push(fitted, -1.0).score(q)
    with pytest.raises(ValueError, match="dislike_push_floor"):
        with_push(fitted, 1.0, floor=1.0).score(q)
    with pytest.raises(ValueError, match="dislike_push_space"):
        SequenceLSTM(dislike_push_space="x", epochs=1).fit(markov)


def test_dislike_push_in_training(two_tastes: Dataset) -> None:
    model = tiny(SequenceLSTM, dislike_push=2.0, dislike_push_train=True, epochs=8).fit(
        two_tastes, np.random.default_rng(0)
    )
    assert_dislike_sinks_the_odd_taste(model)


def test_dislike_push_lowers_the_other_movies_of_the_disliked_taste(two_tastes: Dataset) -> None:
    # the tiny LSTM's input embeddings group the two tastes (cos of movie 3 to the other odd movies
    # is mostly positive, to even ones negative on average), so the push must lower the odd movies
    # more than the network alone does; the tiny transformer's embeddings do not group them, and there
    # the push can only lower the disliked movie itself
    model = tiny(SequenceLSTM, dislike_push=0.0).fit(two_tastes, np.random.default_rng(0))
    others = np.setdiff1d(np.arange(1, 20, 2), [3])
    q = [Query(movies=[3, 4], feedback=[-1, 1])]
    alone = np.exp(model.score(q)[0][others]).sum()
    pushed = np.exp(with_push(model, 4.5, "input").score(q)[0][others]).sum()
    assert pushed < alone - 0.05


@pytest.mark.parametrize("agg", ["max", "mean", "linear"])
def test_retrieval_vectors_plus_dislike_adjustment_reproduce_the_scores(
    fitted: SequenceLSTM, agg: str
) -> None:
    model = with_push(fitted, 3.0, "input", agg)
    queries = [
        Query.session(liked=[1, 2], disliked=[7, 12]),
        Query.session(liked=[5]),
        Query.session(disliked=[4]),
    ]
    adjust = model.dislike_adjustment(queries)
    assert adjust.shape == (3, N_MOVIES) and adjust.dtype == np.float32
    assert not adjust[1].any()  # no dislikes, no adjustment
    gap = model.score(queries) - (model.query_vectors(queries) @ model.item_vectors().T + adjust)
    np.testing.assert_allclose(gap, np.broadcast_to(gap[:, :1], gap.shape), atol=1e-4)
    # at retrieval candidates only (-1: padding), the same values
    cand = np.array([[7, 3, -1], [0, 1, 2], [4, 19, 5]])
    np.testing.assert_allclose(
        model.dislike_adjustment(queries, cand),
        np.where(cand >= 0, np.take_along_axis(adjust, cand, 1), 0.0),
        atol=1e-5,
    )
    assert not with_push(fitted, 0.0).dislike_adjustment(queries).any()
    with pytest.raises(ValueError, match="movies must be"):
        model.dislike_adjustment(queries, np.zeros(3, np.int64))


@pytest.mark.parametrize("kind", list(CLASSES))
def test_training_on_every_position_learns_the_chain_and_tags(kind: str, markov: Dataset) -> None:
    """all_positions: one window trains all of its steps' next movies at once."""
    model = tiny(CLASSES[kind], all_positions=True, batch_size=32).fit(markov, np.random.default_rng(1))
    scores = model.score([Query.session(liked=[i]) for i in range(N_MOVIES)])
    assert np.mean(np.argmax(scores, axis=1) == (np.arange(N_MOVIES) + 1) % N_MOVIES) >= 0.9
    long = model.score([Query.session(liked=list(range(3, 12)))])[0]  # a window longer than max_len
    assert np.argmax(long) == 12
    t = tag_index(model, 2)
    base, tagged = np.exp(model.score([Query.session(liked=[5]), Query.session(liked=[5], liked_tags=[t])]))
    with_tag = np.arange(N_MOVIES) % N_TAGS == 2
    assert tagged[with_tag].sum() > base[with_tag].sum()


def test_learned_transition_prior(markov: Dataset, tmp_path: Path) -> None:
    """A barely trained network with the prior already follows the chain through the counts;
    the gate is learned, dislikes lead nowhere, and the model saves and loads alike."""
    from movierec.ranking import supports_retrieval

    qs = [Query.session(liked=[i, (i + 5) % N_MOVIES]) for i in range(N_MOVIES)]
    expected = (np.arange(N_MOVIES) + 6) % N_MOVIES  # what follows the last like
    plain = tiny(SequenceLSTM, epochs=1, lr=1e-4).fit(markov, np.random.default_rng(1))
    model = tiny(SequenceLSTM, epochs=1, lr=1e-4, transition_prior=True).fit(markov, np.random.default_rng(1))
    assert np.mean(np.argmax(model.score(qs), axis=1) == expected) >= 0.9
    assert np.mean(np.argmax(plain.score(qs), axis=1) == expected) < 0.5
    assert not model.retrieval_exact and not supports_retrieval(model)
    # a disliked last movie gives no transition support: its successor is not promoted
    liked, disliked = np.exp(model.score([Query(movies=[3], feedback=[1]), Query(movies=[3], feedback=[-1])]))
    assert liked[4] > 0.3 and disliked[4] < 0.5 * liked[4]
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(qs), model.score(qs))
    # trained on every position, with the set term and likes-only inputs too
    full = tiny(
        SequenceAttention, all_positions=True, transition_prior=True, future_weight=1.0, likes_only_share=0.5
    ).fit(markov, np.random.default_rng(1))
    assert np.mean(np.argmax(full.score(qs), axis=1) == expected) >= 0.9


def test_a_disliked_tag_pushes_down_the_movies_carrying_it(fitted: SequenceLSTM) -> None:
    """Movie 3 is followed by 4 (tag0): disliking tag0 sinks 4 and every tag0 movie by exactly
    dislike_tag_push logits against the rest; dislike_adjustment reproduces it for retrieval."""
    t0 = tag_index(fitted, 0)
    plain, disliking = fitted.score([Query.session(liked=[3]), Query.session(liked=[3], disliked_tags=[t0])])
    with_tag = np.arange(N_MOVIES) % N_TAGS == 0
    assert np.argmax(plain) == 4 and np.exp(disliking[4]) < 0.6 * np.exp(plain[4])
    shift = (disliking - plain)[with_tag] - np.mean((disliking - plain)[~with_tag])
    np.testing.assert_allclose(shift, -fitted.config.push.dislike_tag_push, atol=1e-4)
    adj = fitted.dislike_adjustment([Query.session(liked=[3], disliked_tags=[t0])])[0]
    np.testing.assert_allclose(adj, np.where(with_tag, -fitted.config.push.dislike_tag_push, 0.0), atol=1e-6)
    at = fitted.dislike_adjustment([Query.session(liked=[3], disliked_tags=[t0])], np.array([[4, 5, -1]]))
    np.testing.assert_allclose(at[0], [-fitted.config.push.dislike_tag_push, 0.0, 0.0], atol=1e-6)


def test_free_text_names_tags_that_steer_the_session(fitted: SequenceLSTM) -> None:
    from movierec.models.base import tags_in_text

    t1, t2 = tag_index(fitted, 1), tag_index(fitted, 2)
    assert fitted.tags is not None
    assert tags_in_text("Something TAG2, then tag1 - and tag2 again", fitted.tags).tolist() == [t2, t1]
    assert tags_in_text("nothing here", fitted.tags).size == 0 and tags_in_text(None, fitted.tags).size == 0
    by_text, by_tag, plain = fitted.score(
        [
            Query(movies=[5], text="in the mood for tag2"),
            Query.session(liked=[5], liked_tags=[t2]),
            Query.session(liked=[5]),
        ]
    )
    np.testing.assert_array_equal(by_text, by_tag)
    assert not np.array_equal(by_text, plain)


def test_a_liked_tag_pulls_up_the_movies_carrying_it(fitted: SequenceLSTM) -> None:
    """liked_tag_pull adds exactly its logits to the movies carrying a liked tag, against the
    same session with the pull off; dislike_adjustment carries it for retrieval."""
    t2 = tag_index(fitted, 2)
    q = [Query.session(liked=[3], liked_tags=[t2])]
    saved = fitted.config
    try:
        fitted.config = with_settings(saved, dict(liked_tag_pull=0.0))
        off = fitted.score(q)[0]
        fitted.config = with_settings(saved, dict(liked_tag_pull=2.0))
        on = fitted.score(q)[0]
        adj = fitted.dislike_adjustment(q)[0]
        assert not fitted.retrieval_exact  # a pull raises movies an inner-product search misses
    finally:
        fitted.config = saved
    with_tag = np.arange(N_MOVIES) % N_TAGS == 2
    shift = (on - off)[with_tag] - np.mean((on - off)[~with_tag])
    np.testing.assert_allclose(shift, 2.0, atol=1e-4)
    np.testing.assert_allclose(adj, np.where(with_tag, 2.0, 0.0), atol=1e-6)
    assert np.exp(on[with_tag]).sum() > np.exp(off[with_tag]).sum()
