"""topn.top_n / ranking.recommend / Filters / Catalog on hand-made cases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.data.synthetic import markov_sequences
from movierec.models.base import Query
from movierec.models.popularity import Popularity
from movierec.models.sequence import SequenceLSTM
from movierec.ranking import Catalog, Filters, Retrieval, recommend
from movierec.retrieval import MipsConfig, MipsIndex
from movierec.topn import top_n


def _data() -> Dataset:
    """5 movies; movie 0 rated by 3 users, 1 by 2, 2 by 1, 3 and 4 by nobody."""
    ratings = pd.DataFrame(
        {
            "userId": [1, 2, 3, 1, 2, 1],
            "movieId": [10, 10, 10, 11, 11, 12],
            "rating": [5.0, 4.0, 3.0, 2.0, 2.0, 5.0],
            "timestamp": 1,
        }
    )
    movies = pd.DataFrame(
        {
            "movieId": [10, 11, 12, 13, 14],
            "title": ["A (1990)", "B (2000)", "C (2010)", "D", "E (2005)"],
            "genres": ["Drama|Comedy", "Action", "Comedy", "Drama", "(no genres listed)"],
        }
    )
    return Dataset.build("tiny", ratings, movies)


def test_top_n_orders_and_breaks_ties_by_index() -> None:
    scores = np.array([[0.1, 0.5, 0.5, 0.9]], np.float32)
    idx, vals = top_n(scores, 3)
    assert idx.tolist() == [[3, 1, 2]]
    np.testing.assert_allclose(vals, [[0.9, 0.5, 0.5]])


def test_top_n_ties_at_the_cut_go_to_the_lowest_indices() -> None:
    """Guards argpartition picking an arbitrary one of the movies tied at the n-th place."""
    m = 200
    scores = np.zeros((3, m), np.float32)
    scores[1, ::2] = np.nan  # even movies unscorable: the tie is over the odd ones
    scores[2, :50] = -1.0  # the tie starts at movie 50
    scores[:, [150, 7]] = 2.0  # two clear winners, then the movies tied at 0
    idx, vals = top_n(scores, 5)
    assert idx.tolist() == [[7, 150, 0, 1, 2], [7, 150, 1, 3, 5], [7, 150, 50, 51, 52]]
    np.testing.assert_array_equal(vals, [[2, 2, 0, 0, 0]] * 3)
    idx, _ = top_n(scores, 4, exclude=[np.array([0]), np.array([1]), np.array([50])])
    assert idx.tolist() == [[7, 150, 1, 2], [7, 150, 3, 5], [7, 150, 51, 52]]


@pytest.mark.parametrize("seed", range(5))
def test_top_n_matches_a_full_sort_with_many_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    b, m = 40, int(rng.integers(2, 300))
    scores = rng.integers(0, int(rng.integers(1, 8)), size=(b, m)).astype(np.float32)
    scores[rng.random((b, m)) < 0.2] = np.nan
    exclude = [rng.choice(m, size=int(rng.integers(0, m)), replace=False) for _ in range(b)]
    for n in (1, int(rng.integers(1, m + 1)), m, m + 3):
        idx, vals = top_n(scores, n, exclude=exclude)
        for r in range(b):
            s = np.nan_to_num(scores[r], nan=-np.inf)
            s[exclude[r]] = -np.inf
            order = np.lexsort((np.arange(m), -s))[:n]  # score desc, then index asc
            order = order[np.isfinite(s[order])]
            assert idx[r].tolist() == order.tolist() + [-1] * (n - order.size)
            np.testing.assert_array_equal(vals[r, : order.size], s[order])


def test_top_n_excludes_list_and_sparse_alike() -> None:
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
    by_list, _ = top_n(scores, 2, exclude=[np.array([0]), np.array([3, 2])])
    ex = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 1]], np.float32))
    by_csr, _ = top_n(scores, 2, exclude=ex)
    assert by_list.tolist() == [[1, 2], [1, 0]] == by_csr.tolist()


def test_top_n_pads_with_minus_one() -> None:
    scores = np.array([[1.0, np.nan, 2.0]], np.float32)
    idx, vals = top_n(scores, 5)
    assert idx.tolist() == [[2, 0, -1, -1, -1]]
    assert np.isneginf(vals[0, 2:]).all()


def test_top_n_fallback_only_for_rows_without_scores() -> None:
    scores = np.array([[np.nan, np.nan, np.nan], [0.0, 1.0, np.nan]], np.float32)
    fallback = np.array([3.0, 2.0, 1.0], np.float32)
    idx, _ = top_n(scores, 2, fallback=fallback)
    assert idx.tolist() == [[0, 1], [1, 0]]


def test_top_n_does_not_modify_scores() -> None:
    scores = np.array([[1.0, np.nan, 2.0]], np.float32)
    before = scores.copy()
    top_n(scores, 2, exclude=[np.array([0])], allowed=np.array([True, True, False]))
    np.testing.assert_array_equal(scores, before)


def test_catalog_from_dataset() -> None:
    cat = Catalog.from_dataset(_data())
    assert cat.year.tolist() == [1990, 2000, 2010, 0, 2005]
    assert cat.rating_count.tolist() == [3, 2, 1, 0, 0]
    assert cat.genre_names == ("Action", "Comedy", "Drama")
    assert cat.genres[0].tolist() == [False, True, True] and not cat.genres[4].any()
    assert np.isnan(cat.mean_rating[3]) and np.isnan(cat.rating[3])
    assert cat.rating[:3].tolist() == pytest.approx([47 / 13, 39 / 12, 40 / 11])
    assert int(np.argmax(cat.popularity_scores)) == 0


@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        (Filters(), None),
        (Filters(year_min=2000), [1, 2, 4]),
        (Filters(year_max=2000), [0, 1]),  # unknown year (0) is not "before 2000"
        (Filters(genres=("Comedy",)), [0, 2]),
        (Filters(genres=("Action", "Drama")), [0, 1, 3]),
        # shrunk means on a 3.5 prior, 10 ratings' weight: 47/13 = 3.615, 39/12 = 3.25, 40/11 = 3.636
        (Filters(min_rating=3.6), [0, 2]),
        (Filters(min_rating=3.6, min_count=2), [0]),
        (Filters(min_rating=3.62), [2]),
        (Filters(min_rating=4.0), []),  # the raw means 4.0 and 5.0 would pass; one or three ratings do not
        (Filters(exclude=(1, 3)), [0, 2, 4]),  # saved movies
        (Filters(year_min=2000, exclude=(4,)), [1, 2]),
    ],
)
def test_filters(filters: Filters, allowed: list[int] | None) -> None:
    mask = filters.mask(Catalog.from_dataset(_data()))
    if allowed is None:
        assert mask is None
    else:
        assert mask is not None and np.flatnonzero(mask).tolist() == allowed


def test_unknown_genre_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown genre.*Western.*known"):
        Filters(genres=("Western",)).mask(Catalog.from_dataset(_data()))


def test_recommend_excludes_held_filters_and_falls_back() -> None:
    data = _data()
    model = Popularity().fit(data)
    cat = Catalog.from_dataset(data)
    held, empty = recommend(model, [Query.session(liked=[0]), Query()], 3, catalog=cat)
    assert held.movies.tolist() == [1, 2, 3]  # 3 and 4 tie: lower index first and not held.fallback
    assert empty.fallback and empty.movies.tolist() == [0, 1, 2]
    (filtered,) = recommend(model, [Query()], 3, catalog=cat, filters=Filters(genres=("Comedy",)))
    assert filtered.movies.tolist() == [0, 2]  # only two comedies: no padding in the result


def test_recommend_rejects_out_of_range_indices() -> None:
    data = _data()
    model = Popularity().fit(data)
    with pytest.raises(IndexError, match=r"movie index out of range 0\.\.4: \[5\]"):
        recommend(model, [Query.session(liked=[5])], 3)


# ------------------------------------------------------------ ANN retrieval
class _Dot(Popularity):
    """Scores ``query_vectors @ item_vectors.T + 7``: a known inner-product model over ``_data``'s 5 movies.

    A query's vector is the mean of its liked movies' vectors; the last column is a bias.
    """

    name = "dot"
    items = np.array(
        [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.1], [0.5, 0.5, 0.0], [-1.0, 0.0, 0.2]], np.float32
    )

    def query_vectors(self, queries: list[Query]) -> np.ndarray:
        out = np.zeros((len(queries), 3), np.float32)
        for i, q in enumerate(queries):
            if q.liked.size:
                out[i, :2] = self.items[q.liked, :2].mean(axis=0)
        out[:, 2] = 1.0
        return out

    def item_vectors(self) -> np.ndarray:
        return self.items.copy()

    def score(self, queries: list[Query]) -> np.ndarray:  # type: ignore[override]
        return self.query_vectors(queries) @ self.items.T + np.float32(7.0)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_recommend_through_retrieval_gives_the_exact_top_n(kind: str) -> None:
    pytest.importorskip("faiss")
    data = _data()
    model = _Dot().fit(data)
    cat = Catalog.from_dataset(data)
    # a pool of 1 candidate (raised to n + held movies): the index is searched, then widened
    ann = Retrieval.build(model, MipsConfig(kind=kind, n_lists=2, n_probe=2), n_candidates=1)  # type: ignore[arg-type]
    queries = [Query.session(liked=[0]), Query.session(liked=[2], disliked=[3]), Query(), Query.session([1])]
    filters = [Filters(), Filters(), Filters(genres=("Comedy",)), Filters(year_min=2000)]
    got = recommend(model, queries, 3, catalog=cat, filters=filters, retrieval=ann)
    want = recommend(model, queries, 3, catalog=cat, filters=filters)
    # liked 0 -> q = (1, 0, 1): scores 1, 0.9, 0.1, 0.5, -0.8 (+7); 0 is held
    assert got[0].movies.tolist() == [1, 3, 2]
    np.testing.assert_allclose(got[0].movie_scores, [0.9, 0.5, 0.1], atol=1e-6)  # without the constant
    assert got[1].movies.tolist() == [4, 1, 0]  # 2 and 3 held; q = (0, 1, 1): 0.2, 0.1, 0.0
    assert got[2].fallback and got[2].movies.tolist() == [0, 2]  # popularity, only two comedies
    assert got[3].movies.tolist() == [2, 4]  # year >= 2000: 1, 2, 4; 1 held; q = (0.9, 0.1, 1): 0.2, -0.7
    for g, w in zip(got, want, strict=True):
        assert g.movies.tolist() == w.movies.tolist() and g.fallback == w.fallback
        if not g.fallback:
            np.testing.assert_allclose(g.movie_scores + 7.0, w.movie_scores, atol=1e-5)


def test_retrieval_needs_a_vector_model_and_a_matching_index() -> None:
    pytest.importorskip("faiss")
    data = _data()
    with pytest.raises(TypeError, match="query_vectors"):
        Retrieval.build(Popularity().fit(data))
    small = Retrieval(MipsIndex.build(_Dot.items[:4], MipsConfig(kind="flat")), _Dot.items[:4].copy())
    with pytest.raises(ValueError, match="index holds 4 movies, the model 5"):
        recommend(_Dot().fit(data), [Query.session([0])], 2, retrieval=small)
    with pytest.raises(TypeError, match="retrieval needs a model"):
        recommend(Popularity().fit(data), [Query.session([0])], 2, retrieval=small)
    with pytest.raises(ValueError, match="float32 of shape"):
        Retrieval(small.index, _Dot.items[:4].astype(np.float64))


@pytest.fixture(scope="module")
def sequence_model() -> tuple[SequenceLSTM, Dataset]:
    data = markov_sequences(120, 40, 10, np.random.default_rng(0), n_tags=4, dislike_rate=0.1)
    model = SequenceLSTM(
        embed_dim=8,
        hidden_dim=16,
        max_len=6,
        dropout=0.0,
        threads=1,
        epochs=2,
        patience=0,
        init_popularity=True,
        transition_prior=False,  # retrieval reproduces the network (a prior is scored exactly)
        liked_tag_pull=0.0,  # so does a liked-tag pull
    )
    return model.fit(data, np.random.default_rng(1)), data


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_sequence_model_through_retrieval_matches_exact(
    kind: str, sequence_model: tuple[SequenceLSTM, Dataset]
) -> None:
    """Recall is perfect (a flat index, or IVF probing every cell), so movies and tags must equal the
    exact path's, with exclusions and per-query filters honoured."""
    pytest.importorskip("faiss")
    model, data = sequence_model
    cat = Catalog.from_dataset(data)
    config = MipsConfig(kind=kind, n_lists=4, n_probe=4)  # type: ignore[arg-type]
    ann = Retrieval.build(model, config, rng=np.random.default_rng(0), n_candidates=8)
    queries = [
        Query.session(liked=[1, 2]),
        Query.session(liked=[5, 30], disliked=[6]),
        Query(),
        Query.session(liked_tags=[1]),
        Query.session(liked=[10]),
    ]
    genre = cat.genre_names[0]
    filters = [
        Filters(),
        Filters(year_min=1990),
        Filters(genres=(genre,)),
        Filters(),
        Filters(genres=(genre,)),
    ]
    got = recommend(model, queries, 6, catalog=cat, filters=filters, n_tags=2, retrieval=ann)
    want = recommend(model, queries, 6, catalog=cat, filters=filters, n_tags=2)
    for q, f, g, w in zip(queries, filters, got, want, strict=True):
        assert g.movies.tolist() == w.movies.tolist()
        assert g.fallback == w.fallback and g.tags.tolist() == w.tags.tolist()
        assert not np.isin(g.movies, q.movies).any()
        mask = f.mask(cat)
        assert mask is None or mask[g.movies].all()
        if not g.fallback:  # inner products: the exact scores less the softmax normaliser
            gap = w.movie_scores - g.movie_scores
            np.testing.assert_allclose(gap, gap[0], atol=1e-4)


def test_retrieval_takes_tags_from_the_one_pass_hook(
    sequence_model: tuple[SequenceLSTM, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model with ``query_vectors_and_tags`` is not asked for ``score_tags`` (its full network)."""
    pytest.importorskip("faiss")
    model, data = sequence_model
    cat = Catalog.from_dataset(data)
    queries = [Query.session(liked=[3, 4]), Query(), Query.session(liked=[7], liked_tags=[2])]
    want = recommend(model, queries, 5, catalog=cat, n_tags=3)
    ann = Retrieval.build(model, MipsConfig(kind="flat"), n_candidates=5)

    def no_full_pass(queries: Sequence[Query]) -> np.ndarray:
        raise AssertionError("score_tags runs the movie head too")

    monkeypatch.setattr(model, "score_tags", no_full_pass)
    got = recommend(model, queries, 5, catalog=cat, n_tags=3, retrieval=ann)
    for g, w in zip(got, want, strict=True):
        assert g.movies.tolist() == w.movies.tolist() and g.tags.tolist() == w.tags.tolist()
        np.testing.assert_allclose(g.tag_scores, w.tag_scores, atol=1e-5)
    assert got[1].fallback and got[1].tags.size == 0  # an empty session gets no tag suggestions
