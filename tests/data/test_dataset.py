"""Dataset.build validation and derived views, and the Vocabulary it rests on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.data.ratings import FIVE_STARS, HALF_STARS, RatingScale
from movierec.data.tags import TAG_SOURCES
from movierec.data.validation import DataError
from movierec.data.vocab import UnknownIdError, Vocabulary

# ------------------------------------------------------------------ vocabulary


def test_vocabulary_round_trip_numeric() -> None:
    v = Vocabulary.from_values(np.array([30, 10, 20, 10, 30]), "movie")
    assert v.ids.tolist() == [10, 20, 30]
    assert v.is_numeric and len(v) == 3
    idx = v.index([30, 10, 30])
    assert idx.tolist() == [2, 0, 2] and idx.dtype == np.int64
    assert v.id(idx).tolist() == [30, 10, 30]
    assert v.index_one(20) == 1
    assert 20 in v and 25 not in v
    assert Vocabulary.from_list(v.to_list(), "movie") == v
    assert not v.ids.flags.writeable


def test_vocabulary_round_trip_strings() -> None:
    v = Vocabulary.from_values(pd.Series(["sci-fi", "atmospheric", "sci-fi"]), "tag")
    assert v.to_list() == ["atmospheric", "sci-fi"]
    assert v.index(["sci-fi"]).tolist() == [1]
    assert Vocabulary.from_list(v.to_list(), "tag") == v
    assert v != Vocabulary.from_list(v.to_list(), "genre")


def test_unknown_ids_raise_listing_them() -> None:
    v = Vocabulary([1, 2, 3], "user")
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\): 7, 9") as err:
        v.index([1, 7, 9])
    assert err.value.ids == [7, 9] and err.value.kind == "user"
    assert isinstance(err.value, KeyError)
    many = list(range(100, 108))
    with pytest.raises(UnknownIdError, match=r"and 3 more"):
        v.index(many)
    with pytest.raises(UnknownIdError):
        v.index_one(4)


def test_missing_mask_gives_minus_one() -> None:
    v = Vocabulary([5, 6], "movie")
    assert v.index([6, 99, 5], missing="mask").tolist() == [1, -1, 0]


@pytest.mark.parametrize("bad", [1.5, "abc"])
def test_non_integer_ids_are_unknown_not_truncated(bad: object) -> None:
    v = Vocabulary([1, 2], "movie")
    assert v.index([bad], missing="mask").tolist() == [-1]
    with pytest.raises(UnknownIdError):
        v.index([bad])


def test_vocabulary_rejects_duplicates_and_bad_indices() -> None:
    with pytest.raises(ValueError, match=r"duplicate ids: \[2\]"):
        Vocabulary([1, 2, 2], "movie")
    v = Vocabulary([1, 2], "movie")
    with pytest.raises(IndexError, match="out of range"):
        v.id([2])
    with pytest.raises(IndexError):
        v.id([-1])


# --------------------------------------------------------------------- dataset

MOVIES = pd.DataFrame(
    {
        "movieId": [20, 10, 30],
        "title": ["Heat (1995)", "Matrix, The (1999)", "Untitled"],
        "genres": ["Action|Crime", "Action|Sci-Fi", "(no genres listed)"],
    }
)


def _ratings(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])


def _build(rows: list[tuple[object, ...]], **kw: object) -> Dataset:
    return Dataset.build("t", _ratings(rows), MOVIES, **kw)  # type: ignore[arg-type]


def test_movies_sorted_by_id_and_info_aligned() -> None:
    ds = _build([(1, 10, 4, 1)])
    assert ds.movies.ids.tolist() == [10, 20, 30]
    assert ds.movie_info["movie_id"].tolist() == [10, 20, 30]
    assert ds.movie_info["display_title"].tolist() == ["The Matrix", "Heat", "Untitled"]
    assert ds.movie_info["year"].tolist() == [1999, 1995, 0]
    assert ds.movie_info["genres"].tolist() == [("Action", "Sci-Fi"), ("Action", "Crime"), ()]
    assert ds.genre_names == ["Action", "Crime", "Sci-Fi"]


def test_scale_inferred() -> None:
    assert _build([(1, 10, 4, 1), (1, 20, 3, 2)]).scale == FIVE_STARS
    assert _build([(1, 10, 4, 1), (1, 20, 3.5, 2)]).scale == HALF_STARS
    assert RatingScale(0.5, 5.0, 0.5).levels.tolist() == [0.5 * k for k in range(1, 11)]


@pytest.mark.parametrize(
    ("value", "scale"),
    [(4.5, FIVE_STARS), (0.0, HALF_STARS), (5.5, HALF_STARS), (0.3, HALF_STARS), (0, FIVE_STARS)],
)
def test_off_scale_rating_names_the_row(value: float, scale: RatingScale) -> None:
    with pytest.raises(DataError, match=rf"off the .* scale.*data row 2: {value:g}"):
        _build([(1, 10, scale.high, 1), (1, 20, value, 2)], scale=scale)


def test_non_numeric_user_id_names_column_and_row() -> None:
    with pytest.raises(DataError, match=r"ratings: column 'userId'.*data row 3: 'bob'"):
        _build([(1, 10, 4, 1), (2, 10, 4, 1), ("bob", 10, 4, 1)])


def test_missing_timestamp_column_gives_zeros() -> None:
    ds = Dataset.build("t", pd.DataFrame({"userId": [2, 1], "movieId": [10, 20], "rating": [4, 5]}), MOVIES)
    assert ds.timestamp.tolist() == [0, 0]
    assert ds.users.id(ds.user).tolist() == [1, 2]


def test_genres_as_lists() -> None:
    movies = pd.DataFrame({"movieId": [1, 2], "title": ["A (2000)", "B (2001)"], "genres": [["Drama"], []]})
    ds = Dataset.build("t", _ratings([(1, 1, 4, 1)]), movies)
    assert ds.movie_info["genres"].tolist() == [("Drama",), ()]
    assert ds.tags.to_list() == ["drama"]
    assert ds.tag_source.tolist() == [TAG_SOURCES["genre"]]


def test_duplicates_keep_latest_even_if_listed_first() -> None:
    ds = _build([(1, 10, 5, 9), (1, 10, 1, 3), (1, 10, 2, 5), (1, 20, 3, 4)])
    assert ds.repairs == {"duplicate_ratings_dropped": 2}
    assert ds.movies.id(ds.movie).tolist() == [20, 10]
    assert ds.rating.tolist() == [3.0, 5.0]
    assert ds.timestamp.tolist() == [4, 9]


def test_no_repairs_when_clean() -> None:
    assert _build([(1, 10, 4, 1), (2, 10, 4, 1)]).repairs == {}


def test_tags_dropped_are_counted_and_empty_tags_skipped() -> None:
    tags = pd.DataFrame(
        {
            "userId": [1, 1, 1, 2],
            "movieId": [10, 999, 20, 20],
            "tag": ["Good", "lost", "   ", None],
            "timestamp": [1, 2, 3, 4],
        }
    )
    ds = _build([(1, 10, 4, 1)], tags=tags)
    assert ds.repairs["tag_rows_dropped"] == 3
    assert len(ds.tag_events) == 1
    assert ds.tags.id(ds.tag_events["tag"]).tolist() == ["good"]
    assert ds.tag_events.dtypes.tolist() == [np.dtype(np.int64)] * 4


def test_genome_threshold_parameter() -> None:
    gs = pd.DataFrame({"movieId": [10, 10, 20], "tagId": [1, 2, 1], "relevance": [0.5, 0.9, 0.7]})
    gt = pd.DataFrame({"tagId": [1, 2], "tag": ["Dark", "Witty"]})
    hi = _build([(1, 10, 4, 1)], genome_scores=gs, genome_tags=gt)
    assert sorted(hi.tags.to_list()) == ["action", "crime", "sci-fi", "witty"]
    lo = _build([(1, 10, 4, 1)], genome_scores=gs, genome_tags=gt, genome_threshold=0.6)
    dark = lo.tags.index_one("dark")
    assert lo.movie_tags[:, dark].toarray().ravel().tolist() == pytest.approx([0, 0.7, 0])


def test_user_info_aligned_to_user_indices() -> None:
    users = pd.DataFrame({"userId": [9, 2, 5], "gender": ["F", "M", "F"]})
    ds = _build([(2, 10, 4, 1), (9, 10, 4, 1)], users=users)
    assert ds.user_info is not None
    assert ds.user_info.index.tolist() == [0, 1]
    assert ds.user_info["userId"].tolist() == [2, 9]


@pytest.fixture
def small() -> Dataset:
    return _build([(1, 10, 4, 2), (1, 20, 2, 1), (2, 10, 5, 1), (3, 30, 1, 7), (3, 10, 3, 8)])


def test_arrays_read_only_and_typed(small: Dataset) -> None:
    for arr in (small.user, small.movie, small.rating, small.timestamp, small.tag_source):
        assert not arr.flags.writeable
    with pytest.raises(ValueError):
        small.rating[0] = 1.0


def test_derived_views(small: Dataset) -> None:
    assert small.n_ratings == 5 and small.n_users == 3 and small.n_movies == 3
    assert small.user_ptr.tolist() == [0, 2, 3, 5]
    movies, ratings = small.history(0)
    assert small.movies.id(movies).tolist() == [20, 10] and ratings.tolist() == [2.0, 4.0]
    assert small.movie_popularity.tolist() == [3, 1, 1]
    assert small.movie_mean_rating.tolist() == pytest.approx([4.0, 2.0, 1.0])
    m = small.interactions(values="rating")
    assert m.shape == (3, 3) and m[2, 2] == 1.0 and m[0, 1] == 2.0
    assert small.interactions().sum() == 5


def test_subset_keeps_vocabularies(small: Dataset) -> None:
    mask = small.user != 1
    sub = small.subset(mask, name="part")
    assert sub.name == "part" and sub.n_ratings == 4
    assert sub.movies is small.movies and sub.users is small.users
    assert sub.movie_mean_rating[1] == pytest.approx(2.0)
    assert np.isnan(_build([(1, 10, 4, 1)]).movie_mean_rating[1])
    with pytest.raises(ValueError, match="shape"):
        small.subset(np.ones(2, bool))


# Users 1, 2, 3 rate; 9 only tags. User 2 tags "action", which movie 10 also has as a genre,
# and "dark", which the genome also gives movie 10 (weight 0.9).
TAGGED_RATINGS: list[tuple[object, ...]] = [
    (1, 10, 4, 2),
    (1, 20, 2, 1),
    (2, 10, 5, 1),
    (3, 30, 1, 7),
    (3, 10, 3, 8),
]
TAGS = pd.DataFrame(
    {
        "userId": [1, 2, 2, 2, 2, 3, 9],
        "movieId": [10, 10, 10, 20, 10, 30, 30],
        "tag": ["dark", "dark", "dark", "heist", "Action", "odd", "dark"],
        "timestamp": [1, 2, 3, 4, 5, 6, 7],
    }
)

GENOME_TAGS = pd.DataFrame({"tagId": [1], "tag": ["Dark"]})


@pytest.fixture
def tagged() -> Dataset:
    genome_scores = pd.DataFrame({"movieId": [10], "tagId": [1], "relevance": [0.9]})
    return _build(TAGGED_RATINGS, tags=TAGS, genome_scores=genome_scores, genome_tags=GENOME_TAGS)


def _counts(ds: Dataset, events: pd.DataFrame) -> np.ndarray:
    """Dense ``(n_movies, n_tags)`` count of the tag applications in ``events``."""
    out = np.zeros((ds.n_movies, ds.n_tags), np.float32)
    np.add.at(out, (events["movie"].to_numpy(), events["tag"].to_numpy()), 1.0)
    return out


def test_user_disjoint_subset_drops_the_removed_users_tags(tagged: Dataset) -> None:
    """Guards the leak of a user-disjoint split: test users' tags stayed in training."""
    two = tagged.users.index_one(2)
    sub = tagged.subset(tagged.user != two)
    assert sub.tag_events["user_id"].tolist() == [1, 3, 9]  # tag-only user 9 keeps theirs
    mine = tagged.tag_events.loc[tagged.tag_events["user_id"] == 2]
    assert len(mine) == 4
    np.testing.assert_allclose(tagged.movie_tags.toarray() - sub.movie_tags.toarray(), _counts(tagged, mine))
    ten = tagged.movies.index_one(10)
    assert sub.movie_tags[ten, tagged.tags.index_one("action")] == 1.0  # the genre
    assert sub.movie_tags[ten, tagged.tags.index_one("dark")] == pytest.approx(1.9)  # user 1 + genome
    assert sub.movie_tags[:, tagged.tags.index_one("heist")].nnz == 0  # no explicit zeros left
    assert np.all(sub.movie_tags.data != 0)
    assert sub.tags is tagged.tags and sub.tag_source is tagged.tag_source
    assert tagged.tag_events["user_id"].tolist() == TAGS["userId"].tolist()  # the original is untouched

    nobody = tagged.subset(np.zeros(tagged.n_ratings, bool))
    assert nobody.tag_events["user_id"].tolist() == [9]


def test_all_true_subset_keeps_every_tag(tagged: Dataset) -> None:
    sub = tagged.subset(np.ones(tagged.n_ratings, bool))
    assert sub.movie_tags is tagged.movie_tags and sub.tag_events is tagged.tag_events


def test_per_user_split_keeps_every_tag(tagged: Dataset) -> None:
    keep = np.ones(tagged.n_ratings, bool)
    several = np.diff(tagged.user_ptr) > 1
    keep[tagged.user_ptr[:-1][several]] = False  # the first row of every user with more than one
    sub = tagged.subset(keep)
    assert sub.n_ratings == tagged.n_ratings - 2
    assert sub.movie_tags is tagged.movie_tags and sub.tag_events is tagged.tag_events


def test_fingerprint_tracks_ratings(small: Dataset) -> None:
    same = _build([(1, 10, 4, 2), (1, 20, 2, 1), (2, 10, 5, 1), (3, 30, 1, 7), (3, 10, 3, 8)])
    other = _build([(1, 10, 4, 2), (1, 20, 2, 1), (2, 10, 5, 1), (3, 30, 1, 7), (3, 10, 4, 8)])
    assert small.fingerprint() == same.fingerprint() != other.fingerprint()


def test_summary_is_json_able(small: Dataset) -> None:
    import json

    s = json.loads(json.dumps(small.summary()))
    assert s["ratings"] == 5 and s["rated_movies"] == 3
    assert s["first_rating"] == 1 and s["last_rating"] == 8
    assert s["rating_scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}


def _reference(frame: pd.DataFrame) -> list[tuple[int, int, float, int]]:
    """(user, movie, rating, time) sorted by (user, time, movie), latest of each (user, movie) kept."""
    f = frame.reset_index(drop=True).reset_index()
    f = f.sort_values(["userId", "timestamp", "index"]).drop_duplicates(["userId", "movieId"], keep="last")
    f = f.sort_values(["userId", "timestamp", "movieId"], kind="stable")
    return list(f[["userId", "movieId", "rating", "timestamp"]].itertuples(index=False, name=None))


@pytest.mark.parametrize(
    ("order", "time_span", "n_users"),
    [
        ("shuffled", 3, 40),  # many (user, time) ties in random movie order: lexsort fallback
        ("shuffled", 50, 30),
        ("user-movie", 3, 40),  # MovieLens file order: packed-key fast path, no duplicate search
        ("user-movie", 2**62, 30),  # time range too wide to pack: fallback
        ("shuffled", 10**9, 30),  # few ties, duplicates present
    ],
)
def test_sort_and_dedupe_match_reference(order: str, time_span: int, n_users: int) -> None:
    rng = np.random.default_rng(7)
    n_rows = 400
    frame = pd.DataFrame(
        {
            "userId": rng.integers(1, n_users, n_rows),
            "movieId": rng.choice([10, 20, 30], n_rows),
            "rating": rng.integers(1, 6, n_rows).astype(float),
            "timestamp": rng.integers(-5, time_span - 5, n_rows, dtype=np.int64),
        }
    )
    if order == "user-movie":
        frame = frame.drop_duplicates(["userId", "movieId"]).sort_values(["userId", "movieId"])
    ds = Dataset.build("t", frame, MOVIES)
    got = list(
        zip(
            ds.users.id(ds.user).tolist(),
            ds.movies.id(ds.movie).tolist(),
            ds.rating.tolist(),
            ds.timestamp.tolist(),
            strict=True,
        )
    )
    want = _reference(frame)
    assert got == [(int(u), int(m), float(r), int(t)) for u, m, r, t in want]
    assert ds.repairs.get("duplicate_ratings_dropped", 0) == len(frame) - len(want)
